"""Judges: a model scores what the agent said against a rubric, per turn or per run.

A :class:`Judge` is the rubric and how to score it; :func:`judge_turns` asks the model about
each turn (or each run) of a ``runs.turns()`` table and returns one row per judgement, joinable to
the table by ``run`` and ``turn``. The judge sees what the user said (typed, or what the service
heard of speech), what the agent said, the tool calls with their results, and the run's session.
A failed or unreadable answer is a row with an ``error``, never an exception.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from .._secrets import Secret, check_key
from ._models import ChatReply, ModelClient, ModelEndpoint, pick_endpoint

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "DEFAULT_JUDGE_MODEL",
    "JUDGE_COLUMNS",
    "JUDGE_MARKER",
    "Judge",
    "judge_turns",
    "run_context",
]

DEFAULT_JUDGE_MODEL = "openai/gpt-4.1-mini"
# The system prompt's first line: how a stand-in (the emulator's) recognises a judge request.
JUDGE_MARKER = "realtime-widget judge, format 1"
PERS = ("turn", "run")
JUDGE_COLUMNS = (
    "variant",
    "repeat",
    "condition",
    "run",
    "turn",
    "judge",
    "per",
    "score",
    "passed",
    "reason",
    "model",
    "cached",
    "latency_ms",
    "error",
    "started_ms",  # when it was asked and answered (epoch ms): its trace span's times
    "ended_ms",
)
NEEDED_COLUMNS = ("variant", "repeat", "run", "turn")
SESSION_CHARS = 4000  # a long instructions text is cut: the judge needs its gist
TOOL_OUTPUT_CHARS = 1000

_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"score": {"type": "integer"}, "reason": {"type": "string"}},
    "required": ["score", "reason"],
    "additionalProperties": False,
}


def _default_pass(lo: int, hi: int) -> int:
    """Three quarters of the way up the scale, rounded up: 4 on 1-5, 8 on 1-10, 1 on 0-1."""
    return math.ceil(lo + 0.75 * (hi - lo))


class Judge:
    """A rubric scored by a model.

    ``runs.judge(judge)`` asks a chat model to score what the agent said in each turn (or each
    run) of a grid against the rubric, and returns one row per judgement (``score``,
    ``passed``, ``reason``, ``error``), joinable to ``runs.turns()`` by ``run`` and ``turn``.
    The judge sees what the user said (typed, or what the service heard of speech), what the
    agent said, the tool calls with their results, and the run's session. A failed or unreadable
    answer is a row with an ``error``, never an exception. ``tune()`` takes a judge too. The
    judge's model calls need the ``evaluate`` extra.

    Args:
        rubric: What a good answer does, in words (a non-empty string).
        scale: ``(lo, hi)``: the integer scores the model gives.
        pass_at: The lowest passing score (default three quarters of the way up the scale,
            rounded up: 4 on 1-5, 8 on 1-10).
        model: The chat model that judges, by the endpoint's name for it.
        per: ``"turn"`` judges each turn (earlier turns of the run are shown as context),
            ``"run"`` each whole run.
        base_url: An OpenAI-compatible service's root URL for the model calls; with
            ``api_key``. When neither is given, the calls go to the widget's own service and
            key.
        api_key: The key for ``base_url`` (the widget's key is only ever sent to the widget's
            own service).
        concurrency: Model requests in flight at most.
        cache: True (answers cached in ``~/.cache/realtime-widget/judge/``, or
            ``$REALTIME_WIDGET_CACHE/judge``), a directory, or False: the same question twice
            is asked once.
        name: Labels the judge's rows and summary columns (default: the rubric's first words).

    Raises:
        ValueError: An empty rubric, a scale that is not two integers with low < high, a
            ``pass_at`` outside the scale, ``per`` neither ``"turn"`` nor ``"run"``, an empty
            model name, or ``concurrency`` below 1.

    Attributes:
        rubric: The rubric, stripped.
        scale: ``(lo, hi)``.
        pass_at: The lowest passing score.
        model: The judging model's name.
        per: ``"turn"`` or ``"run"``.
        name: The rows' label.

    Example:
        >>> from realtime_widget import Judge
        >>> confirms = Judge("The agent repeats the booking's day, time and party size.")
        >>> confirms.scale, confirms.pass_at
        ((1, 5), 4)
        >>> judged = await runs.judge(confirms)  # one row per turn: score, passed, reason
        >>> runs.summary()  # with <name>_score, <name>_pass_rate and <name>_errors columns
    """

    def __init__(
        self,
        rubric: str,
        *,
        scale: tuple[int, int] = (1, 5),
        pass_at: int | None = None,
        model: str = DEFAULT_JUDGE_MODEL,
        per: str = "turn",
        base_url: str | None = None,
        api_key: str | None = None,
        concurrency: int = 8,
        cache: bool | str | os.PathLike[str] = True,
        name: str | None = None,
    ) -> None:
        if not isinstance(rubric, str) or not rubric.strip():
            raise ValueError("rubric must be a non-empty string saying what a good answer does")
        if (
            not isinstance(scale, tuple | list)
            or len(scale) != 2
            or not all(isinstance(v, int) and not isinstance(v, bool) for v in scale)
            or scale[0] >= scale[1]
        ):
            raise ValueError(
                f"scale must be two integers (low, high) with low < high, not {scale!r}"
            )
        lo, hi = int(scale[0]), int(scale[1])
        if pass_at is None:
            pass_at = _default_pass(lo, hi)
        if (
            isinstance(pass_at, bool)
            or not isinstance(pass_at, int | float)
            or not lo <= pass_at <= hi
        ):
            raise ValueError(f"pass_at must be a score within the scale {lo}-{hi}, not {pass_at!r}")
        if per not in PERS:
            raise ValueError(f"per must be 'turn' or 'run', not {per!r}")
        if not isinstance(model, str) or not model:
            raise ValueError(f"model must be a model name such as {DEFAULT_JUDGE_MODEL!r}")
        if not isinstance(concurrency, int) or concurrency < 1:
            raise ValueError(f"concurrency must be an integer >= 1, not {concurrency!r}")
        self.rubric = rubric.strip()
        self.scale = (lo, hi)
        self.pass_at = pass_at
        self.model = model
        self.per = per
        self.base_url = base_url
        self._api_key = Secret(check_key(api_key)) if api_key else None
        self.concurrency = concurrency
        self.cache = cache
        self.name = name or _short(self.rubric)

    def __repr__(self) -> str:
        return (
            f"Judge({self.name!r}, scale={self.scale}, pass_at={self.pass_at}, "
            f"model={self.model!r}, per={self.per!r})"
        )

    @property
    def api_key(self) -> Secret | None:
        """The judge's own key for ``base_url``, hidden in a ``Secret``; None without one."""
        return self._api_key

    def client(
        self,
        endpoint: ModelEndpoint | None = None,
        *,
        base_url: str | None = None,
        api_key: str | Secret | None = None,
    ) -> ModelClient:
        """The judge's model client.

        The calls go to ``base_url`` / ``api_key`` when given, else the judge's own, else
        ``endpoint`` (the widget's service and key). ``runs.judge()`` makes one for you.

        Args:
            endpoint: The fallback endpoint, typically ``w.model_endpoint()``.
            base_url: A service's root URL that overrides the judge's own (with ``api_key``).
            api_key: The key for ``base_url``.

        Returns:
            A ``ModelClient`` with the judge's ``concurrency`` and ``cache``.

        Raises:
            ValueError: A URL was given without its key, a key without its URL, or there is no
                endpoint to ask at all.

        Example:
            >>> client = judge.client(w.model_endpoint())
            >>> judged = await runs.judge(judge, client=client)
        """
        chosen = pick_endpoint(
            "the judge",
            (base_url, api_key),
            (self.base_url, self._api_key),
            default=endpoint,
        )
        return chosen.client(concurrency=self.concurrency, cache=self.cache)

    # --- the prompt ------------------------------------------------------------------------
    def system_prompt(self) -> str:
        """The system message of every request: how to judge and the JSON to answer with.

        Returns:
            The prompt text: judge only the part under "Judged", score on the judge's scale, and
            answer with ``{"score": <integer>, "reason": "..."}``.

        Example:
            >>> print(Judge("Answers in one sentence.").system_prompt())
        """
        lo, hi = self.scale
        return (
            f"{JUDGE_MARKER}\n"
            "You evaluate a voice agent's conversation with a user against a rubric. Judge only "
            "the part under 'Judged'; anything under 'Earlier in the conversation' is context. "
            f"Score on the integer scale {lo} to {hi} ({lo}: the rubric is not met at all, {hi}: "
            "it is fully met). Answer with one JSON object and nothing else: "
            f'{{"score": <integer {lo}-{hi}>, "reason": "<one or two sentences naming what the '
            'agent did or failed to do>"}.'
        )

    def messages(
        self,
        judged: Sequence[Mapping[str, Any]],
        *,
        earlier: Sequence[Mapping[str, Any]] = (),
        session: Mapping[str, Any] | None = None,
        tools: Mapping[int, Sequence[Mapping[str, Any]]] | None = None,
    ) -> list[dict[str, str]]:
        """The chat messages for one judgement of ``judged`` turn rows.

        Shows exactly what the model is asked: the rubric, the scale, the session, earlier turns
        as context, and the judged turns (the user's words, tool calls, the agent's answer).

        Args:
            judged: The turn rows judged (rows of ``runs.turns()`` as dicts): one for
                ``per="turn"``, every turn of the run for ``per="run"``.
            earlier: The run's earlier turn rows, shown as context.
            session: The run's session fields (instructions, model, voice, tools).
            tools: Tool calls by turn number: ``{turn: [{"name", "arguments", "output"}]}``;
                without them the judge sees the tool names of each row only.

        Returns:
            The ``system`` and ``user`` messages, as dicts of ``role`` and ``content``.

        Example:
            >>> rows = runs.turns().to_dict("records")
            >>> for m in judge.messages(rows[1:2], earlier=rows[:1]):
            ...     print(m["content"])
        """
        lo, hi = self.scale
        parts = [f"## Rubric\n{self.rubric}", f"## Scale\n{lo} to {hi}"]
        described = _session_text(session or {})
        if described:
            parts.append(f"## Session\n{described}")
        if earlier:
            lines = [_turn_text(r, tools or {}) for r in earlier]
            parts.append("## Earlier in the conversation\n" + "\n".join(lines))
        if self.per == "turn":
            head = f"## Judged: turn {_int(judged[0].get('turn'))}"
        else:
            head = f"## Judged: the whole conversation ({len(judged)} turns)"
        parts.append(head + "\n" + "\n".join(_turn_text(r, tools or {}) for r in judged))
        return [
            {"role": "system", "content": self.system_prompt()},
            {"role": "user", "content": "\n\n".join(parts)},
        ]

    def read(self, reply: ChatReply) -> tuple[int | None, bool | None, str | None, str | None]:
        """(score, passed, reason, error) from the model's reply.

        The score must be an integer on the judge's scale (an integral float or a digit string
        counts); otherwise ``error`` says why and the score and ``passed`` are None.

        Args:
            reply: The model's answer to :meth:`messages`, as ``ModelClient.chat_json`` returns
                it.

        Returns:
            ``(score, passed, reason, error)``: ``passed`` is ``score >= pass_at``; ``error`` is
            None when the answer was read.

        Example:
            >>> rows = runs.turns().to_dict("records")
            >>> reply = await judge.client(w.model_endpoint()).chat_json(
            ...     judge.messages(rows[:1]), model=judge.model
            ... )
            >>> score, passed, reason, error = judge.read(reply)
        """
        if reply.error or reply.data is None:
            return None, None, None, reply.error or "no answer"
        lo, hi = self.scale
        raw, reason = reply.data.get("score"), reply.data.get("reason")
        score: int | None = None
        if isinstance(raw, bool):
            score = None
        elif isinstance(raw, int):
            score = raw
        elif isinstance(raw, float) and raw.is_integer():
            score = int(raw)
        elif isinstance(raw, str) and raw.strip().lstrip("-").isdigit():
            score = int(raw.strip())
        reason = reason if isinstance(reason, str) else None
        if score is None:
            return None, None, reason, f"the judge's answer has no integer score: {raw!r}"
        if not lo <= score <= hi:
            return None, None, reason, f"the judge's score {score} is outside the scale {lo}-{hi}"
        return score, score >= self.pass_at, reason, None


