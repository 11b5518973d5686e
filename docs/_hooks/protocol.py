"""A mkdocs hook: the internals page's tables of the kernel <-> page protocol, rendered from
src/realtime_widget/protocol.json at build time, so the page cannot drift from the file both
halves of the code load."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

PROTOCOL = Path(__file__).resolve().parents[2] / "src" / "realtime_widget" / "protocol.json"
MARK = "<!-- protocol.json -->"


def _cell(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value)
    return text.replace("|", "\\|").replace("\n", " ")


def _fields(names: list[str]) -> str:
    return ", ".join(f"`{n}`" for n in names) or "—"


def render(spec: dict[str, Any]) -> str:
    out = [f"*{_cell(spec['$comment'])}*", ""]
    for title, key in (("Kernel → page", "to_browser"), ("Page → kernel", "to_kernel")):
        out += [f"### {title}", "", "| kind | fields | binary payload |", "| --- | --- | --- |"]
        for kind, fields in spec[key].items():
            buf = spec["buffers"].get(kind, "")
            out.append(f"| `{kind}` | {_fields(fields)} | {_cell(buf)} |")
        out.append("")
    out += [
        "### Records, requests and statuses",
        "",
        "| what | values |",
        "| --- | --- |",
        f"| an `events` record | {_fields(spec['record_fields'])} |",
        f"| a record's `dir` | {_fields(spec['directions'])} |",
        f"| a `request`'s `action` (the page's buttons) | {_fields(spec['request_actions'])} |",
        f"| `status` | {_fields(spec['statuses'])} |",
        f"| traits only Python writes | {_fields(spec['python_owned_traits'])} |",
        f"| ICE gathering deadline | {spec['gather_timeout_ms']} ms |",
        "",
        "### Limits",
        "",
        "| limit | value |",
        "| --- | --- |",
    ]
    out += [f"| `{k}` | {v:,} |" for k, v in spec["limits"].items()]
    out += [
        "",
        "### Local events",
        "",
        "Records that are neither a client nor a server event: "
        "what only the page (or the kernel) can measure or refuse.",
        "",
        "| type | from | fields |",
        "| --- | --- | --- |",
    ]
    for name, ev in spec["local_events"].items():
        out.append(f"| `{name}` | {ev.get('from', '')} | {_cell(ev.get('fields', ''))} |")
    return "\n".join(out) + "\n"


def on_page_markdown(markdown: str, **_: Any) -> str:
    if MARK not in markdown:
        return markdown
    return markdown.replace(MARK, render(json.loads(PROTOCOL.read_text(encoding="utf-8"))))
