"""Python tools: functions the agent calls, run in the kernel.

``Tool`` turns a function into the session's JSON schema (pydantic builds it from the
signature; docstring-parser reads the parameter docs) and validates the model's arguments.
``ToolRunner`` is the loop: it hears the call's server records, runs each call once (sync
functions on worker threads, ``async def`` on the kernel's loop, several at once), answers with
a ``function_call_output`` item per call and one ``response.create`` per response once no
response is active, and holds calls that need approval. Every step is a ``local`` record
(``tool.started`` / ``tool.approval`` / ``tool.finished``) and shows in the view through the
``tool_calls`` trait. Both are imported only when a tool is registered: the core stays light.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import inspect
import json
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from . import _vocab as V
from ._extras import missing
from ._vocab import obj, text

if TYPE_CHECKING:
    from ._port import CallPort

PREVIEW_CHARS = 500
ARGUMENTS_CHARS = 2000
SHOWN_CALLS = 50  # the tool_calls trait keeps the newest calls only
REMEMBERED_CALLS = 2000  # call ids remembered so that none runs twice
SHOW_RUNNING_AFTER_S = 0.05  # a call still running this long shows as running in the view


def _missing() -> ImportError:
    return missing("tools", "pydantic docstring-parser", "A Python tool")


def without_function(tools: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    """The session's ``tools`` without the function tool ``name`` (other kinds stay)."""
    return [
        t for t in tools if not (t.get("type", "function") == "function" and t.get("name") == name)
    ]


class Tool:
    """A Python function registered as a tool the agent can call: its schema and validator.

    ``tool()`` makes one and runs it in the kernel when the agent calls it. The JSON schema of
    the parameters comes from the signature (pydantic: str, int, float, bool, ``Literal``,
    ``Optional``, ``list[...]``, dict, a ``TypedDict`` or a pydantic model) and the docstring's
    parameter descriptions (docstring-parser); needs the ``tools`` extra. Attributes: ``fn``,
    ``name``, ``description``, ``parameters`` (the schema), ``approve``, ``timeout``,
    ``is_async``. ``w.tool_functions`` lists the registered ones.

    Args:
        fn: The function. Its parameters must be named (no ``*args``, ``**kwargs`` or
            positional-only ones) and typed with types that have a JSON schema.
        name: The tool's name for the model (letters, digits, ``_`` or ``-``); the function's
            name by default.
        description: What the tool does, for the model; the docstring's text by default.
        approve: Hold each call until a person approves it (``approve_tool_call()``).
        timeout: Seconds a call may run before the model is told it timed out; > 0.

    Raises:
        TypeError: ``fn`` is not callable, or a parameter is unnamed or has a type with no JSON
            schema.
        ValueError: A bad name or timeout.

    Example:
        >>> def weather(city: str, unit: str = "C") -> str:
        ...     '''The weather in a city now.
        ...
        ...     Args:
        ...         city: The city's name.
        ...         unit: C or F.
        ...     '''
        ...     return "18 degrees and sunny"
        >>> w.tool(weather)
        <function weather at 0x...>
        >>> w.tool_functions["weather"]
        <Tool weather(city, unit)>
    """

    def __init__(
        self,
        fn: Callable[..., Any],
        *,
        name: str | None = None,
        description: str | None = None,
        approve: bool = False,
        timeout: float = 30.0,
    ) -> None:
        if not callable(fn):
            raise TypeError(f"a tool must be a function; got {fn!r}")
        if not (isinstance(timeout, int | float) and timeout > 0):
            raise ValueError(f"timeout must be a number of seconds > 0; got {timeout!r}")
        self.fn = fn
        self.name: str = name or str(getattr(fn, "__name__", ""))
        if not self.name or not self.name.replace("_", "a").replace("-", "a").isalnum():
            raise ValueError(
                f"a tool name must be letters, digits, '_' or '-'; got {self.name!r} "
                "(pass name=...)"
            )
        self.approve = bool(approve)
        self.timeout = float(timeout)
        self.is_async = inspect.iscoroutinefunction(fn)
        summary, param_docs = _docs(fn)
        self.description = description if description is not None else summary
        self._model = _arguments_model(fn, self.name, param_docs)
        schema = self._model.model_json_schema()
        schema.pop("title", None)
        for prop in schema.get("properties", {}).values():
            prop.pop("title", None)
        self.parameters: dict[str, Any] = schema

    def schema(self) -> dict[str, Any]:
        """The tool's entry for the session's ``tools`` list.

        Returns:
            ``{"type": "function", "name": ..., "description": ..., "parameters": {...}}``, the
            parameters as a JSON schema.

        Example:
            >>> w.tool_functions["weather"].schema()["parameters"]["required"]
            ['city']
        """
        return {
            "type": "function",
            "name": self.name,
            "description": self.description,
            "parameters": self.parameters,
        }

    def validate(self, arguments: Any) -> dict[str, Any]:
        """Check the model's arguments and turn them into the function's keyword arguments.

        Args:
            arguments: The arguments as the model sent them: a JSON string (empty for none) or a
                dict.

        Returns:
            The keyword arguments to call the function with, defaults filled in.

        Raises:
            ValueError: The arguments are not a JSON object or do not fit the parameters; the
                words name each problem so the model can act on them.

        Example:
            >>> w.tool_functions["weather"].validate('{"city": "Lisbon"}')
            {'city': 'Lisbon', 'unit': 'C'}
        """
        from pydantic import ValidationError

        if isinstance(arguments, str):
            try:
                arguments = json.loads(arguments) if arguments.strip() else {}
            except ValueError as exc:
                raise ValueError(f"arguments are not valid JSON ({exc})") from None
        if not isinstance(arguments, dict):
            raise ValueError(f"arguments must be a JSON object; got {type(arguments).__name__}")
        try:
            model = self._model.model_validate(arguments)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or 'arguments'}: {e['msg']}"
                for e in exc.errors()
            )
            raise ValueError(f"invalid arguments for {self.name}: {problems}") from None
        return {name: getattr(model, name) for name in type(model).model_fields}

    def __repr__(self) -> str:
        flags = ", approve=True" if self.approve else ""
        return f"<Tool {self.name}({', '.join(self.parameters.get('properties', {}))}){flags}>"


