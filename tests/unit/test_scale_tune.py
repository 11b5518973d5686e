"""Runs at once and tune(), without a call: the arguments refused before anything runs, the
space's dimensions, a rate limit told from other errors, and a tuning's results read from a
study made by hand."""

from __future__ import annotations

import math

import optuna
import pytest

from realtime_widget import RealtimeSession, RealtimeWidget, Script
from realtime_widget._session import SessionTraits
from realtime_widget.experiments._parallel import rate_limit_code
from realtime_widget.experiments._runs import Runs
from realtime_widget.experiments._tune import Tuning, check_space, fields_for
from tests.conftest import SENTINEL_KEY

NOWHERE = "http://127.0.0.1:9"  # nothing listens: any call would fail loudly


def test_space_keys_are_fields_and_dotted_paths_into_nested_ones() -> None:
    base = SessionTraits()
    dims = check_space(
        base,
        {"speed": (0.8, 1.4), "temperature": (0.6, 1.0, 0.1), "voice": ["Clive", "Ashley"],
         "turn_detection.eagerness": ["low", "high"], "max_output_tokens": (64, 512)},
    )  # fmt: skip
    kinds = {d.key: d.kind for d in dims}
    assert kinds == {"speed": "float", "temperature": "float", "voice": "category",
                     "turn_detection.eagerness": "category", "max_output_tokens": "int"}  # fmt: skip
    fields = fields_for(base, {"turn_detection.eagerness": "high", "speed": 1.2})
    assert fields["speed"] == 1.2
    assert fields["turn_detection"] == {**base.turn_detection, "eagerness": "high"}


@pytest.mark.parametrize(
    ("space", "words"),
    [
        (
            {"sped": (0.8, 1.4)},
            ["'sped' is not a session field", "speed", "turn_detection.eagerness"],
        ),
        ({"voice.name": ["a"]}, ["'voice' holds no dict"]),
        (
            {"turn_detection.eagerness": ["low", "fast"]},
            ["'fast' is not allowed", "eagerness", "low, medium, high, auto"],
        ),
        ({"speed": (0.8, 3.0)}, ["space['speed']: 3.0 is not allowed", "from 0.5 to 1.5"]),
        ({"speed": (1.4, 0.8)}, ["low < high"]),
        ({"speed": "fast"}, ["a range (low, high)"]),
        ({"turn_detection.threshold": (0.1, 0.9)}, ["unknown key", "threshold"]),
        ({"voice": ["Clive", "Clive"]}, ["listed twice"]),
        ({"turn_detection": [None], "turn_detection.eagerness": ["low"]}, ["overlaps"]),
    ],
)
def test_a_bad_space_is_refused_naming_the_key_and_what_is_allowed(
    space: dict, words: list[str]
) -> None:
    with pytest.raises((ValueError, TypeError)) as caught:
        check_space(SessionTraits(), space)
    for word in words:
        assert word in str(caught.value)


async def test_tune_refuses_bad_arguments_before_any_call() -> None:
    s = RealtimeSession(base_url=NOWHERE, api_key=SENTINEL_KEY)
    try:
        with pytest.raises(ValueError, match=r"'sped' is not a session field"):
            await s.tune(["Hi"], space={"sped": (0.8, 1.4)}, score=lambda t: 1.0)
        with pytest.raises(TypeError, match=r"a judge .* or a score"):
            await s.tune(["Hi"], space={"speed": (0.8, 1.4)})
        with pytest.raises(ValueError, match="latency_column must be one of"):
            await s.tune(["Hi"], space={"speed": (0.8, 1.4)}, score=len, latency_column="x")
        with pytest.raises(ValueError, match="trials must be"):
            await s.tune(["Hi"], space={"speed": (0.8, 1.4)}, score=len, trials=0)
        assert s.status == "disconnected" and len(s.events) == 0
    finally:
        s.close()


