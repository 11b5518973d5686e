"""Each leg of a message's way between the page and the kernel, timed at both ends.

Installed by the benchmark only (nothing here ships): the page side hooks JupyterLab's kernel
connection (``anyMessage`` for when a message leaves or arrives on the page's websocket, and
``_handleMessage`` for when JupyterLab's per-kernel message chain reaches it and finishes
it); the kernel side wraps the session's ``send`` (every message the kernel puts on a channel)
and the ``comm_msg`` handler (when the kernel's main thread starts a page's comm message).
Both stamp epoch ms (the page: ``performance.timeOrigin + now()``; the kernel:
``time.time()``), so a message is followed across by its ``msg_id``.

``Legs`` collects both sides' logs once a phase is over (no polling meanwhile) and answers
"when did the message carrying X leave, arrive, get handled".
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

# The page half: a log of kernel messages sent and received, and of the chain's handling.
PAGE_HOOK = """() => {
  const k = window.jupyterapp?.shell?.currentWidget?.sessionContext?.session?.kernel;
  if (!k) return false;
  if (k.__legs) return true;
  const now = () => performance.timeOrigin + performance.now();
  const legs = (window.__legs = window.__legs || { on: false, msgs: [], handled: [] });
  const what = (msg) => {
    const d = msg.content && msg.content.data;
    if (msg.header.msg_type === 'status') return { state: msg.content.execution_state };
    if (!d) return {};
    const out = { method: d.method };
    if (d.state) out.keys = Object.keys(d.state);
    const c = d.content;
    if (c && typeof c === 'object') {
      out.kind = c.kind;
      out.action = c.action;
      if (Array.isArray(c.records))
        out.records = c.records.map((r) => [
          r.seq, r.event && r.event.type, r.event && (r.event.event_id || null),
          r.event && (r.event.call_id || (r.event.item && r.event.item.call_id) || null),
        ]);
      if (Array.isArray(c.events))
        out.events = c.events.map((e) => [
          e.type, (e.item && e.item.call_id) || null,
        ]);
      if (typeof c.t_ms === 'number') out.t_ms = c.t_ms;
    }
    return out;
  };
  k.anyMessage.connect((_, a) => {
    if (!legs.on) return;
    const m = a.msg;
    legs.msgs.push({
      t: now(), dir: a.direction, id: m.header.msg_id,
      parent: (m.parent_header && m.parent_header.msg_id) || null,
      type: m.header.msg_type, what: what(m),
    });
  });
  const handle = k._handleMessage;
  k._handleMessage = async function (msg) {
    const t0 = now();
    try {
      return await handle.call(this, msg);
    } finally {
      if (legs.on) legs.handled.push({ id: msg.header.msg_id, t0, t1: now() });
    }
  };
  k.__legs = true;
  return true;
}"""

PAGE_START = (
    "() => { window.__legs.msgs = []; window.__legs.handled = []; window.__legs.on = true; }"
)
PAGE_TAKE = "() => { window.__legs.on = false; return JSON.stringify(window.__legs); }"

# The kernel half (run once in the kernel).
KERNEL_HOOK = """
import time as _lt
class _KernelLegs:
    def __init__(self):
        self.on = False
        self.tx = []  # (t, msg_id, msg_type, what, parent id): every message the kernel sends
        self.comm_in = []  # (t, msg_id): the main thread starts a page's comm message
    def start(self):
        self.tx, self.comm_in, self.on = [], [], True
    def take(self):
        self.on = False
        return {"tx": self.tx, "comm_in": self.comm_in}

def _legs_what(msg_type, content):
    if msg_type == "status":
        return {"state": content.get("execution_state")}
    d = content.get("data") if isinstance(content, dict) else None
    if not isinstance(d, dict):
        return {}
    out = {"method": d.get("method")}
    if isinstance(d.get("state"), dict):
        out["keys"] = sorted(d["state"])
    c = d.get("content")
    if isinstance(c, dict):
        out["kind"] = c.get("kind")
        if isinstance(c.get("events"), list):
            out["events"] = [
                [e.get("type"), (e.get("item") or {}).get("call_id")]
                for e in c["events"] if isinstance(e, dict)
            ]
    return out

_klegs = _KernelLegs()
_lk = get_ipython().kernel
_legs_send = _lk.session.send
def _legs_session_send(*a, **kw):
    msg = _legs_send(*a, **kw)
    if _klegs.on and isinstance(msg, dict):
        try:
            h = msg["header"]
            parent = (msg.get("parent_header") or {}).get("msg_id")
            _klegs.tx.append((_lt.time() * 1000.0, h["msg_id"], h["msg_type"],
                              _legs_what(h["msg_type"], msg.get("content") or {}), parent))
        except Exception:
            pass
    return msg
