"""The experiments feature of one session (a widget's, or one the kernel holds).

It checks a grid's arguments, starts its runner and holds the runs going on (one grid at a
time).
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from .._session import SESSION_TRAITS, SessionTraits
from ..media._conditions import Condition, check_conditions
from ._runner import Runner
from ._runs import Run, Runs
from ._script import Script, Turn, TurnSource

if TYPE_CHECKING:
    from .._core import SessionCore
    from .._delivery import Delivery
    from .._port import CallPort

# Session fields whose change needs a new call rather than a session.update. None on the
# emulator (every field applies from the next response; VAD settings at once), and none on
# Inworld as its protocol is documented (partial updates of any field; a new model "applies
# from the next response"). OpenAI's service refuses a voice change once a session has spoken:
# pass ``fresh_call={"voice"}`` there.
FRESH_CALL_FIELDS: frozenset[str] = frozenset()
ISOLATIONS = ("conversation", "call", "none")


def check_variants(
    session: SessionCore, variants: Mapping[str, Mapping[str, Any]] | None
) -> dict[str, dict[str, Any]]:
    """Each variant's fields, validated as the session's traits would take them.

    So a bad value fails here, before anything runs.
    """
    variants = {"session": {}} if variants is None else variants
    if not isinstance(variants, Mapping) or not variants:
        raise TypeError(
            'variants must be a dict of name -> session fields, e.g. {"Clive": {"voice": '
            '"Clive"}, "fast": {"speed": 1.3}}'
        )
    checked: dict[str, dict[str, Any]] = {}
    for name, fields in variants.items():
        if not isinstance(name, str) or not name:
            raise TypeError(f"a variant's name is a non-empty string; got {name!r}")
        if not isinstance(fields, Mapping):
            raise TypeError(f"variant {name!r}: fields must be a dict; got {fields!r}")
        unknown = sorted(set(fields) - set(SESSION_TRAITS))
        if unknown:
            raise TypeError(
                f"variant {name!r}: unknown session field(s) {unknown}; known: "
                f"{', '.join(SESSION_TRAITS)}"
            )
        scratch = SessionTraits(**{n: getattr(session, n) for n in SESSION_TRAITS})
        for key, value in fields.items():
            setattr(scratch, key, value)
        checked[name] = {k: copy.deepcopy(getattr(scratch, k)) for k in fields}
    return checked


def as_source(script: TurnSource | Iterable[str | Turn]) -> TurnSource:
    """What the runner plays: a script (or another source of turns), or turns made one."""
    if isinstance(script, Script) or hasattr(script, "turns_for"):
        return script  # type: ignore[return-value]
    return Script(script)


def experiments_of(session: SessionCore) -> Experiments:
    return session._experiments()  # noqa: SLF001 - the feature is the session's own


class Experiments:
    """``run_script`` of one widget.

    Built with the session (its public API), the call's port and the host probe that awaiting
    the runs uses.
    """

    def __init__(self, session: SessionCore, port: CallPort, delivery: Delivery) -> None:
        self.session = session
        self.port = port
        self.delivery = delivery
        self.active: Runs | None = None  # the grid going on (or the last one)

    async def play_one(self, runs: Runs, run: Run, script: TurnSource, timeout: float) -> None:
        """Play one run of ``runs`` on this session's call as it is.

        The call is connected, with the run's fields: what each of a grid's runs at once does
        on its own session.
        """
        runner = Runner(
            self.session,
            self.port,
            runs,
            fresh_call=frozenset(),
            isolation="none",
            timeout=timeout,
            seed=0,
        )
        bind = getattr(script, "bind", None)
        runner.script = bind(self.session.model_endpoint(), self.port) if callable(bind) else script
        runner.loop = runner.watch.loop = asyncio.get_running_loop()
        unsubscribe = self.port.subscribe(runner.watch.on_record)
        try:
            await runner.run_one(run)
        finally:
            unsubscribe()

    def run(
        self,
        script: TurnSource | Iterable[str | Turn],
        variants: Mapping[str, Mapping[str, Any]] | None = None,
        repeat: int = 1,
        *,
        fresh_call: Iterable[str] | bool = FRESH_CALL_FIELDS,
        isolation: str = "conversation",
        timeout: float = 60.0,
        seed: int = 0,
        progress: bool = True,
        conditions: Mapping[str, Condition | None] | None = None,
        concurrency: int = 1,
        executor: Any = None,
    ) -> Runs:
        """Start the runs on the kernel's event loop; returns their handle at once."""
        if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
            raise ValueError(f"concurrency must be a whole number >= 1; got {concurrency!r}")
        apart = concurrency > 1 or executor is not None  # each run on a session of its own
        if apart:
            from ._parallel import check_apart

            check_apart(self.session, executor)
        source = as_source(script)
        checked = check_variants(self.session, variants)
        axis = check_conditions(conditions)  # spoken audio's conditions: the grid's other axis
        if isinstance(repeat, bool) or not isinstance(repeat, int) or repeat < 1:
            raise ValueError(f"repeat must be a whole number >= 1; got {repeat!r}")
        if isolation not in ISOLATIONS:
            raise ValueError(f"isolation must be one of {ISOLATIONS}; got {isolation!r}")
        fresh: frozenset[str] = frozenset()
        if fresh_call is True:
            isolation = "call"
        else:
            fresh = frozenset(fresh_call or ())
            unknown = sorted(fresh - set(SESSION_TRAITS))
            if unknown:
                raise TypeError(f"fresh_call names unknown session field(s) {unknown}")
        if self.active is not None and not self.active.done:
            raise RuntimeError(
                "a run_script is still going on this session: await it or .cancel() it"
            )
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            raise RuntimeError(
                "run_script runs on the kernel's event loop: call it in a notebook cell, or "
                "from async code (await w.run_script(...))"
            ) from None
        endpoint = self.session.model_endpoint()  # judges and callers ask the session's service
        unbound = source
        bind = getattr(source, "bind", None)
        if callable(bind):  # a source that asks a model for its turns (a simulated caller)
            source = bind(endpoint, self.port)
        runs = Runs(source, checked, repeat, delivery=self.delivery, conditions=axis)
        runs.endpoint = endpoint
        runs.tracing = getattr(self.session, "_tracing", None)  # judges' spans join its trace
        if apart:
            from ._parallel import player

            play = player(
                self.session, runs, unbound, concurrency, executor, timeout=timeout, seed=seed
            )
            self.active = runs
            runs._track(play.start(loop, progress), play.cancel)
            return runs
        runner = Runner(
            self.session,
            self.port,
            runs,
            fresh_call=fresh,
            isolation=isolation,
            timeout=timeout,
            seed=seed,
        )
        self.active = runs
        runs._track(runner.start(loop, progress), runner.cancel)
        return runs
