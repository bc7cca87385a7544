"""Visibility against a real MinIO: the logger ``s3sink`` (an INFO line per object, a
WARNING per retried attempt, INFO on recovery, ERROR on a stop), ``on_event`` and
``s3sink.stats(name)``, for the Writer and through Pathway."""

from __future__ import annotations

import gc
import logging
import threading
import time

import pytest

import s3sink
from faultproxy import always, first, respond
from helpers import objects, wait_for

COLS = [("a", "int"), ("b", "str", True)]


def s3sink_records(caplog) -> list[tuple[str, str]]:
    return [(r.levelname, r.getMessage()) for r in caplog.records if r.name == "s3sink"]


def test_every_upload_is_logged_and_told_with_its_key_rows_bytes_and_time(s3, bucket, writer_kwargs, caplog):
    caplog.set_level(logging.INFO, logger="s3sink")
    events: list[s3sink.Event] = []
    w = s3sink.Writer(**writer_kwargs, prefix="p/", columns=COLS, name="events-basic",
                      on_event=events.append, write_interval_ms=1, no_timer=True)
    for n in range(1, 4):
        for i in range(n):
            w.on_change(None, {"a": i, "b": "x" * n}, 2 * n, True)
        time.sleep(0.005)
        assert w.on_time_end(2 * n) is True
    w.close()
    assert [e.kind for e in events] == ["uploaded"] * 3
    stored = dict(objects(s3, bucket, "p/"))
    for n, e in enumerate(events, 1):
        assert e.writer == "events-basic" and e.rows == n and e.attempts == 0
        assert e.bytes == len(stored[e.key])
        assert 0 <= e.elapsed_ms < 60_000
        assert e.code is None and e.message is None
        assert e.stats["objects"] == n  # the counters after the event
    lines = [m for level, m in s3sink_records(caplog) if level == "INFO" and "uploaded" in m]
    assert lines == [f"s3sink events-basic: uploaded {e.key}: {e.rows} rows, {e.bytes} bytes in "
                     f"{e.elapsed_ms} ms" for e in events]
    st = s3sink.stats("events-basic")
    assert (st["objects"], st["rows"], st["bytes"]) == (3, 6, sum(e.bytes for e in events))
    assert st["buffered_rows"] == 0 and st["failed_uploads"] == 0 and st["upload_ms"] >= 0
    assert st == w.stats
    del w
    gc.collect()
    assert s3sink.stats("events-basic") == st  # readable once the writer is gone


def test_retries_warn_with_the_reason_and_the_recovery_is_told(s3, bucket, proxied_kwargs, proxy, caplog):
    caplog.set_level(logging.INFO, logger="s3sink")
    events: list[s3sink.Event] = []
    proxy.rule = first(2, respond(503, "SlowDown"), method="PUT")
    # the sink's own thread uploads and retries: the events come from there
    w = s3sink.Writer(**proxied_kwargs, columns=COLS, name="events-retry", on_event=events.append,
                      write_interval_ms=50)
    w.on_change(None, {"a": 1, "b": None}, 2, True)
    w.on_time_end(2)
    assert wait_for(lambda: s3sink.stats("events-retry")["objects"] == 1)
    assert wait_for(lambda: len(events) == 4)
    assert [e.kind for e in events] == ["retry", "retry", "recovered", "uploaded"]
    key = events[-1].key
    for n, e in enumerate(events[:2], 1):
        assert e.key == key and e.rows == 1 and e.attempts == n and e.code == "SlowDown"
        assert e.retry_in_ms >= 0 and "the rows are kept" in e.message
    assert events[2].attempts == 2 and events[2].elapsed_ms >= 0
    records = s3sink_records(caplog)
    warnings = [m for level, m in records if level == "WARNING"]
    assert len(warnings) == 2 and all("SlowDown" in m and key in m for m in warnings)
    assert any(level == "INFO" and "uploads recovered" in m and key in m for level, m in records)
    w.close()
    assert s3sink.stats("events-retry")["failed_uploads"] == 2


def test_a_stop_is_logged_as_an_error_with_the_message_the_writer_raises(s3, bucket, proxied_kwargs, proxy, caplog):
    caplog.set_level(logging.INFO, logger="s3sink")
    events: list[s3sink.Event] = []
    w = s3sink.Writer(**proxied_kwargs, columns=COLS, on_event=events.append, write_interval_ms=1,
                      no_timer=True)
    proxy.rule = always(respond(403, "AccessDenied"), method="PUT")
    w.on_change(None, {"a": 1, "b": None}, 2, True)
    time.sleep(0.005)
    with pytest.raises(s3sink.UploadError) as ei:
        w.on_time_end(2)
    assert [e.kind for e in events] == ["stopped"]
    assert events[0].message == str(ei.value) and events[0].code == "AccessDenied"
    errors = [m for level, m in s3sink_records(caplog) if level == "ERROR"]
    assert errors == [f"s3sink s3://{bucket}/: {ei.value}"]
    proxy.rule = None
    w.close()  # the forced upload of close recovers
    assert [e.kind for e in events] == ["stopped", "recovered", "uploaded"]