def _short(text: str, limit: int = 40) -> str:
    words = " ".join(text.split())
    if len(words) <= limit:
        return words
    return words[:limit].rsplit(" ", 1)[0] + "…"


def _missing(value: Any) -> bool:
    """None, NaN or pandas' NA (a table's empty cell)."""
    if value is None:
        return True
    try:
        return bool(value != value)  # NaN is the one value unequal to itself
    except (TypeError, ValueError):  # pandas.NA refuses bool()
        return True


def _int(value: Any) -> int | None:
    if _missing(value):
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _str(value: Any) -> str | None:
    if _missing(value):
        return None
    text = str(value).strip()
    return text or None


def _session_text(session: Mapping[str, Any]) -> str:
    lines = []
    instructions = _str(session.get("instructions"))
    if instructions:
        cut = instructions[:SESSION_CHARS] + ("…" if len(instructions) > SESSION_CHARS else "")
        lines.append(f"instructions: {cut}")
    for name in ("model", "voice", "speed", "output_modalities", "modalities"):
        value = session.get(name)
        if value not in (None, "", []):
            shown = ", ".join(map(str, value)) if isinstance(value, list) else value
            lines.append(f"{name}: {shown}")
    audio = session.get("audio")
    if isinstance(audio, Mapping):
        voice = (
            (audio.get("output") or {}).get("voice")
            if isinstance(audio.get("output"), Mapping)
            else None
        )
        if voice and "voice" not in session:
            lines.append(f"voice: {voice}")
    tools = session.get("tools")
    if isinstance(tools, list) and tools:
        names = [str(t.get("name")) for t in tools if isinstance(t, Mapping) and t.get("name")]
        if names:
            lines.append("tools: " + ", ".join(names))
    return "\n".join(lines)


