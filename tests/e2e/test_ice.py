"""ICE servers from the service: TURN credentials stay out of everything a user keeps, and a
STUN server that never answers does not stall the call.

The emulator (a separate process, as the real service would be) hands out a STUN and a TURN
server on a loopback port where a socket swallows every packet and never answers.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import SENTINEL_KEY
from tests.e2e.harness import (
    Notebook,
    Wire,
    chromium,
    code_notebook,
    free_port,
    jupyter_lab,
    stop_process,
    wait_http,
)

pytestmark = pytest.mark.e2e

TURN_USER, TURN_CRED = "turn-user-SENTINEL-51c2", "turn-cred-SENTINEL-9e77"


def test_turn_credentials_and_a_silent_stun_server(tmp_path: Path) -> None:
    hole = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # receives, never answers
    hole.bind(("127.0.0.1", 0))
    port = hole.getsockname()[1]
    servers = [
        {"urls": [f"stun:127.0.0.1:{port}"]},
        {
            "urls": [f"turn:127.0.0.1:{port}?transport=udp"],
            "username": TURN_USER,
            "credential": TURN_CRED,
        },
    ]
    emu_port = free_port()
    emulator = subprocess.Popen(
        [sys.executable, "-m", "realtime_widget.emulator", "--port", str(emu_port),
         "--api-key", SENTINEL_KEY, "--ice-servers", json.dumps(servers)],
        start_new_session=True,
    )  # fmt: skip
    base = f"http://127.0.0.1:{emu_port}"
    env = {"INWORLD_API_KEY": SENTINEL_KEY, "INWORLD_BASE_URL": base}
    nb_path = code_notebook(
        tmp_path / "ice.ipynb",
        "from realtime_widget import RealtimeWidget\nw = RealtimeWidget()\nw",
    )
    wire = Wire()
    try:
        wait_http(f"{base}/", timeout=30, proc=emulator)
        with (
            jupyter_lab(tmp_path / "lab", [nb_path], env=env) as lab,
            chromium(tmp_path) as browser,
        ):
            page = browser.new_page()
            wire.attach(page)
            nb = Notebook.open(page, lab, "ice.ipynb", widget_cell=0)
            page.locator("[data-testid=rtw-connect]").first.click()
            nb.poll("w.status == 'connected'", timeout=30)
            offer = nb.kernel_json("w.events.of_type('offer.sent')[-1]['event']")
            start = nb.kernel_json("w.events.of_type('call.start')[-1]['event']")
            # the browser did not wait for the silent server: the offer went at the deadline
            assert offer["gathering_complete"] is False, offer
            print(
                f"offer sent after {offer['gather_ms']:.0f} ms of gathering with a silent STUN/TURN server"
            )
            assert start["ice_urls"] == [u for s in servers for u in s["urls"]]  # URLs, no secrets
            nb.kernel_eval("w.send_text('Hello')")
            nb.poll("len(w.events.of_type('response.done')) == 1", timeout=30)
            Notebook(page).save()
            saved = (lab.root / "ice.ipynb").read_text()
            assert (
                "application/vnd.jupyter.widget-state+json"
                in json.loads(saved)["metadata"]["widgets"]
            )
            nb.kernel_eval("w.events.to_jsonl('ice.jsonl')")
            kept = {
                "saved notebook": saved,
                "DOM": page.content(),
                "console": "\n".join(wire.console),
                "exported log": (lab.root / "ice.jsonl").read_text(),
                "widget state": nb.kernel_eval(
                    "import json; print(json.dumps(w.get_state(), default=str))"
                ),
                "repr": nb.kernel_eval("print(repr(w), repr(w.events))"),
            }
            for secret in (SENTINEL_KEY, TURN_USER, TURN_CRED):
                for where, text in kept.items():
                    assert secret not in text, f"{secret} leaked into the {where}"
                # over the kernel websocket, TURN credentials ride only in the connect message
                # and in the 'ice' message that brings them ahead of a click
                carrying = [f for f in wire.frames if secret.encode() in f]
                if secret == SENTINEL_KEY:
                    assert not carrying, "the API key crossed the kernel websocket"
                else:
                    assert carrying and all(b'"connect"' in f or b'"ice"' in f for f in carrying), (
                        secret
                    )
    finally:
        stop_process(emulator)
        hole.close()
