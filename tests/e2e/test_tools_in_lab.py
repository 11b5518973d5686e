"""Python tools in JupyterLab: the emulator's agent calls a registered function, the kernel runs
it, the spoken reply uses its output; a held call is approved in the view; a failing tool goes
back to the model as an error; every event is schema-valid."""

from __future__ import annotations

from typing import Any

import pytest

from tests.e2e.harness import ARTIFACTS, ROOT, Lab, Notebook
from tests.helpers.protocol_checks import check_stream

pytestmark = pytest.mark.e2e

TOOLS = ROOT / "notebooks" / "tools.ipynb"
PARAMETERS, SETUP, REGISTER, WIDGET = 1, 2, 3, 4  # the parameters: transport = "page"
WEATHER, BOOK, FLAKY, CALLS_TABLE, TURNS_TABLE = 7, 9, 12, 14, 15


def reply_after(nb: Notebook, tool: str, timeout: float = 40) -> str:
    """The transcript of the response that answered ``tool``'s output."""
    # (the output may go out before the function call's own response is done: that response
    # carries the call, not a message, so only responses with a message count)
    return nb.poll(
        "(lambda outs: next((r['event']['response']['output'][0]['content'][0].get('transcript')"
        " or r['event']['response']['output'][0]['content'][0].get('text')"
        " for r in w.events.of_type('response.done')"
        " if r['event']['response']['output'] and r['event']['response']['output'][0].get('content')"
        f" and r['t_ms'] > outs[-1]['t_ms']), None) if outs else None)"
        "([r for r in w.events.of_type('conversation.item.create', direction='client')"
        " if r['event']['item']['type'] == 'function_call_output'"
        f" and r['event']['item']['call_id'] in [c['call_id'] for c in w.tool_calls if c['name'] == {tool!r}]])",
        timeout=timeout,
    )


def finished(nb: Notebook, tool: str, timeout: float = 40) -> dict:
    return nb.poll(
        f"next((r['event'] for r in w.events.of_type('tool.finished') if r['event']['name'] == {tool!r}), None)",
        timeout=timeout,
    )


def test_tools_run_in_the_kernel_with_approval_and_errors(
    shared_lab: Lab, page: Any, folder: str
) -> None:
    lab = shared_lab
    name = lab.add(TOOLS, folder)
    nb = Notebook.open(page, lab, name)
    nb.run_cell(PARAMETERS)
    nb.run_cell(SETUP)
    nb.run_cell(REGISTER)
    nb.run_cell(WIDGET)
    page.locator("[data-testid=rtw-status]").first.wait_for(timeout=30_000)
    page.locator("[data-testid=rtw-connect]").first.click()
    nb.poll("w.status == 'connected'", timeout=30)

    # a registered tool, named in the user's words: called, run here, its output spoken
    nb.run_cell(WEATHER)
    weather = finished(nb, "get_weather")
    assert weather["status"] == "ok" and '"city": "Paris"' in weather["output_preview"]
    said = reply_after(nb, "get_weather")
    assert "temperature is" in said and "Paris" in said, said
    call = page.locator("[data-testid=rtw-tool-call]", has_text="get_weather").first
    call.wait_for(timeout=10_000)
    assert call.locator("[data-testid=rtw-tool-status]").inner_text().lower() == "done"

    # a held call: the view shows Approve / Reject, and a click runs it
    nb.run_cell(BOOK)
    held = page.locator("[data-testid=rtw-tool-call]", has_text="book_table").first
    approve = held.locator("[data-testid=rtw-tool-approve]")
    approve.wait_for(timeout=30_000)
    assert nb.kernel_json("[c['status'] for c in w.tool_calls if c['name'] == 'book_table']") == [
        "pending_approval"
    ]
    assert nb.kernel_json("len(w.events.of_type('tool.finished'))") == 1  # held: not run
    approve.click()
    booked = finished(nb, "book_table")
    assert booked["status"] == "ok"
    assert "table is 12" in reply_after(nb, "book_table")
    decisions = nb.kernel_json(
        "[r['event']['decision'] for r in w.events.of_type('tool.approval')]"
    )
    assert decisions == ["pending", "approved"]

    # a failing tool: the model reads the error and the conversation goes on
    nb.run_cell(FLAKY)
    flaky = finished(nb, "flaky_forecast")
    assert flaky["status"] == "error" and "unreachable" in flaky["error"]
    assert "error is flaky_forecast raised ConnectionError" in reply_after(nb, "flaky_forecast")

    nb.run_cell(CALLS_TABLE)
    nb.run_cell(TURNS_TABLE)
    rows = nb.kernel_json(
        "w.events.turns().query('tool_calls > 0')[['tool_ms', 'tool_hop_ms']].to_dict('records')"
    )
    assert len(rows) == 3 and all(r["tool_ms"] is not None for r in rows)
    hops = [r["tool_hop_ms"] for r in rows if r["tool_hop_ms"] is not None]
    assert hops and all(-5 < h < 2000 for h in hops), rows  # measured, on one clock
    check_stream(nb.kernel_json("[r['event'] for r in w.events if r['direction'] == 'server']"))
    ARTIFACTS.mkdir(exist_ok=True)
    page.locator(".rtw-root").first.screenshot(path=str(ARTIFACTS / "tools.png"))
    nb.keep_executed(lab, name, test="tests/e2e/test_tools_in_lab.py", screenshot="tools.png")
    nb.kernel_eval("w.disconnect()")