def _turn_text(row: Mapping[str, Any], tools: Mapping[int, Sequence[Mapping[str, Any]]]) -> str:
    kind = _str(row.get("kind")) or "text"
    heard, prompt = _str(row.get("heard")), _str(row.get("prompt"))
    said = _str(row.get("said"))  # a simulated caller's own words
    if kind == "audio" or (heard and kind != "text"):
        user = f"user (spoken; the service heard): {heard or '[nothing recognised]'}"
        if said and said != heard:
            user += f"\nuser (what was spoken): {said}"
    else:
        user = f"user: {said or prompt or ''}"
    agent = _str(row.get("text")) or _str(row.get("transcript"))
    lines = [user]
    turn = _int(row.get("turn"))
    calls = list(tools.get(turn, ())) if turn is not None else []
    if calls:
        for call in calls:
            args = call.get("arguments")
            args = args if isinstance(args, str) else json.dumps(args, ensure_ascii=False)
            out = call.get("output")
            out = (
                out if isinstance(out, str) or out is None else json.dumps(out, ensure_ascii=False)
            )
            if out is not None and len(out) > TOOL_OUTPUT_CHARS:
                out = out[:TOOL_OUTPUT_CHARS] + "…"
            result = out if out is not None else "[no result]"
            lines.append(f"tool call: {call.get('name')}({args}) -> {result}")
    else:
        names = row.get("tools")
        if names is not None and not isinstance(names, str) and len(list(names)):
            lines.append("tool calls: " + ", ".join(str(n) for n in names))
    status = _str(row.get("status"))
    if status and status != "completed":
        why = _str(row.get("error")) or _str(row.get("reason")) or "no reason given"
        lines.append(f"(the turn ended {status}: {why})")
    lines.append(f"agent: {agent or '[no reply]'}")
    return "\n".join(lines)


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def run_context(run: Any) -> dict[str, Any]:
    """What a judge should know of one run beyond its rows.

    ``{"session": ..., "tools": {turn: [{"name", "arguments", "output"}]}}``, from a ``Run`` (its
    ``session``, ``rows`` and ``events``; a run read back with ``Runs.read_parquet`` has them all).
    Tool calls are the ``function_call`` items of the ``response.done`` events within each turn's
    time span, with the ``function_call_output`` the widget sent for the same ``call_id``.
    """
    session = dict(getattr(run, "session", None) or {})
    events = getattr(run, "events", None)
    records = list(events) if events is not None else []
    outputs: dict[str, Any] = {}
    calls: list[tuple[float, dict[str, Any]]] = []
    for rec in records:
        ev = _mapping(rec.get("event"))
        etype = ev.get("type")
        if rec.get("direction") == "client" and etype == "conversation.item.create":
            item = _mapping(ev.get("item"))
            if item.get("type") == "function_call_output" and item.get("call_id"):
                outputs[str(item["call_id"])] = item.get("output")
        elif rec.get("direction") == "server" and etype == "response.done":
            for out in _mapping(ev.get("response")).get("output") or []:
                if isinstance(out, Mapping) and out.get("type") == "function_call":
                    calls.append((float(rec.get("t_ms") or 0.0), dict(out)))
    tools: dict[int, list[dict[str, Any]]] = {}
    for row in getattr(run, "rows", None) or []:
        turn, lo, hi = _int(row.get("turn")), row.get("started_ms"), row.get("ended_ms")
        if turn is None or lo is None or hi is None:
            continue
        for t_ms, item in calls:
            if float(lo) <= t_ms <= float(hi):
                tools.setdefault(turn, []).append(
                    {
                        "name": item.get("name"),
                        "arguments": item.get("arguments"),
                        "output": outputs.get(str(item.get("call_id"))),
                    }
                )
    return {"session": session, "tools": tools}


