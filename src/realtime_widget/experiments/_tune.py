"""``tune()``: search the session's settings for the best judged score within a latency budget.

The search runs on Optuna (ask and tell).

Each trial is a set of session fields the sampler asks for; it plays the script ``repeat``
times as one variant of a grid (``run_script``, so its runs are rows like any others, on
sessions of their own with ``concurrency`` or ``executor``), its score is the judge's mean
over its judgements (or ``score(turns)``), and its latency the ``quantile`` (p95) of
``latency_column`` over its completed turns. Trials go in waves of as many as the runs in
flight allow (``concurrency // repeat``); a wave's trials are told in trial order, so the
same seed against a deterministic service asks for the same trials.

The sampler (``sampler="tpe"``, the default) is Optuna's TPE: it handles a mixed space
(ranges of floats and ints, categories) with tens of trials, models the budget as a
constraint (``constraints_func``: a trial over the budget is infeasible and steers the
search away, rather than being scored low), and with trials in flight at once uses the
constant liar, so a wave's trials are not asked for the same point. ``multivariate`` TPE
models the fields together (voice x speed interact). ``sampler="random"`` is the baseline;
any ``optuna.samplers.BaseSampler`` is taken as it is.
"""

from __future__ import annotations

import copy
import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import traitlets as t

from .._extras import missing, require
from .._session import FIELD_BY_TRAIT, SESSION_TRAITS, SessionTraits, partial_session
from ._runs import Runs
from ._storage import COLUMNS

if TYPE_CHECKING:
    import optuna
    import pandas as pd

    from .._core import SessionCore
    from ..evaluate._judge import Judge

# the session fields that hold a dict: a space key may reach into them with a dotted path
DICT_FIELDS = ("turn_detection", "provider_data")
SAMPLERS = ("tpe", "random")
TRIAL_PREFIX = "trial "


@dataclass(frozen=True)
class Dimension:
    """One key of the space: a range of floats or ints (``step`` optional), or categories."""

    key: str
    kind: str  # "float", "int" or "category"
    low: float | None = None
    high: float | None = None
    step: float | None = None
    choices: tuple[Any, ...] = ()

    def labels(self) -> list[Any]:
        """The categories as Optuna stores them (plain values; others by their repr)."""
        return [c if _plain(c) else repr(c) for c in self.choices]

    def suggest(self, trial: optuna.Trial) -> Any:
        if self.kind == "float":
            value = trial.suggest_float(self.key, self.low, self.high, step=self.step)  # type: ignore[arg-type]
            return (
                round(value, 10) if self.step is not None else value
            )  # 1.2, not 1.2000000000000002
        if self.kind == "int":
            return trial.suggest_int(
                self.key, int(self.low or 0), int(self.high or 0), step=int(self.step or 1)
            )
        label = trial.suggest_categorical(self.key, self.labels())
        return self.choices[self.labels().index(label)]

    def value(self, stored: Any) -> Any:
        """A stored parameter back as the field's value."""
        if self.kind == "category" and stored in self.labels():
            return self.choices[self.labels().index(stored)]
        return stored


def _plain(value: Any) -> bool:
    return value is None or isinstance(value, bool | int | float | str)


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def fields_for(base: SessionTraits, params: Mapping[str, Any]) -> dict[str, Any]:
    """The session fields (trait names) a trial's parameters make, on top of ``base``.

    A dotted key sets a key inside that field's dict.
    """
    out: dict[str, Any] = {}
    for key, value in params.items():
        name, _, rest = key.partition(".")
        if not rest:
            out[name] = value
            continue
        if name not in out:
            out[name] = copy.deepcopy(getattr(base, name)) or {}
        node = out[name]
        parts = rest.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return out


def _scratch(base: SessionTraits) -> SessionTraits:
    return SessionTraits(**{n: copy.deepcopy(getattr(base, n)) for n in SESSION_TRAITS})


