"""Server-rendered pages: one Jinja environment with autoescaping, templates in the package."""

from __future__ import annotations

from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape

_env = Environment(
    loader=PackageLoader("gateway", "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
    trim_blocks=True,
    lstrip_blocks=True,
)


def render(template: str, **context: Any) -> str:
    """Render a template from gateway/templates with autoescaping on."""
    return _env.get_template(template).render(**context)