_lk.session.send = _legs_session_send
_legs_comm_msg = _lk.shell_handlers["comm_msg"]
def _legs_on_comm_msg(stream, ident, msg):
    if _klegs.on:
        _klegs.comm_in.append((_lt.time() * 1000.0, msg["header"]["msg_id"]))
    return _legs_comm_msg(stream, ident, msg)
_lk.shell_handlers["comm_msg"] = _legs_on_comm_msg
"""


# Every phase's raw logs, in order (the benchmark's --dump writes them out).
TAKEN: list[dict[str, Any]] = []


@dataclass
class Legs:
    """Both sides' logs of one phase."""

    msgs: list[dict[str, Any]]  # the page's: {t, dir, id, parent, type, what}
    handled: dict[str, tuple[float, float]]  # msg id -> when the page's chain began / ended it
    tx: dict[str, tuple[float, str, dict[str, Any], str | None]]  # id -> (t, type, what, parent)
    comm_in: dict[str, float]  # kernel: msg id -> when its main thread began it
    _recv: dict[str, float] = field(default_factory=dict)

    @classmethod
    def take(cls, page: Any, book: Any) -> Legs:
        p = json.loads(page.evaluate(PAGE_TAKE))
        k = book.kernel_json("_klegs.take()")
        TAKEN.append({"page": p, "kernel": k})
        legs = cls(
            msgs=p["msgs"],
            handled={h["id"]: (h["t0"], h["t1"]) for h in p["handled"]},
            tx={m[1]: (m[0], m[2], m[3], m[4]) for m in k["tx"]},
            comm_in={m[1]: m[0] for m in k["comm_in"]},
        )
        legs._recv = {m["id"]: m["t"] for m in p["msgs"] if m["dir"] == "recv"}
        return legs

    def sent(self, match: Callable[[dict[str, Any]], bool]) -> dict[str, Any] | None:
        """The first message the page sent whose ``what`` matches."""
        return next((m for m in self.msgs if m["dir"] == "send" and match(m["what"])), None)

    def kernel_sent(self, match: Callable[[dict[str, Any]], bool]) -> str | None:
        """The id of the first message the kernel sent whose ``what`` matches."""
        return next((i for i, (_, _, w, _) in self.tx.items() if match(w)), None)

    def to_kernel(self, msg: dict[str, Any]) -> dict[str, float] | None:
        """Page send -> the kernel's main thread starts it."""
        t_in = self.comm_in.get(msg["id"])
        return None if t_in is None else {"sent": msg["t"], "kernel_in": t_in}

    def to_page(self, msg_id: str) -> dict[str, float] | None:
        """Kernel send -> page websocket receive -> the chain begins it -> ends it."""
        if msg_id not in self.tx or msg_id not in self._recv or msg_id not in self.handled:
            return None
        t0, t1 = self.handled[msg_id]
        return {
            "kernel_sent": self.tx[msg_id][0],
            "page_recv": self._recv[msg_id],
            "chain_begin": t0,
            "chain_end": t1,
        }

    def ahead_in_chain(self, msg_id: str) -> list[str]:
        """What the page's chain was still busy with when ``msg_id`` arrived (in order)."""
        t_recv = self._recv.get(msg_id)
        if t_recv is None:
            return []
        out = []
        for m in self.msgs:
            if m["dir"] != "recv" or m["id"] == msg_id:
                continue
            h = self.handled.get(m["id"])
            if h and h[1] > t_recv and m["t"] <= t_recv:
                out.append(describe(m))
        return out


def describe(m: dict[str, Any]) -> str:
    w = m.get("what") or {}
    if m["type"] == "status":
        return f"status:{w.get('state')}"
    if w.get("method") == "update":
        return f"update({','.join(w.get('keys') or [])})"
    if w.get("method") == "custom":
        return f"custom:{w.get('kind')}"
    return str(m["type"])


def stats(values: Iterable[float]) -> str:
    v = sorted(x for x in values if x == x)
    if not v:
        return "n/a"
    p95 = v[min(len(v) - 1, int(0.95 * len(v)))]
    return f"p50 {statistics.median(v):6.1f}  p95 {p95:6.1f}"


def print_legs(
    title: str, rows: Sequence[dict[str, float]], order: Sequence[tuple[str, str, str]]
) -> None:
    """One line per leg: (label, from-key, to-key), p50/p95 over ``rows`` (ms)."""
    print(f"{title} ({len(rows)} samples), per leg in ms:")
    for label, a, b in order:
        print(f"  {label:<44} {stats(r[b] - r[a] for r in rows if a in r and b in r)}")
