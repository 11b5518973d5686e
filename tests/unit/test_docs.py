"""The docs site's reference pages list every public name of every public package, and only
those (``::: package`` blocks with explicit members); the site's configuration is what
scripts/docs builds (strict, no fonts or scripts from another host)."""

from __future__ import annotations

import importlib
import re
import types
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
API = ROOT / "docs" / "api"


def _blocks(page: Path) -> dict[str, list[str]]:
    """Each ``::: module`` block of a page with the members it lists."""
    found: dict[str, list[str]] = {}
    current = None
    for line in page.read_text(encoding="utf-8").splitlines():
        if m := re.match(r"^::: ([\w.]+)\s*$", line):
            current = m.group(1)
            found[current] = []
        elif current and (m := re.match(r"^\s+- (\w+)\s*$", line)):
            found[current].append(m.group(1))
    return found


def _pages() -> dict[str, list[str]]:
    blocks: dict[str, list[str]] = {}
    for page in sorted(API.glob("*.md")):
        for module, members in _blocks(page).items():
            assert module not in blocks, f"{module} has two reference blocks"
            assert "._" not in module and not module.startswith("_"), (
                f"{page.name}: {module} is a private path; document the public one"
            )
            blocks[module] = members
    return blocks


PACKAGES = sorted(_pages())


def test_every_public_package_has_a_reference_page() -> None:
    import realtime_widget

    expected = {"realtime_widget", "realtime_widget.types", "realtime_widget.emulator"}
    modules = {
        f"realtime_widget.{n}"
        for n in realtime_widget.__all__
        if isinstance(getattr(realtime_widget, n), types.ModuleType)
    }
    packages = {
        f"realtime_widget.{p.name}"
        for p in (ROOT / "src" / "realtime_widget").iterdir()
        if p.is_dir() and (p / "__init__.py").exists() and not p.name.startswith("_")
    }
    assert expected | modules | packages <= set(PACKAGES), PACKAGES


@pytest.mark.parametrize("module", PACKAGES)
def test_a_reference_page_lists_the_package_all(module: str) -> None:
    mod = importlib.import_module(module)
    public = [n for n in mod.__all__ if not isinstance(getattr(mod, n), types.ModuleType)]
    listed = _pages()[module]
    assert sorted(listed) == sorted(public), (
        f"docs/api: {module}'s members differ from its __all__: "
        f"missing {sorted(set(public) - set(listed))}, extra {sorted(set(listed) - set(public))}"
    )


def test_the_site_builds_strict_and_loads_nothing_from_another_host() -> None:
    config = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    assert re.search(r"^strict: true$", config, re.M)
    assert re.search(r"^\s+font: false", config, re.M)  # no Google Fonts
    # nothing fetched to build: no remote inventories, no social cards
    assert not re.search(r"^\s+(inventories|- social):?", config, re.M)
    script = (ROOT / "scripts" / "docs").read_text(encoding="utf-8")
    assert "mkdocs build --strict" in script
    assert "scripts/docs" in (ROOT / "scripts" / "test").read_text(encoding="utf-8")