def _records(turns: pd.DataFrame) -> list[dict[str, Any]]:
    missing = [c for c in NEEDED_COLUMNS if c not in turns.columns]
    if missing:
        raise ValueError(
            f"the turns table lacks column(s) {', '.join(missing)}: pass runs.turns() (or a "
            "table with its columns)"
        )
    return [dict(r) for r in turns.to_dict(orient="records")]


async def judge_turns(
    judge: Judge,
    turns: pd.DataFrame,
    runs_meta: Mapping[int, Mapping[str, Any]] | None = None,
    client: ModelClient | None = None,
) -> pd.DataFrame:
    """Judge every turn (``per="turn"``) or every run (``per="run"``) of a ``runs.turns()`` table.

    ``runs_meta`` maps a run's number to :func:`run_context`'s dict (its session and tool calls with
    results); without it the judge sees the tool names only. ``client`` defaults to
    ``judge.client()``. Rows: ``JUDGE_COLUMNS``, one per turn (``turn`` is NA for ``per="run"``), in
    the table's order of runs and turns.
    """
    try:
        import pandas as pd
    except ImportError:
        raise ImportError(
            'judge_turns needs pandas: pip install "realtime-widget[pandas]"'
        ) from None
    if not isinstance(judge, Judge):
        raise TypeError(f"judge must be a Judge, not {type(judge).__name__}")
    rows = _records(turns)
    meta = runs_meta or {}
    own = client is None
    model_client = client or judge.client()
    by_run: dict[int, list[dict[str, Any]]] = {}
    for row in rows:
        by_run.setdefault(int(row["run"]), []).append(row)
    for run_rows in by_run.values():
        run_rows.sort(key=lambda r: _int(r.get("turn")) or 0)

    jobs: list[tuple[dict[str, Any], list[dict[str, str]]]] = []
    for run, run_rows in by_run.items():
        context = meta.get(run) or {}
        session, tools = context.get("session"), context.get("tools") or {}
        if judge.per == "run":
            jobs.append((run_rows[0], judge.messages(run_rows, session=session, tools=tools)))
            continue
        for i, row in enumerate(run_rows):
            msgs = judge.messages([row], earlier=run_rows[:i], session=session, tools=tools)
            jobs.append((row, msgs))

    async def one(row: dict[str, Any], msgs: list[dict[str, str]]) -> dict[str, Any]:
        started = time.time() * 1000.0
        reply = await model_client.chat_json(
            msgs, model=judge.model, schema=_SCHEMA, schema_name="judgement",
            params={"temperature": 0},
        )  # fmt: skip
        score, passed, reason, error = judge.read(reply)
        scrub = model_client.scrub.text
        return {
            "variant": row.get("variant"),
            "repeat": _int(row.get("repeat")),
            "condition": row.get("condition"),
            "run": _int(row.get("run")),
            "turn": _int(row.get("turn")) if judge.per == "turn" else None,
            "judge": judge.name,
            "per": judge.per,
            "score": score,
            "passed": passed,
            "reason": scrub(reason) if reason else reason,
            "model": judge.model,
            "cached": reply.cached,
            "latency_ms": reply.latency_ms,
            "error": scrub(error) if error else error,
            "started_ms": started,
            "ended_ms": time.time() * 1000.0,
        }

    try:
        out = await asyncio.gather(*(one(row, msgs) for row, msgs in jobs))
    finally:
        if own:
            await model_client.aclose()
    return judged_frame(pd, out)


def judged_frame(pd: Any, rows: Iterable[dict[str, Any]]) -> pd.DataFrame:
    df = pd.DataFrame(list(rows), columns=list(JUDGE_COLUMNS))
    for col in ("repeat", "run", "turn", "score"):
        df[col] = df[col].astype("Int64")
    df["passed"] = df["passed"].astype("boolean")
    df["cached"] = df["cached"].astype("bool")
    for col in ("latency_ms", "started_ms", "ended_ms"):
        df[col] = df[col].astype("float64")
    for col in ("variant", "condition", "judge", "per", "reason", "model", "error"):
        df[col] = df[col].astype("string")
    return df
