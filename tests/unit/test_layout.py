"""The layout the architecture doc promises: every module named in its package's row of
docs/architecture.md's Layout table, and none over the size a reader takes in."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "src" / "vidgate"
MAX_LINES = 600


def _modules() -> list[Path]:
    return sorted(
        path
        for path in PACKAGE.rglob("*.py")
        if path.name != "__init__.py" and "versions" not in path.parts
    )


def _layout_rows() -> dict[str, str]:
    """The Layout table: first cell -> whole row."""
    text = (ROOT / "docs" / "architecture.md").read_text()
    section = text.split("## Layout", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in section.splitlines():
        if line.startswith("| `"):
            first = line.split("|")[1]
            rows[first] = line
    return rows


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_every_module_is_in_the_layout_table(path: Path) -> None:
    parts = path.relative_to(PACKAGE).parts
    rows = _layout_rows()
    if len(parts) == 1:
        owners = [row for first, row in rows.items() if f"`{path.name}`" in first]
    else:
        owners = [row for first, row in rows.items() if f"`{parts[0]}/`" in first]
    assert owners, f"no row of the Layout table in docs/architecture.md owns {parts}"
    assert any(f"{path.name}`" in row or f"{path.stem}`" in row for row in owners), (
        f"docs/architecture.md's Layout row for {parts[0]} does not name {path.name}"
    )


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_module_is_over_600_lines(path: Path) -> None:
    lines = len(path.read_text().splitlines())
    assert lines <= MAX_LINES, f"{path.name} has {lines} lines; split it by concern"


CONSOLE = PACKAGE / "ui" / "static"


def test_the_console_files_are_in_the_layout_and_ship_with_the_package() -> None:
    """Every file of the web console (api/console.py serves them) is named in the
    Layout's `ui/` row, is of a type the console serves, and lies under the package
    the wheel is built from (pyproject: hatch's `packages`, files included)."""
    from vidgate.api.console import STATIC_DIR, load_files

    files = sorted(p.relative_to(CONSOLE).as_posix() for p in CONSOLE.rglob("*") if p.is_file())
    assert {"index.html", "app.js", "api.js", "style.css"} <= set(files)
    assert any(name.startswith("pages/") for name in files)
    row = next(row for first, row in _layout_rows().items() if "`ui/`" in first)
    missing = [name for name in files if f"`{name.rsplit('/', 1)[-1]}`" not in row]
    assert not missing, f"docs/architecture.md's Layout row for ui/ does not name {missing}"
    assert STATIC_DIR == CONSOLE
    assert sorted(load_files()) == files, "a console file of a type api/console.py does not serve"
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert 'packages = ["src/vidgate"]' in pyproject
    wheel = pyproject.split("[tool.hatch.build.targets.wheel]", 1)[1].split("\n[", 1)[0]
    assert "exclude" not in wheel