def _docs(fn: Callable[..., Any]) -> tuple[str, dict[str, str]]:
    try:
        from docstring_parser import parse
    except ImportError:
        raise _missing() from None
    doc = parse(inspect.getdoc(fn) or "")
    summary = " ".join(filter(None, [doc.short_description, doc.long_description]))
    return summary, {p.arg_name: p.description or "" for p in doc.params}


def _arguments_model(fn: Callable[..., Any], name: str, param_docs: dict[str, str]) -> Any:
    try:
        import typing

        from pydantic import ConfigDict, Field, create_model
        from pydantic.errors import PydanticSchemaGenerationError, PydanticUserError
    except ImportError:
        raise _missing() from None
    try:
        hints = typing.get_type_hints(fn, include_extras=True)
    except Exception as exc:  # an annotation that names something undefined
        raise TypeError(f"tool {name!r}: cannot read its type hints ({exc})") from None
    fields: dict[str, Any] = {}
    for pname, param in inspect.signature(fn).parameters.items():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            raise TypeError(
                f"tool {name!r}: parameter {param.name!r} is *args/**kwargs; a tool's "
                "parameters must be named"
            )
        if param.kind == param.POSITIONAL_ONLY:
            raise TypeError(f"tool {name!r}: parameter {pname!r} is positional-only")
        annotation = hints.get(pname, Any)
        default = ... if param.default is param.empty else param.default
        fields[pname] = (annotation, Field(default, description=param_docs.get(pname) or None))
    try:
        model = create_model(
            f"{name}_arguments",
            __config__=ConfigDict(extra="forbid", arbitrary_types_allowed=False),
            **fields,
        )
        model.model_json_schema()
    except (PydanticSchemaGenerationError, PydanticUserError, TypeError) as exc:
        bad = _unsupported_parameter(fields, create_model)
        where = f"parameter {bad!r}" if bad else "a parameter"
        raise TypeError(
            f"tool {name!r}: {where} has a type that has no JSON schema "
            f"({str(exc).splitlines()[0]}); use str, int, float, bool, Literal, Optional, "
            "list[...], dict, a TypedDict or a pydantic model"
        ) from None
    return model


