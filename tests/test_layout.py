"""The package layers: imports point down, never up, and nothing below imports the services.

LAYERS is the one place the order is declared. A module belongs to the first layer with a pattern
that names it or one of its packages; it may import its own layer and the layers below it.
"""

from __future__ import annotations

import ast
from fnmatch import fnmatchcase
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# Top to bottom.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("gateway.__main__", "gateway.cli"),
    # Request handlers: pages, JSON APIs and endpoints, and the web app that mounts them. They
    # reach the services through the app (gateway.web.helpers.services_of).
    (
        "gateway.web",
        "gateway.*.api",
        "gateway.*.pages",
        "gateway.*.*_pages",
        "gateway.forward_auth.endpoint",
        "gateway.admin.console",
        "gateway.admin.operations",
        "gateway.admin.openapi",
    ),
    ("gateway.services",),  # the composition root: builds every area's services
    ("gateway.admin",),
    ("gateway.oidc",),
    ("gateway.passkeys",),
    ("gateway.forward_auth",),
    ("gateway.sessions",),
    ("gateway.accounts",),
    ("gateway.audit",),
    ("gateway.storage",),
    ("gateway.core",),
    ("gateway.http",),
    ("gateway",),  # the package itself: __version__
)


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted((ROOT / "gateway").rglob("*.py"))}


def layer_of(module: str) -> int:
    for index, patterns in enumerate(LAYERS):
        for pattern in patterns:
            if fnmatchcase(module, pattern) or fnmatchcase(module, pattern + ".*"):
                return index
    raise LookupError(module)


def imports_of(path: Path) -> list[tuple[int, str]]:
    """(line, module) for every gateway import, lazy and TYPE_CHECKING ones included."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.startswith("gateway")]
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("gateway"):
            for alias in node.names:  # `from gateway.admin import api` imports gateway.admin.api
                submodule = f"{node.module}.{alias.name}"
                found.append((node.lineno, submodule if submodule in MODULES else node.module))
    return found


def upward_imports(modules: dict[str, Path]) -> list[str]:
    wrong = []
    for name, path in modules.items():
        own = layer_of(name)
        for line, imported in imports_of(path):
            if layer_of(imported) < own:
                where = path.relative_to(ROOT)
                wrong.append(f"{where}:{line}: {name} ({LAYERS[own][0]}) imports {imported}")
    return wrong


def test_every_module_has_a_layer() -> None:
    for name in MODULES:
        layer_of(name)  # raises LookupError for a module no pattern names


def test_imports_point_down() -> None:
    wrong = upward_imports(MODULES)
    assert not wrong, "imports pointing up the layers:\n" + "\n".join(wrong)


@pytest.mark.parametrize(
    "package", sorted(n for n, p in MODULES.items() if p.name == "__init__.py")
)
def test_every_package_says_what_it_holds(package: str) -> None:
    assert ast.get_docstring(ast.parse(MODULES[package].read_text())), f"{package} has no docstring"
