"""The HTTP surface, the public Emulator API and the CLI. Only bad offers are posted here, so
no peer connection ever starts: these run on any host (traffic stays on 127.0.0.1)."""

from __future__ import annotations

import importlib
import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator

import httpx
import pytest

from realtime_widget.emulator import Emulator
from realtime_widget.emulator._deps import require_emulator_deps

# Passes the quick shape check, but aiortc cannot apply it (no ICE or DTLS attributes).
HOLLOW_OFFER = (
    "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"
    "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\na=rtpmap:111 opus/48000/2\r\n"
    "m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\nc=IN IP4 0.0.0.0\r\n"
)


@pytest.fixture
def emu() -> Iterator[Emulator]:
    with Emulator() as emu:
        yield emu


def post_offer(emu: Emulator, body: str, **headers: str) -> httpx.Response:
    headers = {
        "Authorization": f"Bearer {emu.api_key}",
        "Content-Type": "application/sdp",
        **headers,
    }
    return httpx.post(f"{emu.base_url}/v1/realtime/calls", content=body, headers=headers)


def assert_error(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code and error["message"]
    assert error["type"] == ("server_error" if status >= 500 else "invalid_request_error")


def test_ice_servers_need_the_key(emu: Emulator) -> None:
    url = f"{emu.base_url}/v1/realtime/ice-servers"
    ok = httpx.get(url, headers={"Authorization": f"Bearer {emu.api_key}"})
    assert ok.status_code == 200 and ok.json() == {"ice_servers": []}
    basic = httpx.get(url, headers={"Authorization": f"Basic {emu.api_key}"})
    assert basic.status_code == 200
    assert_error(httpx.get(url), 401, "invalid_api_key")
    assert_error(httpx.get(url, headers={"Authorization": "Bearer nope"}), 401, "invalid_api_key")


def test_calls_require_the_key(emu: Emulator) -> None:
    response = post_offer(emu, HOLLOW_OFFER, Authorization="Bearer wrong")
    assert_error(response, 401, "invalid_api_key")
    assert_error(httpx.get(f"{emu.base_url}/emulator/calls"), 401, "invalid_api_key")


@pytest.mark.parametrize(
    ("body", "content_type", "code", "words"),
    [
        (HOLLOW_OFFER, "text/plain", "invalid_content_type", "application/sdp"),
        ("hello", "application/sdp", "invalid_offer", "not an SDP offer"),
        (
            HOLLOW_OFFER.split("m=audio")[0] + "m=application 9 UDP/DTLS/SCTP x\r\n",
            "application/sdp",
            "invalid_offer",
            "no audio m-line",
        ),
        (
            HOLLOW_OFFER.split("m=application")[0],
            "application/sdp",
            "invalid_offer",
            "data channel",
        ),
        (HOLLOW_OFFER, "application/sdp", "invalid_offer", "could not be applied"),
    ],
)
def test_bad_offers_are_400_not_500(
    emu: Emulator, body: str, content_type: str, code: str, words: str
) -> None:
    response = post_offer(emu, body, **{"Content-Type": content_type})
    assert_error(response, 400, code)
    assert words in response.json()["error"]["message"]
    assert emu.calls == []  # a refused offer leaves no call behind


def test_reject_calls_status_knob() -> None:
    with Emulator(reject_calls_status=503) as emu:
        assert_error(post_offer(emu, HOLLOW_OFFER), 503, "emulated_rejection")
        emu.configure(reject_calls_status=429)
        assert_error(post_offer(emu, HOLLOW_OFFER), 429, "emulated_rejection")


def test_unknown_route_is_json_404(emu: Emulator) -> None:
    response = httpx.get(f"{emu.base_url}/v1/nothing")
    assert response.status_code == 404 and "error" in response.json()


def test_list_calls_route(emu: Emulator) -> None:
    response = httpx.get(
        f"{emu.base_url}/emulator/calls", headers={"Authorization": f"Bearer {emu.api_key}"}
    )
    assert response.status_code == 200 and response.json() == []


def test_api_key_repr_and_lifecycle() -> None:
    emu = Emulator(api_key="secret-key-123", port=0)
    assert "secret-key-123" not in repr(emu)
    emu.stop()  # before start: harmless
    assert emu.start() is emu
    port = emu.port
    assert emu.base_url == f"http://127.0.0.1:{port}"
    assert "secret-key-123" not in repr(emu) and str(port) in repr(emu)
    assert emu.api_key == "secret-key-123"
    emu.stop()
    emu.stop()  # idempotent
    assert not emu.running
    with socket.socket() as sock:  # the port is free again
        sock.bind(("127.0.0.1", port))
    assert Emulator().api_key != Emulator().api_key  # random per emulator


def test_unknown_knob_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="speech_rat"):
        Emulator(speech_rat=3)
    with pytest.raises(ValueError, match="reject_calls_status"):
        Emulator(reject_calls_status=200)
    with pytest.raises(ValueError, match="keep_finished_calls"):
        Emulator(keep_finished_calls=-1)


