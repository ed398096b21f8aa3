"""The effective configuration as the console shows it: every setting, secrets masked.

A value is hidden whole when the setting's name says it is a secret (key, password, secret,
token); in every other value a password inside a URL or a `password=` pair is masked. Masking by
rule, not by list, so a setting added later is covered without anyone remembering this page.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from pydantic import SecretStr

from gateway.core.settings import Settings

MASK = "••••••••"
_SECRET_NAME = re.compile(r"(key|password|passwd|secret|token)", re.IGNORECASE)
_URL_PASSWORD = re.compile(r"(?P<head>[a-z][a-z0-9+.-]*://[^:/@\s]*:)(?P<secret>[^@\s]*)(?=@)")
_PAIR_PASSWORD = re.compile(r"(?P<head>\bpassword\s*=\s*)(?P<secret>'[^']*'|\S+)", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class SettingRow:
    variable: str  # the environment variable, e.g. REDIS_URL
    value: str  # as shown: masked where secret
    is_default: bool
    description: str


def mask(name: str, value: object) -> str:
    """`value` as safe to show for the setting `name`."""
    if value is None:
        return "not set"
    if isinstance(value, SecretStr) or _SECRET_NAME.search(name):
        return MASK if str(value) else "not set"
    text = str(value) if not isinstance(value, Path) else value.as_posix()
    text = _URL_PASSWORD.sub(lambda m: m.group("head") + MASK, text)
    return _PAIR_PASSWORD.sub(lambda m: m.group("head") + MASK, text)


def effective_settings(settings: Settings) -> list[SettingRow]:
    """One row per setting in model order, secrets masked."""
    rows = []
    for name, field in Settings.model_fields.items():
        value = getattr(settings, name)
        rows.append(
            SettingRow(
                variable=name.upper(),
                value=mask(name, value),
                is_default=value == field.default,
                description=field.description or "",
            )
        )
    return rows