def _allowed(dim_key: str) -> str:
    return (
        f"a session field ({', '.join(SESSION_TRAITS)}), or a dotted path into "
        f"{' or '.join(DICT_FIELDS)} (e.g. 'turn_detection.eagerness')"
    )


def check_space(base: SessionTraits, space: Mapping[str, Any]) -> list[Dimension]:
    """The space's dimensions, each checked as the session would take its values.

    An unknown field, a malformed range or a value the field refuses fails here, naming it,
    before any call.
    """
    if not isinstance(space, Mapping) or not space:
        raise TypeError(
            "space must be a non-empty dict of session field -> (low, high) or [choices], e.g. "
            '{"speed": (0.8, 1.4), "turn_detection.eagerness": ["low", "high"]}'
        )
    dims: list[Dimension] = []
    for key, spec in space.items():
        if not isinstance(key, str) or not key:
            raise TypeError(f"a space key is a session field's name; got {key!r}")
        name, _, rest = key.partition(".")
        if name not in FIELD_BY_TRAIT:
            raise ValueError(
                f"space[{key!r}]: {name!r} is not a session field; use {_allowed(key)}"
            )
        if rest and name not in DICT_FIELDS:
            raise ValueError(
                f"space[{key!r}]: {name!r} holds no dict, so it has no {rest!r} inside; use "
                f"{_allowed(key)}"
            )
        others = [k for k in space if k != key and (k.startswith(key + ".") or k == name)]
        if others:
            raise ValueError(f"space[{key!r}] overlaps {others}: give a field once")
        if isinstance(spec, tuple) and len(spec) in (2, 3) and all(_number(v) for v in spec):
            low, high = spec[0], spec[1]
            step = spec[2] if len(spec) == 3 else None
            if not low < high:
                raise ValueError(
                    f"space[{key!r}]: a range is (low, high) with low < high; got {spec!r}"
                )
            if step is not None and not 0 < step <= high - low:
                raise ValueError(
                    f"space[{key!r}]: a range's step is > 0 and <= high - low; got {step!r}"
                )
            kind = "int" if all(isinstance(v, int) for v in spec) else "float"
            dim = Dimension(key, kind, low, high, step)
            probes = [low, high]
        elif isinstance(spec, list | tuple) and spec and not isinstance(spec, str):
            if len(set(map(repr, spec))) != len(spec):
                raise ValueError(f"space[{key!r}]: a category is listed twice in {list(spec)!r}")
            dim = Dimension(key, "category", choices=tuple(spec))
            probes = list(spec)
        else:
            raise TypeError(
                f"space[{key!r}] must be a range (low, high) or (low, high, step) of numbers, or "
                f"a list of choices; got {spec!r}"
            )
        for value in probes:
            scratch = _scratch(base)
            try:
                for field, v in fields_for(base, {key: value}).items():
                    setattr(scratch, field, v)
            except (t.TraitError, TypeError, ValueError) as exc:
                raise ValueError(f"space[{key!r}]: {value!r} is not allowed: {exc}") from None
        dims.append(dim)
    return dims


