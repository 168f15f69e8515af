"""The import graph keeps data flowing one way (docs/architecture.md, Layout): the HTTP
layer reaches the database only through the services, and providers know nothing of
the layers above them. Read from the source with ``ast``, imports inside functions and
``TYPE_CHECKING`` blocks included."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src"


def _module_name(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    """Every module ``path`` imports, absolute, relative imports resolved."""
    package = _module_name(path).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    return imports_in(path.read_text(), package)


def imports_in(source: str, package: list[str]) -> set[str]:
    """Every module ``source`` imports, its relative imports taken from ``package``."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join([*base, node.module] if node.module else base)
            found.add(module)
            # ``from vidgate import db`` imports the module vidgate.db.
            found.update(f"{module}.{alias.name}" for alias in node.names)
    return found


def _offenders(package: str, forbidden: tuple[str, ...]) -> dict[str, list[str]]:
    root = SRC / package.replace(".", "/")
    found: dict[str, list[str]] = {}
    for path in sorted(root.rglob("*.py")):
        bad = sorted(
            name
            for name in imports_of(path)
            if any(name == f or name.startswith(f + ".") for f in forbidden)
        )
        if bad:
            found[_module_name(path)] = bad
    return found


def test_api_never_imports_the_database_layer() -> None:
    assert _offenders("vidgate.api", ("vidgate.db",)) == {}


def test_providers_never_import_api_or_engine() -> None:
    assert _offenders("vidgate.providers", ("vidgate.api", "vidgate.engine")) == {}


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("from vidgate.db.repo import JobRecord", {"vidgate.db.repo", "vidgate.db.repo.JobRecord"}),
        ("from vidgate import db", {"vidgate", "vidgate.db"}),
        ("import vidgate.db.reads as reads", {"vidgate.db.reads"}),
        ("from ..db import repo", {"vidgate.db", "vidgate.db.repo"}),
        ("def f():\n    from vidgate.db import health", {"vidgate.db", "vidgate.db.health"}),
    ],
)
def test_imports_are_found_in_every_form(source: str, expected: set[str]) -> None:
    """The checks above are only as good as this reader: each way of writing an import
    of the database layer in a module of ``vidgate.api`` is seen."""
    assert imports_in(source + "\n", ["vidgate", "api"]) == expected