async def test_runs_at_once_are_refused_on_a_widget_whose_page_holds_one_call() -> None:
    w = RealtimeWidget(base_url=NOWHERE, api_key=SENTINEL_KEY)
    try:
        with pytest.raises(TypeError, match=r"page holds one call.*RealtimeSession"):
            w.run_script(Script(["Hi"]), concurrency=4)
        with pytest.raises(TypeError, match="RealtimeSession"):
            await w.tune(["Hi"], space={"speed": (0.8, 1.4)}, score=len, concurrency=2)
        with pytest.raises(ValueError, match="concurrency must be"):
            w.run_script(Script(["Hi"]), concurrency=0)
    finally:
        w.close()


def test_an_executor_must_be_a_dask_client() -> None:
    s = RealtimeSession(base_url=NOWHERE, api_key=SENTINEL_KEY)
    try:
        with pytest.raises(TypeError, match=r"dask\.distributed Client"):
            s.run_script(Script(["Hi"]), executor=object())
    finally:
        s.close()


@pytest.mark.parametrize(
    ("event", "code"),
    [
        (
            {
                "type": "error",
                "error": {"type": "invalid_request_error", "code": "rate_limit_exceeded"},
            },
            "rate_limit_exceeded",
        ),
        ({"type": "error", "error": {"code": "too_many_calls"}}, "too_many_calls"),
        ({"type": "error", "error": {"type": "tokens_rate_limit"}}, "tokens_rate_limit"),
        ({"type": "error", "error": {"code": "invalid_value"}}, None),
        ({"type": "error"}, None),
    ],
)
def test_a_rate_limit_error_event_is_told_from_other_errors(event: dict, code: str | None) -> None:
    assert rate_limit_code(event) == code


def _study(points: list[tuple[float, float | None, str]], budget: float) -> Tuning:
    """A study of trials (score, latency, voice) made by hand; NaN score: a failed trial."""
    study = optuna.create_study(direction="maximize")
    dist = {"voice": optuna.distributions.CategoricalDistribution(["Clive", "Ashley", "Sarah"])}
    for score, latency, voice in points:
        failed = math.isnan(score)
        attrs = {"latency_ms": latency, "feasible": latency is not None and latency <= budget}
        study.add_trial(
            optuna.trial.create_trial(
                params={"voice": voice}, distributions=dist,
                value=None if failed else score,
                state=optuna.trial.TrialState.FAIL if failed else optuna.trial.TrialState.COMPLETE,
                user_attrs=attrs,
            )
        )  # fmt: skip
    dims = check_space(SessionTraits(), {"voice": ["Clive", "Ashley", "Sarah"]})
    return Tuning(SessionTraits(), study, dims, budget, "to_first_output_ms", 0.95,
                  Runs(Script(["Hi"]), {}, 1))  # fmt: skip


def test_best_meets_the_budget_and_pareto_keeps_the_undominated() -> None:
    tuning = _study(
        [(9.0, 1500.0, "Sarah"), (7.0, 900.0, "Ashley"), (7.0, 700.0, "Clive"),
         (5.0, 400.0, "Clive"), (4.0, 800.0, "Ashley"), (math.nan, None, "Sarah")],
        budget=1000.0,
    )  # fmt: skip
    assert (
        tuning.best_trial is not None and tuning.best_trial.number == 2
    )  # 7 at 700 beats 7 at 900
    assert tuning.best == {"type": "realtime", "audio": {"output": {"voice": "Clive"}}}
    table = tuning.trials()
    assert list(table.columns[:4]) == ["state", "score", "to_first_output_ms_p95", "feasible"]
    assert table.loc[5, "state"] == "fail" and not table.loc[5, "feasible"]
    assert list(tuning.pareto().index) == [3, 2, 0]
    fig = tuning.plot()
    assert fig.axes[0].get_xlabel().startswith("to first output ms p95")
    assert "best score 7 at 700 ms (trial 2)" in repr(tuning)


def test_no_trial_within_the_budget_means_no_best() -> None:
    tuning = _study([(9.0, 1500.0, "Sarah")], budget=1000.0)
    assert tuning.best is None and "no trial within the budget" in repr(tuning)