def test_logs_never_carry_credentials(s3, bucket, proxied_kwargs, proxy, caplog):
    caplog.set_level(logging.DEBUG, logger="s3sink")
    proxy.rule = first(1, respond(403, "InvalidAccessKeyId"), method="PUT")
    w = s3sink.Writer(**proxied_kwargs, columns=COLS, name="events-secret", write_interval_ms=1,
                      no_timer=True, max_retry_ms=1)
    w.on_change(None, {"a": 1, "b": None}, 2, True)
    time.sleep(0.005)
    try:
        w.on_time_end(2)
    except s3sink.UploadError:
        pass
    w.close()
    text = "\n".join(m for _, m in s3sink_records(caplog))
    assert "uploaded" in text
    assert proxied_kwargs["secret_key"] not in text and proxied_kwargs["access_key"] not in text


def test_on_event_may_read_the_writer_but_not_write_flush_or_close_it(s3, bucket, writer_kwargs, caplog):
    seen: list[object] = []

    def handler(e: s3sink.Event) -> None:
        seen.append(w.stats["objects"])
        for call in (lambda: w.flush(forced=True), w.close, lambda: w.on_change(None, {"a": 9}, 9, True)):
            try:
                call()
            except RuntimeError as err:
                seen.append(str(err))
        raise ValueError("a bug in the handler")

    w = s3sink.Writer(**writer_kwargs, columns=COLS, on_event=handler, write_interval_ms=1, no_timer=True)
    w.on_change(None, {"a": 1, "b": None}, 2, True)
    time.sleep(0.005)
    assert w.on_time_end(2) is True  # the handler's error does not fail the upload
    w.close()
    assert seen[0] == 1
    assert len(seen) == 4 and all("on_event may read the writer" in s for s in seen[1:])
    assert any("on_event raised" in r.getMessage() and r.exc_info for r in caplog.records)
    assert len(objects(s3, bucket)) == 1


def test_a_slow_handler_on_the_sinks_thread_does_not_block_writes(s3, bucket, writer_kwargs):
    release = threading.Event()
    w = s3sink.Writer(**writer_kwargs, columns=COLS, on_event=lambda e: release.wait(10),
                      write_interval_ms=1)
    w.on_change(None, {"a": 1, "b": None}, 2, True)
    w.on_time_end(2)
    assert wait_for(lambda: w.stats["objects"] == 1)
    started = time.monotonic()
    for i in range(1000):  # the handler waits on the sink's thread meanwhile
        w.on_change(None, {"a": i, "b": None}, 4, True)
    assert time.monotonic() - started < 5
    release.set()
    w.close()


def test_stats_by_name_names_the_writers_it_knows(writer_kwargs):
    with pytest.raises(KeyError, match="no writer is named 'nobody'"):
        s3sink.stats("nobody")
    with pytest.raises(TypeError, match="name must be a str or None, not int"):
        s3sink.Writer(**writer_kwargs, columns=COLS, name=1)
    with pytest.raises(TypeError, match="on_event must be a callable or None, not str"):
        s3sink.Writer(**writer_kwargs, columns=COLS, on_event="print")


def test_pathway_writer_logs_and_counts_by_connector_name(s3, bucket, minio_settings, pathway_path, caplog):
    import pathway as pw

    caplog.set_level(logging.INFO, logger="s3sink")
    events: list[s3sink.Event] = []
    t = pw.debug.table_from_markdown("""
        a | b
        1 | x
        2 | y
        3 | z
    """)
    name = f"events-pw-{pathway_path}"
    pw.io.minio.write(t, "out/", "csv", minio_settings=minio_settings, name=name, on_event=events.append)
    pw.run(monitoring_level=pw.MonitoringLevel.NONE)
    st = s3sink.stats(name)
    assert (st["objects"], st["rows"], st["buffered_rows"]) == (1, 3, 0)
    assert [e.kind for e in events] == ["uploaded"] and events[0].writer == name
    stored = dict(objects(s3, bucket, "out/"))
    assert list(stored) == [events[0].key] and len(stored[events[0].key]) == events[0].bytes == st["bytes"]
    assert any(m.startswith(f"s3sink {name}: uploaded {events[0].key}: 3 rows") for _, m in s3sink_records(caplog))
