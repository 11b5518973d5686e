"""The turns table and its files: the columns and their types, the DataFrame, the Parquet set.

One column -> dtype table, the DataFrame built from it, and the Parquet set (one file per run,
partitioned by variant, with each run's log as JSONL and a ``_runs.json`` manifest) written and
read with the same types.

A new column is one line in :data:`COLUMNS`: the frame, the Parquet schema and the reader all
take it from there, and a set written before the column existed reads back with it empty.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from .._extras import missing

if TYPE_CHECKING:
    import pandas as pd

# The four felt latencies of ``events.turns()``, of each turn's first response.
LATENCY_COLUMNS = ("to_created_ms", "to_first_delta_ms", "to_first_audio_ms", "to_first_output_ms")
"""The four felt latencies of a turn, in ms from the end of the user's turn.

Each is measured on the turn's first response, as ``EventLog.turns()`` measures it:

- ``to_created_ms``: to the service's ``response.created``;
- ``to_first_delta_ms``: to the first output delta (text or audio);
- ``to_first_audio_ms``: to the first audio the user could hear (the browser's first audible
  sample when measured);
- ``to_first_output_ms``: to the first output the user got: first heard, else first read.

``Runs.summary()`` gives ``<column>_p50`` and ``<column>_p95`` of each, ``Runs.plot()`` draws
them, and ``Expectation.within_ms(column=...)`` checks them.

Example:
    >>> from realtime_widget.experiments import LATENCY_COLUMNS
    >>> runs.turns()[list(LATENCY_COLUMNS)].describe()
"""

# Every column of the turns table, in order, with its dtype: "float64" (NaN when missing),
# "int64" (always set), "Int64" (a whole number that may be missing), "string" (may be missing),
# "boolean" (may be missing) and "list<string>" (a list, empty when there is none).
COLUMNS: dict[str, str] = {
    "variant": "string",
    "condition": "string",  # the run's condition's name (the grid's other axis), if any
    "repeat": "int64",
    "turn": "int64",
    "run": "int64",
    "seed": "int64",
    "call_number": "int64",
    "kind": "string",
    "prompt": "string",
    "trigger": "string",
    "status": "string",
    "reason": "string",
    "error": "string",
    "text": "string",
    "transcript": "string",
    "heard": "string",
    "said": "string",  # a simulated caller's line (the service's hearing of it is ``heard``)
    "caller_ms": "float64",  # the caller's model time for the line
    "speech_ms": "float64",  # the speech endpoint's time for the line
    "response_id": "string",
    "responses": "int64",
    "tool_calls": "int64",
    "tools": "list<string>",
    "tool_ms": "float64",
    "tool_hop_ms": "float64",
    **dict.fromkeys(LATENCY_COLUMNS, "float64"),
    "input_tokens": "Int64",
    "output_tokens": "Int64",
    "total_tokens": "Int64",
    "audio_ms": "float64",
    "turn_ms": "float64",
    "started_ms": "float64",
    "ended_ms": "float64",
    # turn-taking (experiments.turn_taking): spoken turns, pauses, barge-in, noise alone
    "clip_ms": "float64",  # the spoken clip as played (say.started -> say.ended)
    "end_of_turn_ms": "float64",  # the clip's last sample -> speech_stopped
    "cut_off": "boolean",  # the turn was ended before its last phrase (pauses)
    "false_turns": "Int64",  # speech_started caused by the noise alone
    "stop_ms": "float64",  # barge-in onset -> the agent's last audible sample (recording)
    "heard_ms": "float64",  # how much of the interrupted reply was played
    "truncated_to_ms": "float64",  # conversation.item.truncated's audio_end_ms
}
"""Every column of the turns table (``Runs.turns()``), in order, with its pandas dtype.

The same columns, in this order, for every set: a live one, one read back with
``Runs.read_parquet``, and one written before a column existed (it reads back empty). Dtypes:
``float64`` (NaN when missing), ``int64`` (always set), ``Int64`` (a whole number that may be
missing), ``string`` and ``boolean`` (may be missing), and ``list<string>`` (a list, empty
when there is none).

