"""The shortest path from the Pathway engine to the writer.

``pw.io.python.write(table, observer)`` subscribes the observer through
``pathway.internals.table_subscription.subscribe``, whose wrapper builds a dict per row in
Python and calls ``observer.on_change(key=, row=, time=, is_addition=)`` with keywords.
Underneath, the engine's callback sink (``CallbackDataSink``, attached with
``table_to_datasink``) calls ``on_change(key, values, time, diff)`` with the values as a
list in the table's column order. The writers attach ``Writer.on_engine_change`` (C) there
directly, exactly as ``pw.io.python.write`` builds its sink otherwise
(``skip_persisted_batch=True``, ``skip_errors=True``, ``on_time_end``, ``on_end``,
``unique_name=name``, ``sort_by``), so nothing runs in Python per row.

These are Pathway internals: :func:`check` verifies at import time that they are there
with the shape this module relies on (verified with Pathway 0.33.0) and
:func:`attach` falls back to the public ``pw.io.python.write`` when they are not, or when
``S3SINK_PATHWAY_FAST_PATH=0`` asks for it (tests, benchmarks).
"""

from __future__ import annotations

import dataclasses
import inspect
import logging
import os
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import pathway as pw

logger = logging.getLogger("s3sink")

VERIFIED_PATHWAY = "0.33.0"
ENV_SWITCH = "S3SINK_PATHWAY_FAST_PATH"

# what pw.io.python.write passes to CallbackDataSink besides the callbacks
_SINK_FIELDS = (
    "on_change",
    "on_time_end",
    "on_end",
    "skip_persisted_batch",
    "skip_errors",
    "unique_name",
    "sort_by",
)
_SUBSCRIBE_PARAMS = (
    "table",
    "skip_persisted_batch",
    "on_change",
    "on_time_end",
    "on_end",
    "skip_errors",
    "name",
    "sort_by",
)


def _params(fn: Callable[..., Any]) -> list[str]:
    return list(inspect.signature(fn).parameters)


def _check() -> tuple[Any, Any] | str:
    """(CallbackDataSink, table_to_datasink) if the internals have the expected shape,
    else why not."""
    try:
        from pathway.internals import datasink, table_io, table_subscription
        from pathway.internals.graph_runner import operator_handler
        from pathway.io import python as pw_python
    except ImportError as e:
        return f"cannot import Pathway's internals ({e})"
    sink_cls = getattr(datasink, "CallbackDataSink", None)
    to_datasink = getattr(table_io, "table_to_datasink", None)
    subscribe = getattr(table_subscription, "subscribe", None)
    if sink_cls is None or to_datasink is None or subscribe is None:
        return "CallbackDataSink, table_to_datasink or subscribe is missing"
    if not dataclasses.is_dataclass(sink_cls):
        return "CallbackDataSink is not a dataclass"
    fields = tuple(f.name for f in dataclasses.fields(sink_cls))
    if fields != _SINK_FIELDS:
        return f"CallbackDataSink has the fields {fields}, not {_SINK_FIELDS}"
    if _params(to_datasink)[:2] != ["table", "datasink"]:
        return "table_to_datasink(table, datasink, ...) has another signature"
    if tuple(_params(subscribe)) != _SUBSCRIBE_PARAMS:
        return "table_subscription.subscribe has another signature"
    # subscribe must build the sink from its arguments with exactly these keywords, and
    # pw.io.python.write must go through it with skip_persisted_batch=True (the keyword
    # names of a call are a tuple constant of the caller's code)
    sub_code = subscribe.__code__
    if _SINK_FIELDS not in sub_code.co_consts or not {
        "table_to_datasink",
        "CallbackDataSink",
        "_on_change_wrapper",
    } <= set(sub_code.co_names):
        return "table_subscription.subscribe builds its sink differently"
    write_code = inspect.unwrap(pw_python.write).__code__
    write_kw = ("skip_persisted_batch", "on_change", "on_time_end", "on_end", "name", "sort_by")
    if write_code.co_names[:1] != ("subscribe",) or write_kw not in write_code.co_consts or (
        not any(c is True for c in write_code.co_consts)
    ):
        return "pw.io.python.write no longer subscribes with skip_persisted_batch=True"
    # the engine gets the values in the order of table._columns (which is what the
    # wrapper zips the names with), from the handler of CallbackDataSink
    run_code = operator_handler.OutputOperatorHandler._run.__code__
    if not {"subscribe_table", "CallbackDataSink", "_columns", "values"} <= set(run_code.co_names):
        return "the engine's output handler calls CallbackDataSink differently"
    return sink_cls, to_datasink


_CHECKED = _check()
#: Whether the engine's callback sink can be used (the check at import time passed).
AVAILABLE: bool = not isinstance(_CHECKED, str)
#: Why not, when it cannot.
UNAVAILABLE_REASON: str | None = _CHECKED if isinstance(_CHECKED, str) else None
if UNAVAILABLE_REASON is not None:
    logger.info(
        "s3sink: Pathway %s: using pw.io.python.write (%s; fast path verified with %s)",
        pw.__version__, UNAVAILABLE_REASON, VERIFIED_PATHWAY,
    )


def enabled() -> bool:
    """Whether writers attach to the engine's callback sink: available, and not turned
    off with ``S3SINK_PATHWAY_FAST_PATH=0`` (read at every call)."""
    return AVAILABLE and os.environ.get(ENV_SWITCH, "1").strip().lower() not in ("0", "false", "no", "off")


def attach(
    table: pw.Table,
    observer: Any,
    column_names: Sequence[str],
    name: str | None,
    sort_by: Iterable[Any] | None,
) -> bool:
    """Subscribes `observer` (an ``_S3Observer``) to `table`: through the engine's
    callback sink when enabled and the table's column order is the writer's, else through
    ``pw.io.python.write``. True if the fast path was taken."""
    if enabled() and list(table._columns) == list(column_names):
        sink_cls, to_datasink = _CHECKED  # type: ignore[misc]
        to_datasink(
            table,
            sink_cls(
                on_change=observer.on_engine_change,
                on_time_end=observer.on_time_end,
                on_end=observer.on_end,
                skip_persisted_batch=True,  # as pw.io.python.write: persistence's contract
                skip_errors=True,
                unique_name=name,
                sort_by=sort_by,
            ),
        )
        return True
    pw.io.python.write(table, observer, name=name, sort_by=sort_by)
    return False