def test_missing_dependency_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "aiortc", None)  # makes `import aiortc` fail
    with pytest.raises(ImportError, match=r'pip install "realtime-widget\[emulator\]"'):
        require_emulator_deps()
    monkeypatch.undo()
    importlib.import_module("aiortc")


def test_cli_serves_until_sigterm() -> None:
    # --api-key wins over the environment variable.
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(sys.path),
        "REALTIME_EMULATOR_API_KEY": "not-k1",
    }
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "realtime_widget.emulator",
            "--port",
            "0",
            "--api-key",
            "k1",
            "--first-delta-delay-ms",
            "5",
            "--drop-channel-after",
            "none",
            "--exhaust-after",
            "50",
        ],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        assert line.startswith("realtime emulator listening on http://127.0.0.1:")
        url = line.rsplit(" ", 1)[-1]
        response = httpx.get(
            f"{url}/v1/realtime/ice-servers", headers={"Authorization": "Bearer k1"}
        )
        assert response.json() == {"ice_servers": []}
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def free_loopback_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def run_cli_until_sigterm(env_key: str | None) -> tuple[list[str], str]:
    """Start the CLI on a free loopback port; return its first line(s) and the key that works.

    With ``env_key`` None, the key must be printed on the line after "listening on".
    """
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    env.pop("REALTIME_EMULATOR_API_KEY", None)
    if env_key is not None:
        env["REALTIME_EMULATOR_API_KEY"] = env_key
    port = free_loopback_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "realtime_widget.emulator", "--port", str(port)],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    watchdog = threading.Timer(30, proc.kill)  # a hung CLI must not hang the suite
    watchdog.start()
    try:
        assert proc.stdout is not None
        lines = [proc.stdout.readline().rstrip("\n")]
        assert lines[0] == f"realtime emulator listening on http://127.0.0.1:{port}"
        if env_key is None:
            lines.append(proc.stdout.readline().rstrip("\n"))
            label, _, key = lines[1].partition(": ")
            assert label == "api key" and len(key) >= 20 and key.strip() == key
        else:
            key = env_key
        url = f"http://127.0.0.1:{port}/v1/realtime/ice-servers"
        ok = httpx.get(url, headers={"Authorization": f"Bearer {key}"})
        assert ok.status_code == 200 and ok.json() == {"ice_servers": []}
        wrong = httpx.get(url, headers={"Authorization": f"Bearer {key}x"})
        assert wrong.status_code == 401
        os.kill(proc.pid, signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
        rest = proc.stdout.read()
        assert "api key" not in rest and key not in rest  # printed once at most
        return lines, key
    finally:
        watchdog.cancel()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


def test_cli_prints_a_generated_key_once() -> None:
    lines, key = run_cli_until_sigterm(env_key=None)
    assert lines[1] == f"api key: {key}"


def test_cli_takes_the_key_from_the_environment_and_does_not_print_it() -> None:
    lines, key = run_cli_until_sigterm(env_key="env-key-42")
    assert key == "env-key-42" and len(lines) == 1


def test_exhaust_after_knob_and_flag() -> None:
    from realtime_widget.emulator.__main__ import build_parser

    assert build_parser().parse_args(["--exhaust-after", "7"]).exhaust_after == 7
    assert build_parser().parse_args(["--exhaust-after", "none"]).exhaust_after is None
    assert Emulator(exhaust_after=3).knobs.exhaust_after == 3
    with pytest.raises(ValueError, match="exhaust_after"):
        Emulator(exhaust_after=-1)
