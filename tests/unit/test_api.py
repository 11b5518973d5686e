"""The public API as a user imports and calls it: the exported names, the handle types, and
``send`` left to ipywidgets (``send_event`` is the client-event method)."""

from __future__ import annotations

import importlib
import re
import types
from pathlib import Path

import ipywidgets
import pytest

import realtime_widget
import realtime_widget.types as rtw_types
from realtime_widget import RealtimeWidget
from tests.conftest import SENTINEL_KEY, pretend_live
from tests.helpers import seam
from tests.helpers.public_api import PUBLIC

ROOT = Path(__file__).resolve().parents[2]
DOCS = [
    ROOT / "README.md",
    ROOT / "CHANGELOG.md",
    ROOT / "CONTRIBUTING.md",
    *sorted(p for p in (ROOT / "docs").rglob("*.md") if "examples" not in p.parts),
]


@pytest.mark.parametrize("package", sorted(PUBLIC))
def test_every_public_package_exports_are_pinned(package: str) -> None:
    module = importlib.import_module(package)
    assert module.__all__ == PUBLIC[package]
    for name in module.__all__:
        assert getattr(module, name) is not None


@pytest.mark.parametrize("package", sorted(PUBLIC))
def test_public_classes_show_a_public_module(package: str) -> None:
    """``repr``, ``help()`` and tracebacks name the module a user imports a class from, never
    the private module it is written in; and that module really has it (pickling finds it)."""
    module = importlib.import_module(package)
    for name in module.__all__:
        obj = getattr(module, name)
        # a class, not a parametrized alias (``Callable[[...], str]`` is a type on 3.10)
        if not isinstance(obj, type) or isinstance(obj, types.GenericAlias):
            continue
        assert "._" not in obj.__module__, (package, name, obj.__module__)
        assert getattr(importlib.import_module(obj.__module__), obj.__qualname__) is obj


def test_every_error_of_the_package_derives_from_one_exported_base() -> None:
    import pkgutil

    base = realtime_widget.RealtimeWidgetError
    assert issubclass(realtime_widget.ProviderError, base)
    found = []
    for info in pkgutil.walk_packages(realtime_widget.__path__, "realtime_widget."):
        if info.name.endswith("__main__"):
            continue
        module = importlib.import_module(info.name)
        for value in vars(module).values():
            if (
                isinstance(value, type)
                and issubclass(value, BaseException)
                and value.__module__.startswith("realtime_widget")
            ):
                found.append(value)
                assert issubclass(value, base), f"{value.__module__}.{value.__qualname__}"
    assert len(set(found)) >= 7  # the session's, the delivery's, the sideband's, the models'...


def test_the_handle_types_are_pinned_and_are_what_the_widget_returns() -> None:
    w = RealtimeWidget(api_key=SENTINEL_KEY)
    try:
        seam.set_post(w, lambda m: None)
        pretend_live(w)
        assert isinstance(w.ask("hi"), rtw_types.Reply)
        assert isinstance(w.wait_for("response.done"), rtw_types.EventWaiter)
        assert isinstance(w.ready(), rtw_types.Ready)
        assert isinstance(w.events, rtw_types.EventLog)
        assert issubclass(rtw_types.Reply, rtw_types.Pending)
        # the same classes wherever a user imports them from
        assert rtw_types.Runs is realtime_widget.Runs
        assert rtw_types.Recording is realtime_widget.Recording
        assert rtw_types.MidCellDeliveryError is realtime_widget.MidCellDeliveryError
    finally:
        w.close()


def _imports(text: str) -> list[tuple[str, list[str]]]:
    """Every ``from realtime_widget[...] import a, b`` in a document's code."""
    out = []
    for module, names in re.findall(r"from (realtime_widget[\w.]*) import ([\w, ]+)", text):
        out.append((module, [n.strip() for n in names.split(",") if n.strip()]))
    return out


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_name_the_docs_import_is_importable_and_exported(doc: Path) -> None:
    found = _imports(doc.read_text(encoding="utf-8"))
    for module, names in found:
        mod = importlib.import_module(module)
        public = getattr(mod, "__all__", None)
        for name in names:
            assert hasattr(mod, name), f"{doc.name}: {module} has no {name}"
            if public is not None:
                assert name in public, f"{doc.name}: {name} is not in {module}.__all__"