- Where the turn ran: ``variant``, ``condition`` (the grid's other axis, if any), ``repeat``
  and ``turn`` (both from 1), ``run``, ``seed``, ``call_number``.
- What it was: ``kind`` (``text``, ``audio``, ``pauses``, ``barge_in``, ``noise``,
  ``caller``), ``prompt``.
- What came back: ``trigger``, ``status``, ``reason``, ``error``, ``text`` (the reply: output
  text, else transcript; every response of the turn), ``transcript``, ``heard`` (what the
  service transcribed of a spoken turn), ``response_id``, ``responses``.
- A simulated caller's line: ``said``, ``caller_ms`` (the caller's model time),
  ``speech_ms`` (the speech endpoint's time).
- Tools: ``tool_calls``, ``tools`` (names), ``tool_ms``, ``tool_hop_ms``.
- Latencies: the four of :data:`LATENCY_COLUMNS`; tokens: ``input_tokens``,
  ``output_tokens``, ``total_tokens``.
- Time: ``audio_ms`` (the agent's audio, ``output_audio_buffer.started`` -> ``.stopped``),
  ``turn_ms`` (the turn's first client event or clip start -> its last ``response.done`` or
  audio stop), ``started_ms``, ``ended_ms``.
- Turn-taking: ``clip_ms`` (the spoken clip as played), ``end_of_turn_ms`` (the clip's last
  sample -> ``speech_stopped``), ``cut_off`` (pauses), ``false_turns`` (noise alone),
  ``stop_ms``, ``heard_ms`` and ``truncated_to_ms`` (barge-in).

Example:
    >>> from realtime_widget.experiments import COLUMNS
    >>> COLUMNS["cut_off"]
    'boolean'
    >>> list(runs.turns().columns) == list(COLUMNS)
    True
"""
# The variant is the Parquet partition (``variant=<name>/``), not a column of the files.
PARTITION = "variant"
MANIFEST = "_runs.json"
FORMAT = {"format": "realtime-widget runs", "version": 1}


def frame(rows: Sequence[Mapping[str, Any]], what: str = "Runs.turns()") -> pd.DataFrame:
    """The turns table of ``rows``: every column of :data:`COLUMNS`, in order, with its dtype."""
    try:
        import pandas as pd
    except ImportError:
        raise missing("pandas", "pandas", what) from None
    df = pd.DataFrame(list(rows), columns=list(COLUMNS))
    for col, dtype in COLUMNS.items():
        if dtype == "list<string>":
            df[col] = df[col].map(lambda v: list(v) if v is not None else [])
        else:
            df[col] = df[col].astype(dtype)
    return df


def arrow_schema(with_partition: bool = False) -> Any:
    """The Parquet schema of :data:`COLUMNS` (without the variant, unless asked)."""
    import pyarrow as pa

    types = {
        "float64": pa.float64(),
        "int64": pa.int64(),
        "Int64": pa.int64(),
        "boolean": pa.bool_(),
        "string": pa.string(),
        "list<string>": pa.list_(pa.string()),
    }
    return pa.schema(
        [(c, types[d]) for c, d in COLUMNS.items() if with_partition or c != PARTITION]
    )


def _pyarrow(what: str) -> tuple[Any, Any]:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise missing("parquet", "pyarrow", what) from None
    return pa, pq


def partition(variant: str) -> str:
    """The folder of a variant's files: its name URL-quoted, as hive partitioning reads it."""
    return f"variant={quote(variant, safe='')}"


def run_stem(repeat: int, condition: str | None = None) -> str:
    """A run's file name (no suffix): its repeat, and its condition when the grid has them."""
    stem = f"repeat-{repeat:03d}"
    return stem if condition is None else f"{stem}-{quote(condition, safe='')}"


def write_rows(path: Path, rows: Sequence[Mapping[str, Any]]) -> None:
    """One run's rows as a Parquet file (the variant left to the partition)."""
    pa, pq = _pyarrow("Runs.to_parquet()")
    table = pa.Table.from_pylist(
        [{k: v for k, v in r.items() if k != PARTITION} for r in rows], schema=arrow_schema()
    )
    pq.write_table(table, path)


def read_rows(path: Path) -> list[dict[str, Any]]:
    """One run's rows back from its Parquet file, each column cast to the table's type.

    A column the file does not have (it was written before the column existed) reads as empty.
    """
    pa, pq = _pyarrow("Runs.read_parquet()")
    table = pq.read_table(path, partitioning=None)
    columns: dict[str, Any] = {}
    for f in arrow_schema():
        if f.name in table.column_names:
            columns[f.name] = table[f.name].cast(f.type)
        else:
            columns[f.name] = pa.nulls(table.num_rows, f.type)
    for name in table.column_names:  # a newer writer's columns are kept as they are
        if name not in columns and name != PARTITION:
            columns[name] = table[name]
    return pa.table(columns).to_pylist()


def write_manifest(root: Path, manifest: Mapping[str, Any]) -> None:
    (root / MANIFEST).write_text(json.dumps({**FORMAT, **manifest}, indent=1, default=repr))


def read_manifest(root: str | os.PathLike[str]) -> dict[str, Any]:
    path = Path(root) / MANIFEST
    if not path.is_file():
        raise FileNotFoundError(f"no {MANIFEST} in {root}: not a set written by to_parquet")
    meta: dict[str, Any] = json.loads(path.read_text())
    if meta.get("format") != FORMAT["format"]:
        raise ValueError(f"{path} is not a realtime-widget runs manifest")
    return meta
