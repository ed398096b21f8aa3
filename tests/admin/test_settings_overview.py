"""The settings overview masks secrets by rule, so settings added later are covered too."""

from __future__ import annotations

from collections.abc import Callable

from gateway.admin.settings_overview import MASK, effective_settings, mask
from gateway.core.settings import Settings


def test_a_setting_named_like_a_secret_is_hidden_whole() -> None:
    assert mask("encryption_key", "abcdefghijklmnopq") == MASK
    assert mask("smtp_password", "hunter2") == MASK
    assert mask("smtp_password", None) == "not set"


def test_the_password_inside_a_url_is_masked_and_the_rest_kept() -> None:
    shown = mask("db_connection_string", "postgresql://passgate:s3cr%40t@db:5432/passgate")
    assert shown == f"postgresql://passgate:{MASK}@db:5432/passgate"
    assert mask("redis_url", "redis://:pw@redis:6379/0") == f"redis://:{MASK}@redis:6379/0"


def test_a_password_pair_in_a_keyword_dsn_is_masked() -> None:
    shown = mask("db_connection_string", "host=db user=pg password='a b' dbname=x")
    assert shown == f"host=db user=pg password={MASK} dbname=x"


def test_a_url_without_a_password_is_shown_as_is() -> None:
    assert mask("redis_url", "redis://redis:6379/0") == "redis://redis:6379/0"


def test_every_setting_has_a_row_and_no_secret_value_appears(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings(
        db_provider="postgres",
        db_connection_string="postgresql://pg:pg-pass-91@127.0.0.1/x",
        redis_url="rediss://default:redis-pass-77@cache:6380/1",
    )
    rows = effective_settings(settings)
    assert [r.variable for r in rows] == [name.upper() for name in Settings.model_fields]
    shown = " ".join(r.value for r in rows)
    for secret in ("pg-pass-91", "redis-pass-77", "test-encryption-key-0123456789"):
        assert secret not in shown
    assert {r.variable: r.is_default for r in rows}["PORT"] is True