def make_sampler(
    sampler: Any, seed: int | None, trials: int, in_flight: int, constrained: bool
) -> Any:
    """The sampler named by ``sampler`` (see the module's words), seeded."""
    optuna = require("optuna", "tune", "tune()")
    if isinstance(sampler, optuna.samplers.BaseSampler):
        return sampler
    if sampler not in SAMPLERS:
        raise ValueError(f"sampler must be one of {SAMPLERS} or an optuna sampler; got {sampler!r}")
    # Optuna >= 5 reads each trial's own constraints (Trial.set_constraint); before, a function
    constraints = _constraints if constrained and not _per_trial_constraints(optuna) else None
    with warnings.catch_warnings():  # multivariate / constant_liar / constraints: "experimental"
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        if sampler == "random":
            return optuna.samplers.RandomSampler(seed=seed)
        return optuna.samplers.TPESampler(
            seed=seed,
            multivariate=True,
            constant_liar=in_flight > 1,
            constraints_func=constraints,
            n_startup_trials=max(4, min(10, trials // 4)),
        )


def _per_trial_constraints(optuna: Any) -> bool:
    return hasattr(optuna.trial.Trial, "set_constraint")


OVER = 1e12  # a trial with no latency counts as this far over the budget


def _constraints(trial: optuna.trial.FrozenTrial) -> Sequence[float]:
    """<= 0 is feasible: the latency over the budget (a trial without one: infeasible)."""
    return [float(trial.user_attrs.get("over_budget_ms", OVER))]


def _quantile(values: Sequence[float | None], q: float) -> float:
    """The ``q`` quantile with linear interpolation (numpy's default); NaN when empty."""
    xs = sorted(v for v in values if v is not None and not math.isnan(v))
    if not xs:
        return math.nan
    pos = (len(xs) - 1) * q
    lo = math.floor(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


async def tune(
    session: SessionCore,
    script: Any,
    space: Mapping[str, Any],
    judge: Judge | None = None,
    *,
    score: Callable[[pd.DataFrame], float] | None = None,
    latency_budget_ms: float | None = None,
    latency_column: str = "to_first_output_ms",
    quantile: float = 0.95,
    trials: int = 20,
    repeat: int = 1,
    concurrency: int = 1,
    executor: Any = None,
    storage: Any = None,
    study_name: str | None = None,
    seed: int | None = 0,
    sampler: Any = "tpe",
    timeout: float = 60.0,
    progress: bool = True,
) -> Tuning:
    """See :meth:`SessionCore.tune`."""
    # every argument checked before any call
    dims = check_space(session, space)
    from ..evaluate._judge import Judge

    if (judge is None) == (score is None):
        raise TypeError("give tune() a judge (judge=Judge(...)) or a score (score=fn(turns))")
    if judge is not None and not isinstance(judge, Judge):
        raise TypeError(f"judge must be a Judge; got {type(judge).__name__}")
    if score is not None and not callable(score):
        raise TypeError("score must be a function of a trial's turns table returning a number")
    for name, value in (("trials", trials), ("repeat", repeat), ("concurrency", concurrency)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a whole number >= 1; got {value!r}")
    if latency_column not in COLUMNS or COLUMNS[latency_column] != "float64":
        numeric = [c for c, d in COLUMNS.items() if d == "float64"]
        raise ValueError(f"latency_column must be one of {numeric}; got {latency_column!r}")
    if latency_budget_ms is not None and (not _number(latency_budget_ms) or latency_budget_ms <= 0):
        raise ValueError(
            f"latency_budget_ms must be a number > 0 (or None); got {latency_budget_ms!r}"
        )
    if not _number(quantile) or not 0.0 < quantile <= 1.0:
        raise ValueError(f"quantile must be in (0, 1]; got {quantile!r}")
    if concurrency > 1 or executor is not None:
        from ._parallel import check_apart

        check_apart(session, executor)
    optuna = require("optuna", "tune", "tune()")
    in_flight = concurrency
    if executor is not None and concurrency == 1:
        nthreads = getattr(executor, "nthreads", None)
        in_flight = max(1, sum(nthreads().values())) if callable(nthreads) else 1
    per_wave = max(1, in_flight // repeat)
    chosen = make_sampler(sampler, seed, trials, per_wave, latency_budget_ms is not None)
    study = optuna.create_study(
        storage=storage,
        study_name=study_name,
        load_if_exists=storage is not None and study_name is not None,
        direction="maximize",
        sampler=chosen,
    )
    tuning = Tuning(
        session, study, dims, latency_budget_ms, latency_column, quantile,
        Runs(_script(script), {}, repeat),
    )  # fmt: skip
    done = tuning.resume()
    bar = None
    exhausted = False  # a grid sampler that asked for all it had, or the Stop button
    current: list[Runs] = []  # the wave playing (its runs stop with the Stop button)

    def stop() -> None:
        nonlocal exhausted
        exhausted = True
        for runs in current:
            runs.cancel()

    if progress:
        from ._progress import RunsProgress

        bar = RunsProgress.shown(trials, stop, noun="trials")
    while done < trials and not exhausted:
        wave = [study.ask() for _ in range(min(per_wave, trials - done))]
        asked = {
            trial.number: fields_for(session, {d.key: d.suggest(trial) for d in dims})
            for trial in wave
        }
        runs = session.run_script(
            script,
            variants={f"{TRIAL_PREFIX}{n}": f for n, f in asked.items()},
            repeat=repeat,
            concurrency=concurrency,
            executor=executor,
            timeout=timeout,
            seed=seed or 0,
            progress=False,
        )
        current[:] = [runs]
        await runs
        if judge is not None and runs.rows:
            await runs.judge(judge)
        for trial in wave:
            try:
                tuning.tell(trial, asked[trial.number], runs, judge, score)
            except RuntimeError as exc:  # a sampler that has asked for all it had (a grid)
                if "Study.stop" not in str(exc):
                    raise
                exhausted = True
        tuning.merge(runs)
        done += len(wave)
        if bar is not None:
            counts = tuning.counts()
            bar.show(done=counts["complete"], running=0, failed=counts["fail"])
    if bar is not None:
        bar.close(repr(tuning))
    tuning.runs._finish()
    return tuning


def _script(script: Any) -> Any:
    from ._feature import as_source

    return as_source(script)


class Tuning:
    """What ``tune()`` found: the best settings, every trial, and the runs behind them.

    ``best`` holds the settings as ``apply_session()`` takes them; ``trials()``, ``pareto()``
    and ``plot()`` show the search; ``runs`` holds every trial's runs (the variant is the
    trial: ``"trial 7"``), a ``Runs`` like any other (``to_parquet``, ``summary``,
    ``listen``); ``study`` is the ``optuna.Study`` (with ``storage``, optuna-dashboard shows
    it). ``session.tune(...)`` makes it.

    Args:
        base: The session the search started from (kept as a copy: ``best`` is relative to
            it).
        study: The Optuna study the trials are told to.
        dims: The search space's dimensions, checked.
        budget: The latency budget in ms, or ``None`` for none.
        column: The latency column the budget applies to (``to_first_output_ms``, say).
        quantile: The quantile of ``column`` over a trial's completed turns (0.95: p95).
        runs: The set every trial's runs are merged into.

    Example:
        >>> tuning = await s.tune(
        ...     script,
        ...     space={"speed": (0.8, 1.4), "turn_detection.eagerness": ["low", "high"]},
        ...     judge=judge,
        ...     latency_budget_ms=1200,
        ...     trials=40,
        ... )
        >>> tuning.best                  # {'speed': 1.1, 'turn_detection': {...}} or None
        >>> w.apply_session(tuning.best)
        >>> tuning.trials().sort_values("score", ascending=False).head()
    """

    def __init__(
        self,
        base: SessionTraits,
        study: optuna.Study,
        dims: list[Dimension],
        budget: float | None,
        column: str,
        quantile: float,
        runs: Runs,
    ) -> None:
        # the session the search started from (a copy: best is relative to it)
        self._base = _scratch(base)
        self.study = study
        self.dims = dims
        self.latency_budget_ms = budget
        self.latency_column = column
        self.quantile = quantile
        self.runs = runs  # every trial's runs (the variant is the trial: "trial 7")

    # -- the search -------------------------------------------------------------------------

    @property
    def latency_name(self) -> str:
        """The latency's column in ``trials()``: e.g. ``to_first_output_ms_p95``."""
        q = self.quantile * 100
        return f"{self.latency_column}_p{q:g}"

    def resume(self) -> int:
        """Count the trials a stored study already finished, and ask its interrupted ones again.

        A trial a dead kernel left running is marked failed and queued to be asked again; it
        does not count. ``tune()`` calls this first, so a study in ``storage`` resumes under
        the same ``study_name``.

        Returns:
            How many of the study's trials count as done.

        Example:
            >>> tuning.resume()
            12
        """
        from optuna.trial import TrialState

        done = 0
        for trial in self.study.get_trials(deepcopy=False):
            if trial.state == TrialState.RUNNING or trial.state == TrialState.WAITING:
                if trial.state == TrialState.RUNNING:
                    self.study.tell(trial.number, state=TrialState.FAIL)
                    self.study.set_user_attr(f"interrupted {trial.number}", True)
                    self.study.enqueue_trial(trial.params, skip_if_exists=False)
                continue
            if not self.study.user_attrs.get(f"interrupted {trial.number}"):
                done += 1
        return done

    def tell(
        self,
        trial: optuna.Trial,
        fields: Mapping[str, Any],
        runs: Runs,
        judge: Judge | None,
        score_fn: Callable[[pd.DataFrame], float] | None,
    ) -> None:
        """Tell the study one trial's result: its score, its latency and whether it fits the budget.

        The score is the judge's mean over the trial's judgements, or ``score_fn`` of its
        turns table; the latency the ``quantile`` of ``latency_column`` over its completed
        turns. A trial with no completed turn, no score, or a failing ``score_fn`` is told as
        failed, with its error kept.

        Args:
            trial: The Optuna trial asked for.
            fields: The session fields the trial played with.
            runs: The runs of the wave the trial was in (its variant is ``"trial <n>"``).
            judge: The judge that scored the runs, if the score is a judge's.
            score_fn: The score function, if the score is one.

        Example:
            >>> tuning.tell(trial, fields, runs, judge, None)  # what tune() does per trial
        """
        from optuna.trial import TrialState

        name = f"{TRIAL_PREFIX}{trial.number}"
        mine = [r for r in runs.runs if r.variant == name]
        trial.set_user_attr("fields", _jsonable(fields))
        trial.set_user_attr("runs", len(mine))
        rows = [row for r in mine for row in r.rows]
        completed = [row for row in rows if row.get("status") == "completed"]
        error: str | None = None
        value = math.nan
        if not completed:
            first = next((r.error for r in mine if r.error), None) or next(
                (row.get("error") for row in rows if row.get("error")), None
            )
            error = f"no turn completed: {first or runs.error or 'the runs were cancelled'}"
        elif judge is not None:
            judged = runs.judged
            scores: list[float] = []
            if judged is not None:
                mine_j = judged[(judged["variant"] == name) & (judged["judge"] == judge.name)]
                scores = [float(v) for v in mine_j["score"].dropna()]
            if scores:
                value = float(sum(scores)) / len(scores)
            else:
                error = "the judge gave no score"
        elif score_fn is not None:
            from ._storage import frame

            try:
                value = float(score_fn(frame(rows)))
            except Exception as exc:
                error = f"score() failed: {type(exc).__name__}: {exc}"
            if error is None and math.isnan(value):
                error = "score() returned NaN"
        latency = _quantile([row.get(self.latency_column) for row in completed], self.quantile)
        trial.set_user_attr("latency_ms", None if math.isnan(latency) else latency)
        budget = self.latency_budget_ms
        over = OVER if math.isnan(latency) else latency - (budget or math.inf)
        if budget is not None:
            trial.set_user_attr("over_budget_ms", over)
            if hasattr(trial, "set_constraint"):
                trial.set_constraint("latency_over_budget_ms", over)
        trial.set_user_attr("feasible", budget is None or over <= 0)
        if error is not None:
            trial.set_user_attr("error", error)
            self.study.tell(trial, state=TrialState.FAIL)
        else:
            self.study.tell(trial, value)

    def merge(self, runs: Runs) -> None:
        """Add a wave's runs to ``runs``, numbered on from the runs before.

        Its judged rows and its wall time are added too.

        Args:
            runs: The wave's runs.

        Example:
            >>> tuning.merge(wave)  # what tune() does after each wave
        """
        import pandas as pd

        into = self.runs
        offset = len(into.runs)
        for run in runs.runs:
            run.index += offset
            for row in run.rows:
                row["run"] = run.index
            into.runs.append(run)
        into.variants.update(runs.variants)
        into.endpoint = runs.endpoint
        if runs.judged is not None and not runs.judged.empty:
            judged = runs.judged.copy()
            judged["run"] = judged["run"] + offset
            into.judged = (
                judged
                if into.judged is None
                else pd.concat([into.judged, judged], ignore_index=True)
            )
        into.wall_ms = (into.wall_ms or 0.0) + (runs.wall_ms or 0.0)

    def counts(self) -> dict[str, int]:
        """How many of the study's trials completed and how many failed.

        Returns:
            ``{"complete": ..., "fail": ...}``.

        Example:
            >>> tuning.counts()
            {'complete': 38, 'fail': 2}
        """
        from optuna.trial import TrialState

        states = [tr.state for tr in self.study.get_trials(deepcopy=False)]
        return {
            "complete": states.count(TrialState.COMPLETE),
            "fail": states.count(TrialState.FAIL),
        }

    # -- the results ------------------------------------------------------------------------

    def _feasible(self) -> list[optuna.trial.FrozenTrial]:
        from optuna.trial import TrialState

        return [
            tr
            for tr in self.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
            if tr.user_attrs.get("feasible", True)
        ]

    @property
    def best_trial(self) -> optuna.trial.FrozenTrial | None:
        """The finished trial with the best score within the budget; None when none met it.

        Among equal scores, the lower latency wins.
        """
        feasible = self._feasible()
        if not feasible:
            return None
        return max(feasible, key=lambda tr: (tr.value, -(tr.user_attrs.get("latency_ms") or 0.0)))

    @property
    def best_fields(self) -> dict[str, Any] | None:
        """The best trial's session fields (trait names), as ``update_session(**...)`` takes."""
        best = self.best_trial
        if best is None:
            return None
        params = {d.key: d.value(best.params[d.key]) for d in self.dims if d.key in best.params}
        return fields_for(self._base, params)

    @property
    def best(self) -> dict[str, Any] | None:
        """The best settings within the budget, as ``w.apply_session(tuning.best)`` takes them.

        A partial ``session`` object; None when no trial met the budget.
        """
        fields = self.best_fields
        if fields is None:
            return None
        scratch = _scratch(self._base)
        for name, value in fields.items():
            setattr(scratch, name, value)
        return partial_session(scratch, fields)

    def trials(self) -> pd.DataFrame:
        """One row per trial: its state, score, latency, settings and error.

        Columns: ``state`` (``complete``, ``fail``, ...), ``score``, the latency
        (``latency_name``, e.g. ``to_first_output_ms_p95``), ``feasible`` (within the
        budget), each space key's value, ``runs`` and ``error``. Trials a dead kernel left
        running are left out (they were asked again).

        Returns:
            A pandas DataFrame indexed by ``trial`` (the trial's number).

        Raises:
            ImportError: When pandas is not installed.

        Example:
            >>> tuning.trials().query("feasible").sort_values("score").tail(3)
        """
        pd = require("pandas", "pandas", "Tuning.trials()")
        rows = []
        for tr in self.study.get_trials(deepcopy=False):
            if self.study.user_attrs.get(f"interrupted {tr.number}"):
                continue
            row = {
                "trial": tr.number,
                "state": tr.state.name.lower(),
                "score": tr.value if tr.value is not None else math.nan,
                self.latency_name: tr.user_attrs.get("latency_ms"),
                "feasible": bool(tr.user_attrs.get("feasible", False)) and tr.value is not None,
            }
            for d in self.dims:
                row[d.key] = d.value(tr.params[d.key]) if d.key in tr.params else None
            row["runs"] = tr.user_attrs.get("runs")
            row["error"] = tr.user_attrs.get("error")
            rows.append(row)
        columns = ["trial", "state", "score", self.latency_name, "feasible",
                   *(d.key for d in self.dims), "runs", "error"]  # fmt: skip
        df = pd.DataFrame(rows, columns=columns)
        df[self.latency_name] = df[self.latency_name].astype("float64")
        df["score"] = df["score"].astype("float64")
        return df.set_index("trial")

    def pareto(self) -> pd.DataFrame:
        """The finished trials no other beats on both score (higher) and latency (lower).

        Returns:
            Those rows of ``trials()``, by latency.

        Example:
            >>> tuning.pareto()[["score", tuning.latency_name]]
        """
        df = self.trials()
        ok = df[(df["state"] == "complete") & df[self.latency_name].notna()]
        lat, sc = ok[self.latency_name], ok["score"]
        keep = [
            i for i in ok.index
            if not (((lat <= lat[i]) & (sc >= sc[i]) & ((lat < lat[i]) | (sc > sc[i]))).any())
        ]  # fmt: skip
        return ok.loc[keep].sort_values(self.latency_name)

    def plot(self) -> Any:
        """Draw score against latency: every trial, the Pareto front, the budget, the best trial.

        One point per finished trial (those over the budget hollow), the Pareto front as a
        step line, the budget as a dashed line and the best trial as a star.

        Returns:
            The matplotlib Figure.

        Raises:
            ImportError: When matplotlib (the ``plot`` extra) is not installed.

        Example:
            >>> tuning.plot().savefig("tuning.png")
        """
        try:
            import matplotlib.pyplot as plt
        except ImportError:
            raise missing("plot", "matplotlib", "Tuning.plot()") from None
        df = self.trials()
        ok = df[(df["state"] == "complete") & df[self.latency_name].notna()]
        front = self.pareto()
        fig, ax = plt.subplots(figsize=(6.4, 4.2), layout="constrained")
        feas = ok[ok["feasible"]]
        over = ok[~ok["feasible"]]
        ax.scatter(feas[self.latency_name], feas["score"], s=28, color="tab:blue", label="trial")
        ax.scatter(over[self.latency_name], over["score"], s=28, facecolors="none",
                   edgecolors="tab:gray", label="over the budget")  # fmt: skip
        ax.step(front[self.latency_name], front["score"], where="post", color="tab:orange",
                lw=1.5, label="Pareto front")  # fmt: skip
        if self.latency_budget_ms is not None:
            ax.axvline(self.latency_budget_ms, color="tab:red", ls="--", lw=1, label="budget")
        best = self.best_trial
        if best is not None:
            at = float(best.user_attrs.get("latency_ms") or math.nan)
            label = f"best (trial {best.number})"
            ax.scatter([at], [float(best.value or math.nan)], s=120, marker="*",
                       color="tab:green", zorder=3, label=label)  # fmt: skip
        ax.set_xlabel(f"{self.latency_name.replace('_', ' ')} (ms)")
        ax.set_ylabel("score")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="best")
        ax.set_title(f"{len(df)} trials: score against latency", fontsize=11)
        plt.close(fig)
        return fig

    def __repr__(self) -> str:
        counts = self.counts()
        best = self.best_trial
        words = "no trial within the budget"
        if best is not None:
            at = best.user_attrs.get("latency_ms") or math.nan
            words = f"best score {best.value:.3g} at {at:.0f} ms (trial {best.number})"
        return f"<Tuning {counts['complete']} trials complete, {counts['fail']} failed; {words}>"


def _jsonable(value: Any) -> Any:
    """A value Optuna's storage keeps (JSON)."""
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value if _plain(value) else repr(value)
