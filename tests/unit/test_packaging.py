"""The core stays light: importing the widget pulls in no optional dependency, and a missing
extra is named in the error."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest


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