def _unsupported_parameter(fields: dict[str, Any], create_model: Any) -> str | None:
    for pname, spec in fields.items():
        try:
            create_model("probe", **{pname: spec}).model_json_schema()
        except Exception:
            return pname
    return None


def serialize(output: Any) -> str:
    """A tool's return value as the text the model reads: strings as they are, the rest JSON."""
    if isinstance(output, str):
        return output
    try:
        from pydantic import BaseModel

        if isinstance(output, BaseModel):
            return output.model_dump_json()
    except ImportError:
        pass
    try:
        return json.dumps(output, default=str, ensure_ascii=False)
    except (TypeError, ValueError):
        return str(output)


# -- the loop ----------------------------------------------------------------------------------


@dataclass
class ToolCall:
    call_id: str
    name: str | None = None
    item_id: str | None = None
    response_id: str = ""
    arguments: str | None = None
    status: str = "waiting"  # waiting | pending_approval | running | a final status
    output: str = ""
    error: str = ""
    duration_ms: float | None = None
    started: float | None = None
    answered: bool = False
    decision: tuple[bool, str] | None = None
    # set (thread-safely, on the loop the call waits on) when the user decides
    wake: Callable[[], object] | None = None

    def shown(self) -> dict[str, Any]:
        args = self.arguments or ""
        return {
            "call_id": self.call_id,
            "name": self.name or "",
            "arguments": args if len(args) <= ARGUMENTS_CHARS else args[:ARGUMENTS_CHARS] + "…",
            "status": _SHOWN.get(self.status, self.status),
            "output_preview": _preview(self.output),
            "error": self.error,
            "duration_ms": self.duration_ms,
            "response_id": self.response_id,
        }


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def _preview(s: str) -> str:
    return s if len(s) <= PREVIEW_CHARS else s[:PREVIEW_CHARS] + "…"


FINAL = ("ok", "error", "timeout", "invalid_arguments", "unknown_tool", "rejected")
# What the view is shown for each status (a decision in flight shows as its outcome).
_SHOWN = {
    "pending_approval": "pending_approval",
    "approved": "running",
    "running": "running",
    "rejecting": "rejected",
    **{s: s for s in FINAL},
}


