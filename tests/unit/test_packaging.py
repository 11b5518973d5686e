"""The core stays light: importing the widget pulls in no optional dependency, and a missing
extra is named in the error."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest

PIP_WHEEL = [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation"]


def run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=60
    )


def test_core_import_loads_no_optional_dependency() -> None:
    out = run(
        """
        import sys
        import realtime_widget
        w = realtime_widget.RealtimeWidget(api_key="k", base_url="http://127.0.0.1:9")
        heavy = {"aiortc", "aiohttp", "numpy", "av", "pandas", "matplotlib", "polars", "pyarrow"}
        print(sorted(heavy & set(sys.modules)))
        """
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("missing", ["aiortc", "numpy"])
def test_a_missing_emulator_dependency_names_the_extra(missing: str) -> None:
    out = run(
        f"""
        import sys
        sys.modules[{missing!r}] = None  # as if it were not installed
        from realtime_widget import Emulator
        """
    )
    assert out.returncode != 0
    assert 'pip install "realtime-widget[emulator]"' in out.stderr and repr(missing) in out.stderr


def test_the_version_comes_from_the_installed_metadata() -> None:
    from importlib.metadata import version

    import realtime_widget

    assert realtime_widget.__version__ == version("realtime-widget")


def test_the_wheel_carries_the_bundle_the_emulator_and_the_licence(tmp_path: Path) -> None:
    """A user's `pip install` gets no Node: the wheel must carry the built front end."""
    root = Path(__file__).resolve().parents[2]
    if not (root / "src/realtime_widget/static/widget.js").exists():
        pytest.fail("the front end is not built: run scripts/setup (npm run build) first")
    out = subprocess.run(
        # No build isolation: the tests may run where only loopback is reachable, so the
        # build backend comes from this environment (the test-core dependency group).
        [*PIP_WHEEL, "-w", str(tmp_path), str(root)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    (whl,) = tmp_path.glob("realtime_widget-*.whl")
    names = zipfile.ZipFile(whl).namelist()
    assert "realtime_widget/static/widget.js" in names
    assert "realtime_widget/static/widget.css" in names
    assert "realtime_widget/protocol.json" in names
    assert "realtime_widget/py.typed" in names
    assert any(n.startswith("realtime_widget/emulator/") for n in names)
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names), names
    meta = next(n for n in names if n.endswith(".dist-info/METADATA"))
    text = zipfile.ZipFile(whl).read(meta).decode()
    assert "License-Expression: MIT" in text
    # The maintainers' tools are dependency groups, never extras a user could pick.
    extras = {
        line.split(":", 1)[1].strip()
        for line in text.splitlines()
        if line.startswith("Provides-Extra:")
    }
    assert {"all", "emulator", "voice", "sideband", "evaluate", "conditions"} <= extras
    assert not extras & {"test", "test-core", "lint", "dev"}, extras
