"""What writers tell: the logger ``s3sink``, the ``on_event`` callable, and
:func:`stats` by the writer's name.

The runtime calls a writer's monitor once per event, from the sink's own thread or from
the thread of the writer call that caused it (with the GIL taken either way). Log lines:

- INFO per object stored: key, rows, bytes as stored, upload time;
- WARNING per failed attempt that is retried (the rows are kept), with the reason;
- INFO when an object is stored after failed attempts;
- ERROR when uploads stop on an error (the writer's next call raises it).

Messages name objects, buckets and errors, never credentials.
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from ._writer import Writer

logger = logging.getLogger("s3sink")

EventKind = Literal["uploaded", "retry", "recovered", "stopped"]


@dataclass(frozen=True)
class Event:
    """One event of a writer, as ``on_event`` receives it.

    Attributes:
        kind: ``"uploaded"`` (an object is stored), ``"retry"`` (an attempt failed and is
            tried again; its rows are kept), ``"recovered"`` (an object is stored after
            failed attempts; its ``"uploaded"`` follows), ``"stopped"`` (uploads stopped
            on an error: the writer's next call raises it).
        writer: The writer's ``name``, or None.
        key: The object's key (None for ``"stopped"``).
        rows: The object's rows.
        bytes: The object's size as stored (compressed, with compression).
        elapsed_ms: ``"uploaded"``: its upload's time (the last attempt);
            ``"recovered"``: the time since its first failure.
        attempts: Failed attempts of the object so far.
        retry_in_ms: ``"retry"``: when it is tried again.
        code: ``"retry"``, ``"stopped"``: the S3 error code (``"SlowDown"``) or the
            runtime's (``"EHTTP"``).
        message: ``"retry"``, ``"stopped"``: what failed, as ``Writer.last_error`` says.
        stats: The writer's counters after the event (as :func:`stats` gives them).
    """

    kind: EventKind
    writer: str | None
    key: str | None
    rows: int
    bytes: int
    elapsed_ms: int
    attempts: int
    retry_in_ms: int
    code: str | None
    message: str | None
    stats: Mapping[str, int]


EventCallable = Callable[[Event], Any]


class Monitor:
    """A writer's event handler: logs each event, keeps the counters it carries, and hands
    it to the user's ``on_event``. Holds the writer weakly (the writer holds it)."""

    def __init__(self, name: str | None, label: str, on_event: EventCallable | None) -> None:
        if on_event is not None and not callable(on_event):
            raise TypeError(f"on_event must be a callable or None, not {type(on_event).__name__}")
        self.name = name
        self.label = label
        self.on_event = on_event
        self.writer: weakref.ref[Writer] | None = None
        self.last_stats: Mapping[str, int] = {}

    def __call__(self, fields: dict[str, Any]) -> None:
        event = Event(writer=self.name, **fields)
        self.last_stats = event.stats
        log(self.label, event)
        if self.on_event is not None:
            try:
                self.on_event(event)
            except Exception:  # a callback's bug must not look like an upload failure
                logger.exception("s3sink %s: on_event raised on a %r event", self.label, event.kind)

    def stats(self) -> dict[str, int]:
        writer = self.writer() if self.writer is not None else None
        return dict(writer.stats) if writer is not None else dict(self.last_stats)


def log(label: str, e: Event) -> None:
    if e.kind == "uploaded":
        if logger.isEnabledFor(logging.INFO):
            logger.info("s3sink %s: uploaded %s: %d rows, %d bytes in %d ms", label, e.key,
                        e.rows, e.bytes, e.elapsed_ms)
    elif e.kind == "retry":
        logger.warning("s3sink %s: %s", label, e.message)
    elif e.kind == "recovered":
        logger.info("s3sink %s: uploads recovered: %s is stored after %d failed attempt(s) "
                    "over %.1f s", label, e.key, e.attempts, e.elapsed_ms / 1000)
    else:
        logger.error("s3sink %s: %s", label, e.message)


_named: dict[str, Monitor] = {}
_named_lock = threading.Lock()


def register(monitor: Monitor, writer: Writer) -> None:
    """Makes the writer's counters readable by its name (the last writer of a name wins:
    a pipeline run again in one process)."""
    monitor.writer = weakref.ref(writer)
    monitor.last_stats = writer.stats
    if monitor.name is not None:
        with _named_lock:
            _named[monitor.name] = monitor


def stats(name: str) -> dict[str, int]:
    """The counters of the writer made with ``name`` (in Pathway, the connector's
    ``name``): ``objects``, ``rows`` and ``bytes`` uploaded, ``buffered_rows`` and
    ``buffered_bytes`` kept, ``failed_uploads``, ``pending_objects``, ``spool_bytes``,
    ``upload_ms`` (time spent uploading), ``last_write_ms``. They stay readable after
    the writer is closed (and after the pipeline ended).

    Raises:
        KeyError: No writer of this process has that name; the message lists those that do.

    Example: ``pw.io.minio.write(table, "out/", "csv", minio_settings=..., name="orders")``,
    then, during or after ``pw.run()``, ``s3sink.stats("orders")["rows"]``.
    """
    with _named_lock:
        monitor = _named.get(name)
        known = sorted(_named)
    if monitor is None:
        names = ", ".join(map(repr, known)) or "none; pass name= to the writer"
        raise KeyError(f"no writer is named {name!r} in this process (named writers: {names})")
    return monitor.stats()