class ToolRunner:
    """The tool loop of one widget: hears function calls, runs them, answers the model.

    It also shows the latest calls (``show_calls``: the widget's ``tool_calls`` trait).
    """

    def __init__(self, port: CallPort, show_calls: Callable[[list[dict[str, Any]]], None]) -> None:
        self._port = port
        self._show_calls = show_calls
        self.tools: dict[str, Tool] = {}
        self._calls: OrderedDict[str, ToolCall] = OrderedDict()
        self._by_item: dict[str, str] = {}  # item id -> call id
        self._active: set[str] = set()  # responses in flight (this call)
        self._owed: set[str] = set()  # responses whose tool outputs still want a response.create
        self._lock = threading.RLock()
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None
        self._thread_loop: asyncio.AbstractEventLoop | None = None

    # -- hearing the call ------------------------------------------------------------------

    def reset(self) -> None:
        """A new call: nothing is in flight, no output is owed."""
        with self._lock:
            self._active.clear()
            self._owed.clear()

    def on_record(self, direction: str, ev: Mapping[str, Any], t_ms: float, call: int) -> None:
        if direction != "server":
            return
        etype = V.canonical(ev.get("type"))
        if etype == V.RESPONSE_CREATED:
            rid = text(obj(ev.get("response")).get("id"))
            if rid:
                self._active.add(rid)
        elif etype == V.RESPONSE_DONE:
            self._active.discard(text(obj(ev.get("response")).get("id")) or "")
            self._answer_when_ready()
        elif etype in (V.OUTPUT_ITEM_ADDED, V.OUTPUT_ITEM_DONE):
            item = obj(ev.get("item"))
            if item.get("type") == "function_call":
                self._heard(item, text(ev.get("response_id")) or "", etype.endswith(".done"))
        elif etype in (V.ITEM_ADDED, V.ITEM_DONE):
            item = obj(ev.get("item"))
            if item.get("type") == "function_call":
                self._heard(item, "", etype.endswith(".done"))
        elif etype == V.FUNCTION_ARGUMENTS_DONE:
            call_id = text(ev.get("call_id")) or self._by_item.get(text(ev.get("item_id")) or "")
            if call_id:
                self._update(
                    call_id,
                    name=text(ev.get("name")),
                    item_id=text(ev.get("item_id")),
                    response_id=text(ev.get("response_id")),
                    arguments=text(ev.get("arguments")),
                )

    def _heard(self, item: Mapping[str, Any], response_id: str, done: bool) -> None:
        call_id = text(item.get("call_id"))
        if not call_id:
            return
        args = text(item.get("arguments"))
        self._update(
            call_id,
            name=text(item.get("name")),
            item_id=text(item.get("id")),
            response_id=response_id or None,
            # arguments are only final on a .done item (an .added one has "")
            arguments=args if done else None,
        )

    def _update(
        self,
        call_id: str,
        *,
        name: str | None,
        item_id: str | None,
        response_id: str | None,
        arguments: str | None,
    ) -> None:
        with self._lock:
            call = self._calls.get(call_id)
            if call is None:
                call = self._calls[call_id] = ToolCall(call_id)
                while len(self._calls) > REMEMBERED_CALLS:
                    old, _ = self._calls.popitem(last=False)
                    self._by_item = {k: v for k, v in self._by_item.items() if v != old}
            call.name = call.name or name
            if item_id:
                call.item_id = item_id
                self._by_item[item_id] = call_id
            call.response_id = call.response_id or response_id or ""
            if call.arguments is None and arguments is not None:
                call.arguments = arguments
            ready = call.status == "waiting" and call.name and call.arguments is not None
            if ready:
                call.status = "starting"  # from here on, this call id never starts again
        if ready:
            self._start(call)

    # -- running ---------------------------------------------------------------------------

    def _start(self, call: ToolCall) -> None:
        self._owed.add(call.response_id)  # "" when the call's response was never named
        self._port.log_local(
            {
                "type": "tool.started",
                "call_id": call.call_id,
                "name": call.name,
                "arguments": call.arguments,
                "response_id": call.response_id,
            }
        )
        tool = self.tools.get(call.name or "")
        if tool is None:
            known = ", ".join(sorted(self.tools)) or "none"
            self._finish(call, "unknown_tool", error=f"unknown tool {call.name!r}; known: {known}")
            return
        try:
            kwargs = tool.validate(call.arguments)
        except ValueError as exc:
            self._finish(call, "invalid_arguments", error=str(exc))
            return
        if tool.approve:
            call.status = "pending_approval"
            self._port.log_local(
                {
                    "type": "tool.approval",
                    "call_id": call.call_id,
                    "name": call.name,
                    "decision": "pending",
                    "reason": "",
                }
            )
            self._show()
        if not tool.is_async and not tool.approve:
            self._run_in_thread(call, tool, kwargs)  # the kernel hop's fast path
            return
        self._submit(self._run(call, tool, kwargs))

    def _run_in_thread(self, call: ToolCall, tool: Tool, kwargs: dict[str, Any]) -> None:
        """A plain function: straight onto a worker thread.

        Its outcome is handed back to the loop in one hop (no task, no wait_for: each would
        cost a turn of the loop).
        """
        loop = self._port.loop()
        if loop is None or not loop.is_running():
            loop = self._own_loop()
        call.status = "running"
        timer: list[asyncio.TimerHandle] = []

        def report(status: str, output: str, error: str, ran_ms: float | None) -> None:
            for handle in timer:  # (on the loop)
                handle.cancel()
            if call.status == "running":  # (not timed out meanwhile)
                call.duration_ms = ran_ms  # the function's own time
                self._finish(call, status, output=output, error=error)

        def work() -> None:  # on a worker thread
            began = time.perf_counter()
            try:
                result = tool.fn(**kwargs)
                ran_ms = round((time.perf_counter() - began) * 1000.0, 3)
                outcome = ("ok", serialize(result), "", ran_ms)
            except Exception as exc:
                ran_ms = round((time.perf_counter() - began) * 1000.0, 3)
                words = f"{tool.name} raised {type(exc).__name__}: {exc}"
                outcome = ("error", "", words, ran_ms)
            with contextlib.suppress(RuntimeError):  # the loop closed: nobody waits
                loop.call_soon_threadsafe(report, *outcome)

        def timed_out() -> None:
            report("timeout", "", f"{tool.name} did not finish within {tool.timeout:g} s", None)

        def arm() -> None:
            timer.append(loop.call_later(tool.timeout, timed_out))
            # "running" in the view only for a call that takes a while: a quick one goes
            # straight to its outcome, and this thread goes back to the loop at once (a busy
            # thread holds the GIL the function and its hand-back need).
            timer.append(loop.call_later(SHOW_RUNNING_AFTER_S, self._show_if_running, call))

        call.started = time.perf_counter()
        self._executor().submit(work)
        if _running_loop() is loop:
            arm()
        else:
            loop.call_soon_threadsafe(arm)

    async def _run(self, call: ToolCall, tool: Tool, kwargs: dict[str, Any]) -> None:
        if tool.approve:
            if call.decision is None:
                loop = asyncio.get_running_loop()
                decided = asyncio.Event()
                call.wake = lambda: loop.call_soon_threadsafe(decided.set)
                if call.decision is None:  # decided meanwhile on another thread: no wait
                    await decided.wait()
            approved, reason = call.decision or (False, "")
            if not approved:
                self._finish(call, "rejected", error=f"the user rejected this call: {reason}")
                return
        call.status = "running"
        # Shown as running only if it still is a moment later: a quick call's output then
        # reaches the page with no view update ahead of it.
        asyncio.get_running_loop().call_later(SHOW_RUNNING_AFTER_S, self._show_if_running, call)
        call.started = time.perf_counter()
        try:
            if tool.is_async:
                result = await asyncio.wait_for(tool.fn(**kwargs), tool.timeout)
            else:
                loop = asyncio.get_running_loop()
                fut = loop.run_in_executor(self._executor(), lambda: tool.fn(**kwargs))
                result = await asyncio.wait_for(fut, tool.timeout)
        except asyncio.TimeoutError:
            self._finish(
                call, "timeout", error=f"{tool.name} did not finish within {tool.timeout:g} s"
            )
        except Exception as exc:
            self._finish(call, "error", error=f"{tool.name} raised {type(exc).__name__}: {exc}")
        else:
            self._finish(call, "ok", output=serialize(result))

    def _executor(self) -> concurrent.futures.ThreadPoolExecutor:
        if self._pool is None:
            self._pool = concurrent.futures.ThreadPoolExecutor(8, thread_name_prefix="rtw-tool")
        return self._pool

    def _submit(self, coro: Any) -> None:
        """Run ``coro`` on the kernel's loop when there is one; else on a loop of our own.

        An async tool shares the kernel's loop with everything else and blocks nothing; without
        a running loop it runs on a loop in a thread.
        """
        loop = self._port.loop()
        if loop is None or not loop.is_running():
            loop = self._own_loop()
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            loop.create_task(coro)
        else:
            asyncio.run_coroutine_threadsafe(coro, loop)

    def _own_loop(self) -> asyncio.AbstractEventLoop:
        if self._thread_loop is None:
            loop = asyncio.new_event_loop()
            threading.Thread(target=loop.run_forever, name="rtw-tools", daemon=True).start()
            self._thread_loop = loop
        return self._thread_loop

    def _finish(self, call: ToolCall, status: str, *, output: str = "", error: str = "") -> None:
        if call.started is not None and call.duration_ms is None:
            call.duration_ms = round((time.perf_counter() - call.started) * 1000.0, 3)
        error = self._port.scrub(error)
        call.status, call.error = status, error
        call.output = self._port.scrub(output) if status == "ok" else json.dumps({"error": error})
        self._port.log_local(
            {
                "type": "tool.finished",
                "call_id": call.call_id,
                "name": call.name,
                "status": status,
                "duration_ms": call.duration_ms,
                "output_preview": _preview(call.output),
                "error": error,
            }
        )
        self._answer_when_ready()  # the model first; the view's list after
        self._show()

    def decide(self, call_id: str, approved: bool, reason: str = "") -> None:
        with self._lock:
            call = self._calls.get(call_id)
            if call is None or call.status != "pending_approval":
                state = "unknown" if call is None else call.status
                raise ValueError(
                    f"no tool call {call_id!r} is waiting for approval (it is {state}); "
                    f"waiting: {self.waiting()}"
                )
            call.decision = (approved, reason or ("" if approved else "no reason given"))
            call.status = "approved" if approved else "rejecting"
            wake = call.wake
        self._port.log_local(
            {
                "type": "tool.approval",
                "call_id": call_id,
                "name": call.name,
                "decision": "approved" if approved else "rejected",
                "reason": reason,
            }
        )
        if wake is not None:
            wake()

    def waiting(self) -> list[str]:
        return [c.call_id for c in self._calls.values() if c.status == "pending_approval"]

    # -- answering -------------------------------------------------------------------------

    def _answer_when_ready(self) -> None:
        """Send every finished call's output, then the responses that follow them.

        One response.create per response whose calls are all answered, once no response is
        active (never two responses at once).
        """
        events: list[dict[str, Any]] = []
        with self._lock:
            for call in self._calls.values():
                if call.status in FINAL and not call.answered:
                    call.answered = True
                    events.append(
                        {
                            "type": V.ITEM_CREATE,
                            "item": {
                                "type": "function_call_output",
                                "call_id": call.call_id,
                                "output": call.output,
                            },
                        }
                    )
            pending = {c.response_id for c in self._calls.values() if not c.answered}
            ready = self._owed - pending
            if ready and not self._active:
                self._owed -= ready
                events.append({"type": V.RESPONSE_CREATE})
        if events:
            self._port.send_events(events)

    def _show_if_running(self, call: ToolCall) -> None:
        if call.status == "running":
            self._show()

    def _show(self) -> None:
        """The view's list: calls that have started, in the statuses the view knows."""
        with self._lock:
            started = [c for c in self._calls.values() if c.status in _SHOWN]
            shown = [c.shown() for c in started[-SHOWN_CALLS:]]
        self._show_calls(shown)

    def close(self) -> None:
        for call in self._calls.values():
            if call.status == "pending_approval":
                call.decision = (False, "the widget closed")
                if call.wake is not None:
                    with contextlib.suppress(RuntimeError):  # its loop closed: nothing waits
                        call.wake()
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
        if self._thread_loop is not None:
            self._thread_loop.call_soon_threadsafe(self._thread_loop.stop)
