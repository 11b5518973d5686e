"""``python -m realtime_widget.emulator``: serve the emulator until SIGINT or SIGTERM.

The API key comes from ``--api-key``, else from ``$REALTIME_EMULATOR_API_KEY``; with neither, a
random one is generated and printed once (``api key: <key>``) after the "listening on" line.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import signal
import threading
import types
from collections.abc import Sequence
from typing import Any

API_KEY_ENV = "REALTIME_EMULATOR_API_KEY"


def _parse_optional_int(text: str) -> int | None:
    return None if text.lower() in ("", "none") else int(text)


def _parse_optional_float(text: str) -> float | None:
    return None if text.lower() in ("", "none") else float(text)


def _parse_bool(text: str) -> bool:
    if text.lower() in ("1", "true", "yes", "on"):
        return True
    if text.lower() in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError("true or false")


_CONVERTERS: dict[str, Any] = {
    "float": float,
    "str": str,
    "bool": _parse_bool,
    "float | None": _parse_optional_float,
    "tuple[str, ...]": str,  # auth_schemes: "Basic" or "Bearer,Basic"
}


def _parse_ice_servers(text: str) -> tuple[dict[str, Any], ...]:
    servers = json.loads(text)
    if not isinstance(servers, list) or not all(isinstance(s, dict) for s in servers):
        raise argparse.ArgumentTypeError('a JSON list of objects, e.g. [{"urls": ["stun:..."]}]')
    return tuple(servers)


def build_parser() -> argparse.ArgumentParser:
    """The command line's parser: the port, host, key and log level, and a flag per knob."""
    from . import Knobs

    parser = argparse.ArgumentParser(
        prog="python -m realtime_widget.emulator",
        description="Local realtime emulator: the provider's protocol over WebRTC, on loopback.",
    )
    parser.add_argument("--port", type=int, default=0, help="port to listen on (0: any free one)")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument(
        "--api-key",
        default=None,
        help=f"API key to accept (default: ${API_KEY_ENV}, else a random key, which is printed)",
    )
    parser.add_argument("--log-level", default="WARNING", help="Python logging level")
    knobs = parser.add_argument_group("latency and fault knobs")
    for f in dataclasses.fields(Knobs):
        convert: Any = _CONVERTERS.get(str(f.type), _parse_optional_int)
        if f.name == "ice_servers":
            convert = _parse_ice_servers
        knobs.add_argument(
            "--" + f.name.replace("_", "-"),
            dest=f.name,
            type=convert,
            default=None,
            help=f"{f.metadata['help']} (default: {f.default})",
        )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the emulator until SIGINT or SIGTERM (the ``realtime-emulator`` command)."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper())
    from . import Emulator, Knobs

    names = {f.name for f in dataclasses.fields(Knobs)}
    knobs = {k: v for k, v in vars(args).items() if k in names and v is not None}
    api_key = args.api_key or os.environ.get(API_KEY_ENV) or None
    emulator = Emulator(api_key=api_key, port=args.port, host=args.host, **knobs).start()
    done = threading.Event()

    def on_signal(signum: int, frame: types.FrameType | None) -> None:
        done.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    print(f"realtime emulator listening on {emulator.base_url}", flush=True)
    if api_key is None:  # generated: a throwaway local key that the user cannot know otherwise
        print(f"api key: {emulator.api_key}", flush=True)
    try:
        while not done.wait(0.5):
            pass
    finally:
        emulator.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