def test_the_readme_imports_something() -> None:
    # the check above must have something to check
    assert _imports((ROOT / "README.md").read_text(encoding="utf-8"))


def test_send_is_ipywidgets_own_and_send_event_sends_the_client_event() -> None:
    assert RealtimeWidget.send is ipywidgets.Widget.send
    w = RealtimeWidget(api_key=SENTINEL_KEY)
    try:
        got: list[tuple[dict, list | None]] = []
        w.comm.send = lambda data=None, metadata=None, buffers=None: got.append((data, buffers))
        # ipywidgets' (and anywidget's) own path: content and buffers go to the comm as they are
        w.send({"hello": 1}, [b"\x00\x01"])
        assert got[-1] == ({"method": "custom", "content": {"hello": 1}}, [b"\x00\x01"])
        pretend_live(w)
        w.send_event({"type": "response.create", "response": {"instructions": "Be brief."}})
        data, buffers = got[-1]
        assert buffers is None
        assert data["method"] == "custom"
        assert data["content"]["kind"] == "send"
        assert data["content"]["events"] == [
            {"type": "response.create", "response": {"instructions": "Be brief."}}
        ]
        with pytest.raises(ValueError, match="type"):
            w.send_event({"no": "type"})
    finally:
        w.close()


def test_the_key_never_rides_a_message_to_the_page() -> None:
    w = RealtimeWidget(api_key=SENTINEL_KEY)
    try:
        got: list[dict] = []
        w.comm.send = lambda data=None, metadata=None, buffers=None: got.append(data)
        pretend_live(w)
        w.send_event({"type": "response.create", "response": {"instructions": SENTINEL_KEY}})
        assert got and SENTINEL_KEY not in repr(got)
    finally:
        w.close()


def test_ask_puts_metadata_beside_its_own_id() -> None:
    w = RealtimeWidget(api_key=SENTINEL_KEY)
    try:
        sent: list[dict] = []
        seam.set_post(w, sent.append)
        pretend_live(w)
        reply = w.ask("Which turn is this?", metadata={"rtw_run": "fast/1", "turn": "2"})
        create = sent[-1]["events"][-1]
        assert create["type"] == "response.create"
        assert create["response"]["metadata"] == {
            "rtw_run": "fast/1",
            "turn": "2",
            "rtw_ask": reply.ask_id,
        }
        with pytest.raises(TypeError, match="metadata"):
            w.ask("again", metadata=["not", "a", "dict"])  # type: ignore[arg-type]
    finally:
        w.close()


def test_a_cancelled_waiter_hears_nothing_more() -> None:
    w = RealtimeWidget(api_key=SENTINEL_KEY)
    try:
        seam.set_post(w, lambda m: None)
        pretend_live(w)
        kept, dropped = w.wait_for("response.done"), w.wait_for("response.done")
        dropped.cancel()
        seam.from_page(
            w,
            {
                "kind": "events",
                "call": 1,
                "records": [
                    {"seq": 0, "dir": "server", "t_ms": 1.0, "event": {"type": "response.done"}}
                ],
            },
            [],
        )
        assert kept.done and kept.event == {"type": "response.done"}
        assert not dropped.done and dropped.event is None
    finally:
        w.close()


def test_the_tool_api_reads_as_one_feature() -> None:
    # (tools and tool_choice are the session's fields; tooltip is ipywidgets')
    session = {"tools", "tool_choice", "tooltip"}
    names = {n for n in dir(RealtimeWidget) if "tool" in n and not n.startswith("_")} - session
    assert names == {
        "tool",
        "tool_calls",
        "tool_functions",
        "remove_tool",
        "approve_tool_call",
        "reject_tool_call",
    }
    assert not hasattr(RealtimeWidget, "approve") and not hasattr(RealtimeWidget, "reject")


def test_every_module_of_the_package_imports() -> None:
    """Each module, the emulator's included, imports on this Python with the extras installed:
    the other supported Pythons run this tier, and only the oldest runs the emulator's own."""
    import pkgutil

    names = [m.name for m in pkgutil.walk_packages(realtime_widget.__path__, "realtime_widget.")]
    assert "realtime_widget.emulator._server" in names and len(names) > 60, names
    for name in names:
        if name.endswith("__main__"):
            continue  # a command: importing it runs it
        importlib.import_module(name)
