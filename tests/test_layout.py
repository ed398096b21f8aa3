"""The package layers: imports point down, never up, and nothing below imports the services.

LAYERS is the one place the order is declared. A module belongs to the first layer with a pattern
that names it or one of its packages; it may import its own layer and the layers below it.
The README's layout section is generated from the package docstrings in that order:
`python -m tests.test_layout` prints it.
"""

from __future__ import annotations

import ast
import textwrap
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
    ("gateway.importers",),  # other gateways' configuration and data → Passgate's
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


def layout_section() -> str:
    """The README's layout section: each package, top layer first, its docstring and modules."""
    items = []
    for patterns in LAYERS:
        for pattern in patterns:
            path = MODULES.get(pattern)
            if path is None or pattern.count(".") != 1 or pattern == "gateway.__main__":
                continue  # patterns and single modules of a package are listed with it
            doc = " ".join((ast.get_docstring(ast.parse(path.read_text())) or "").split())
            if path.name == "__init__.py":
                children = sorted(
                    n.rsplit(".", 1)[1] for n in MODULES if n.rsplit(".", 1)[0] == pattern
                )
                where = f"`{pattern.replace('.', '/')}/`"
                doc += " Modules: " + ", ".join(f"`{c}`" for c in children) + "."
            else:
                where = f"`{pattern.replace('.', '/')}.py`"
                doc = doc.split(". ")[0].rstrip(".") + "."
            items.append(textwrap.fill(f"- {where}: {doc}", 100, subsequent_indent="  "))
    return "\n".join(items) + "\n"


def test_readme_layout_section_matches_the_packages() -> None:
    readme = (ROOT / "README.md").read_text()
    block = readme.split("<!-- layout:start -->\n", 1)[1].split("<!-- layout:end -->", 1)[0]
    assert block == layout_section(), "run: python -m tests.test_layout > the README's section"


if __name__ == "__main__":
    print(layout_section(), end="")
