"""Tuning a live session from the control panel, light and dark, in JupyterLab and Notebook 7
(the shared Jupyter server and browser: see conftest.py)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.e2e.harness import ARTIFACTS, ROOT, Lab, Notebook, Wire, page_errors
from tests.helpers.protocol_checks import check_stream

pytestmark = pytest.mark.e2e

TUNING = ROOT / "notebooks" / "tuning.ipynb"
CELL_END = 15  # w.disconnect()


def panel_input(page, label: str):
    return (
        page.locator(".widget-inline-hbox", has=page.locator(f"label:text-is('{label}')"))
        .locator("input")
        .first
    )


def test_panel_tunes_a_live_session(host: str, shared_lab: Lab, page: Any, folder: str) -> None:
    wire = Wire()
    wire.attach(page)
    name = shared_lab.add(TUNING, folder)
    nb = Notebook.open(page, shared_lab, name, widget_cell=1, host=host)
    page.locator("[data-testid=rtw-connect]").first.click()
    nb.poll("w.status == 'connected'", timeout=30)
    nb.poll("bool(w.server_session)")
    n0 = nb.kernel_json("len(w.events.of_type('session.update', direction='client'))")

    voice = panel_input(page, "Voice")
    voice.fill("Hades")
    voice.press("Enter")
    speed = page.locator(".widget-slider", has=page.locator("label:text-is('Speed')")).locator(
        ".widget-readout"
    )
    speed.click()
    page.keyboard.press("Control+A")
    page.keyboard.type("1.25")
    page.keyboard.press("Enter")
    got = nb.poll(
        "(lambda o: o if o.get('voice') == 'Hades' and o.get('speed') == 1.25 else None)"
        "(w.server_session.get('audio', {}).get('output', {}))",
        timeout=15,
    )
    assert got["voice"] == "Hades" and got["speed"] == 1.25
    sent = nb.kernel_json(
        "[r['event']['session'] for r in w.events.of_type('session.update', direction='client')]"
    )[n0:]
    # partial updates only, carrying just what changed
    assert all(set(s) <= {"type", "audio"} and set(s["audio"]) == {"output"} for s in sent), sent
    assert 1 <= len(sent) <= 2
    check_stream(nb.kernel_json("[r['event'] for r in w.events if r['direction'] == 'server']"))
    panel = page.locator(".widget-vbox", has=page.locator("text=Listening")).first
    page.wait_for_function(
        "() => [...document.querySelectorAll('.widget-html')].some(e => e.textContent.includes('session.updated'))",
        timeout=10_000,
    )

    tokens = panel_input(page, "Max output tokens")
    tokens.fill("lots")
    tokens.press("Enter")
    page.wait_for_function(
        "() => [...document.querySelectorAll('.widget-html')].some(e => e.textContent.includes('not applied'))",
        timeout=10_000,
    )
    assert nb.kernel_json("w.max_output_tokens") == 4096

    ARTIFACTS.mkdir(exist_ok=True)
    box = page.locator(".widget-hbox", has=page.locator(".rtw-root")).first
    box.scroll_into_view_if_needed()
    tag = "" if host == "lab" else f"-{host}"
    box.screenshot(path=str(ARTIFACTS / f"tuning-light{tag}.png"))
    page.evaluate(
        "() => jupyterapp.commands.execute('apputils:change-theme', {theme: 'JupyterLab Dark'})"
    )
    page.wait_for_function("() => document.body.dataset.jpThemeLight === 'false'", timeout=15_000)
    page.wait_for_timeout(300)  # let the theme's CSS variables settle before the picture
    box.screenshot(path=str(ARTIFACTS / f"tuning-dark{tag}.png"))
    # the widget follows the theme: its background is JupyterLab's dark layout colour
    bg = page.evaluate(
        "() => getComputedStyle(document.querySelector('.rtw-root')).backgroundColor"
    )
    channels = [int(c) for c in bg[bg.index("(") + 1 : bg.index(")")].split(",")[:3]]
    assert sum(channels) / 3 < 100, bg
    assert panel.count() == 1

    # the rest of the walkthrough, as a reader runs it: every cell runs without an error
    cells = json.loads(TUNING.read_text())["cells"]
    for i in range(3, CELL_END):
        if cells[i]["cell_type"] == "code":
            nb.run_cell(i)
    assert nb.kernel_json("(w.voice, w.speed)") == ["Sarah", 1.2]  # the preset round trip
    assert (
        "TraitError speed must be a number from 0.5 to 1.5"
        in page.locator(".jp-Cell").nth(8).inner_text()
    )
    nb.poll("len(w.events.of_type('response.done')) >= 1", timeout=30)
    nb.run_cell(CELL_END)
    nb.poll("w.status == 'disconnected'")
    outputs = page.evaluate(
        "() => [...document.querySelectorAll('.jp-OutputArea-output')].map(e => e.textContent)"
    )
    assert not [o for o in outputs if "Traceback" in o], outputs
    assert not page_errors(wire, host), wire.errors
    if host == "lab":
        nb.keep_executed(
            shared_lab, name, test="tests/e2e/test_tuning.py", screenshot="tuning-light.png"
        )
