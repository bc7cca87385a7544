"""s3sink.Writer against a real MinIO, without Pathway's engine: the observer protocol,
the flush policy, the timer, errors and the close contract."""

from __future__ import annotations

import gc
import sys
import threading
import time
import warnings

import pytest

import s3sink
from faultproxy import always, first, respond
from helpers import keys, objects, wait_for

COLS = [("a", "int"), ("b", "str", True)]


def test_observer_protocol_and_stats(s3, bucket, writer_kwargs):
    w = s3sink.Writer(**writer_kwargs, prefix="p/", columns=COLS, write_interval_ms=600_000)
    assert "secret" not in repr(w) and writer_kwargs["secret_key"] not in repr(w)
    assert w.columns == [("a", "int", False), ("b", "str", True)]
    w.on_change(key=None, row={"a": 1, "b": "x"}, time=2, is_addition=True)
    w.on_change(None, {"a": 2, "b": None}, 2, False)
    assert w.on_time_end(2) is False  # the interval has not passed
    st = w.stats
    assert (st["objects"], st["buffered_rows"]) == (0, 2)
    assert st["buffered_bytes"] == len(b'"1","x","2","1"\n"2","None","2","-1"\n')
    w.on_change(None, {"a": 3, "b": "y"}, 4, True)  # an unfinished minibatch
    assert w.flush() is False
    assert w.flush(forced=True) is True  # complete minibatches only
    assert w.stats["buffered_rows"] == 1
    w.on_end()  # the unfinished one too
    assert w.closed
    st = w.stats
    assert (st["objects"], st["rows"], st["buffered_rows"], st["failed_uploads"]) == (2, 3, 0, 0)
    objs = objects(s3, bucket, "p/")
    assert [body for _, body in objs] == [
        b'"a","b","time","diff"\n"1","x","2","1"\n"2","None","2","-1"\n',
        b'"a","b","time","diff"\n"3","y","4","1"\n',
    ]
    assert w.last_key == objs[-1][0]
    assert all(k.startswith("p/") and k.endswith(".csv") for k, _ in objs)
    w.close()  # idempotent
    with pytest.raises(s3sink.SinkError, match="closed"):
        w.on_change(None, {"a": 1, "b": None}, 6, True)
    with pytest.raises(s3sink.SinkError, match="closed"):
        w.on_time_end(6)


def test_on_change_arguments(writer_kwargs):
    with s3sink.Writer(**writer_kwargs, columns=COLS) as w:
        with pytest.raises(TypeError, match="missing required argument 'is_addition'"):
            w.on_change(None, {"a": 1, "b": None}, 2)
        with pytest.raises(TypeError, match="unexpected keyword argument 'rows'"):
            w.on_change(key=None, rows={}, time=2, is_addition=True)
        with pytest.raises(TypeError, match="multiple values"):
            w.on_change(None, {"a": 1, "b": None}, 2, True, time=3)
        with pytest.raises(TypeError, match="time must be an int"):
            w.on_change(None, {"a": 1, "b": None}, 2.0, True)
        with pytest.raises(TypeError, match=r"column 'a' \(int\)"):
            w.on_change(None, {"a": "1", "b": None}, 2, True)
        assert w.stats["buffered_rows"] == 0


def test_buffer_retention_on_early_flush(s3, bucket, writer_kwargs):
    """Minibatches that end before the interval stay buffered and go into the next
    object with the rows that follow."""
    w = s3sink.Writer(**writer_kwargs, prefix="r/", columns=COLS, write_interval_ms=1500, no_timer=True)
    opened = time.monotonic()
    w.on_change(None, {"a": 1, "b": "early"}, 2, True)
    assert w.on_time_end(2) is False
    assert keys(s3, bucket, "r/") == []
    time.sleep(max(0.0, opened + 1.7 - time.monotonic()))
    w.on_change(None, {"a": 2, "b": "late"}, 4, True)
    assert w.on_time_end(4) is True
    w.on_change(None, {"a": 3, "b": "next"}, 6, True)
    assert w.on_time_end(6) is False  # a new interval started with the upload
    w.close()
    assert [b for _, b in objects(s3, bucket, "r/")] == [
        b'"a","b","time","diff"\n"1","early","2","1"\n"2","late","4","1"\n',
        b'"a","b","time","diff"\n"3","next","6","1"\n',
    ]


def test_timer_uploads_an_idle_buffer(s3, bucket, writer_kwargs):
    w = s3sink.Writer(**writer_kwargs, prefix="idle/", columns=COLS, write_interval_ms=800)
    opened = time.monotonic()
    w.on_change(None, {"a": 1, "b": None}, 2, True)
    w.on_time_end(2)
    assert wait_for(lambda: keys(s3, bucket, "idle/"), timeout=15)
    assert time.monotonic() - opened >= 0.8
    assert w.stats["objects"] == 1 and w.stats["buffered_rows"] == 0
    # an unfinished minibatch is never uploaded by the timer
    w.on_change(None, {"a": 2, "b": None}, 4, True)
    time.sleep(1.5)
    assert len(keys(s3, bucket, "idle/")) == 1
    w.close()
    assert len(keys(s3, bucket, "idle/")) == 2


def test_empty_writer_uploads_nothing(s3, bucket, writer_kwargs):
    w = s3sink.Writer(**writer_kwargs, columns=COLS, write_interval_ms=100)
    time.sleep(0.5)
    assert w.flush(forced=True) is False
    w.close()
    assert keys(s3, bucket) == []
    assert w.last_key is None


def test_close_raises_when_the_final_upload_fails_and_keeps_the_rows(s3, bucket, writer_kwargs):
    w = s3sink.Writer(**writer_kwargs, columns=COLS, write_interval_ms=600_000)
    w.on_change(None, {"a": 1, "b": "kept"}, 2, True)
    w.on_time_end(2)
    s3.delete_bucket(Bucket=bucket)
    with pytest.raises(s3sink.UploadError) as ei:
        w.close()
    assert ei.value.status == 404 and ei.value.s3_code == "NoSuchBucket"
    assert isinstance(ei.value, OSError)
    assert not w.closed
    assert w.stats["buffered_rows"] == 1 and w.stats["failed_uploads"] == 1
    assert isinstance(w.last_error, s3sink.UploadError)
    s3.create_bucket(Bucket=bucket)
    w.close()
    assert w.closed and w.last_error is None
    assert [b for _, b in objects(s3, bucket)] == [b'"a","b","time","diff"\n"1","kept","2","1"\n']


def test_on_time_end_keeps_quiet_about_retried_failures_and_raises_once_uploads_stop(
    s3, bucket, proxied_kwargs, proxy
):
    w = s3sink.Writer(**proxied_kwargs, columns=COLS, write_interval_ms=1, no_timer=True)
    proxy.rule = first(1, respond(503, "SlowDown"), method="PUT")
    w.on_change(None, {"a": 1, "b": None}, 2, True)
    time.sleep(0.01)
    assert w.on_time_end(2) is False  # transient: the rows are kept and retried
    assert w.failed_uploads == 1 and w.failure is None
    assert w.last_error.s3_code == "SlowDown"
    assert w.flush(forced=True) is True
    assert w.last_error is None

    proxy.rule = always(respond(403, "AccessDenied"), method="PUT")
    w.on_change(None, {"a": 2, "b": None}, 4, True)
    time.sleep(0.01)
    with pytest.raises(s3sink.UploadError) as ei:  # permanent: uploads stop at once
        w.on_time_end(4)
    text = str(ei.value)
    assert "uploads stopped" in text and "AccessDenied" in text and bucket in text
    assert w.failure.s3_code == "AccessDenied"
    with pytest.raises(s3sink.UploadError, match="uploads stopped"):  # so says every call
        w.on_change(None, {"a": 3, "b": None}, 6, True)
    proxy.rule = None
    assert w.flush(forced=True) is True  # the host asks again
    assert w.failure is None
    w.close()
    assert [b for _, b in objects(s3, bucket)] == [
        b'"a","b","time","diff"\n"1","None","2","1"\n',
        b'"a","b","time","diff"\n"2","None","4","1"\n',
    ]


def test_last_error_of_the_timer_is_exposed_and_retried(s3, bucket, proxied_kwargs, proxy):
    w = s3sink.Writer(**proxied_kwargs, columns=COLS, write_interval_ms=300)
    assert w.last_error is None
    proxy.rule = first(2, respond(503, "SlowDown"), method="PUT")
    w.on_change(None, {"a": 1, "b": None}, 2, True)
    w.on_time_end(2)
    assert wait_for(lambda: w.last_error is not None, timeout=15)
    assert isinstance(w.last_error, s3sink.UploadError)
    assert w.last_error.s3_code == "SlowDown"
    assert wait_for(lambda: w.stats["objects"] == 1, timeout=15)
    assert w.last_error is None and w.failure is None
    assert w.failed_uploads == 2
    w.close()
    assert len(keys(s3, bucket)) == 1


def test_open_errors(minio, bucket, writer_kwargs):
    with pytest.raises(s3sink.UploadError) as ei:
        s3sink.Writer(**{**writer_kwargs, "bucket": bucket + "-missing"}, columns=COLS)
    assert ei.value.status == 404
    wrong = "not-the-secret-" + "x" * 12
    with pytest.raises(s3sink.UploadError) as ei:
        s3sink.Writer(**{**writer_kwargs, "secret_key": wrong}, columns=COLS)
    assert ei.value.status == 403
    assert wrong not in str(ei.value) and minio.secret_key not in str(ei.value)
    with pytest.raises(s3sink.ConfigError):
        s3sink.Writer(**{**writer_kwargs, "secret_key": None}, columns=COLS)
    with pytest.raises(s3sink.ConfigError):
        s3sink.Writer(**writer_kwargs, columns=COLS, write_interval_ms=-1)
    with pytest.raises(s3sink.ConfigError, match="writer_id"):
        s3sink.Writer(**writer_kwargs, columns=COLS, writer_id="a b")
    with pytest.raises(TypeError, match="columns"):
        s3sink.Writer(**writer_kwargs)
    with pytest.raises(s3sink.ConfigError):
        s3sink.Writer(**{**writer_kwargs, "bucket": None}, columns=COLS)


def test_create_bucket(s3, minio, writer_kwargs, bucket):
    name = bucket + "-new"
    with s3sink.Writer(**{**writer_kwargs, "bucket": name}, columns=COLS, create_bucket=True) as w:
        w.on_change(None, {"a": 1, "b": None}, 2, True)
    assert len(keys(s3, name)) == 1


def test_keys_continue_after_an_earlier_run(s3, bucket, writer_kwargs):
    for run in range(2):
        with s3sink.Writer(**writer_kwargs, prefix="k/", columns=COLS, writer_id="w-1") as w:
            w.on_change(None, {"a": run, "b": None}, 2, True)
    ks = keys(s3, bucket, "k/")
    assert len(ks) == 2 and ks == sorted(ks)
    assert all(k.endswith("-w-1.csv") for k in ks)


def test_unclosed_writer_is_closed_by_gc(s3, bucket, writer_kwargs):
    w = s3sink.Writer(**writer_kwargs, columns=COLS, write_interval_ms=600_000)
    w.on_change(None, {"a": 1, "b": None}, 2, True)
    del w
    gc.collect()
    assert len(keys(s3, bucket)) == 1


def test_unclosed_writer_whose_upload_fails_warns(s3, bucket, writer_kwargs):
    w = s3sink.Writer(**writer_kwargs, columns=COLS, write_interval_ms=600_000)
    w.on_change(None, {"a": 1, "b": None}, 2, True)
    s3.delete_bucket(Bucket=bucket)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        del w
        gc.collect()
    assert any("1 buffered rows were dropped" in str(c.message) for c in caught)


def test_concurrent_calls_and_close(s3, bucket, writer_kwargs):
    """Rows from several threads, a close racing with them: no crash, every accepted
    row uploaded exactly once."""
    w = s3sink.Writer(**writer_kwargs, columns=COLS, write_interval_ms=50)
    accepted = []
    lock = threading.Lock()

    def produce(tid):
        for i in range(400):
            try:
                w.on_change(None, {"a": tid * 1000 + i, "b": None}, 2 * i, True)
                with lock:
                    accepted.append(tid * 1000 + i)
                if i % 20 == 0:
                    w.on_time_end(2 * i)
            except s3sink.SinkError:
                return

    threads = [threading.Thread(target=produce, args=(t,)) for t in range(3)]
    for t in threads:
        t.start()
    time.sleep(0.05)
    w.close()
    for t in threads:
        t.join()
    lines = [ln for _, body in objects(s3, bucket) for ln in body.decode().splitlines()]
    values = sorted(int(ln.split(",")[0].strip('"')) for ln in lines if not ln.startswith('"a"'))
    assert values == sorted(accepted)
    assert w.stats["rows"] == len(accepted)


def test_concurrent_writers_under_backpressure(s3, bucket, writer_kwargs):
    """Threads writing into a budget a few rows large: a row waiting for room (the GIL
    released) never lets another thread's row past it into the sink, nothing raises, and
    every row is uploaded exactly once."""
    w = s3sink.Writer(**writer_kwargs, columns=COLS, write_interval_ms=5, max_buffer_bytes=400)
    errors = []

    def produce(tid):
        try:
            for i in range(200):
                w.on_change(None, {"a": tid * 1000 + i, "b": None}, i, True)
                if i % 4 == 3:
                    w.on_time_end(i)
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=produce, args=(t,)) for t in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    w.close()
    assert errors == []
    lines = [ln for _, body in objects(s3, bucket) for ln in body.decode().splitlines()]
    values = sorted(int(ln.split(",")[0].strip('"')) for ln in lines if not ln.startswith('"a"'))
    assert values == sorted(t * 1000 + i for t in range(3) for i in range(200))
    assert w.stats["objects"] > 10  # the budget did force many uploads


def test_refcounts_after_on_change(writer_kwargs):
    with s3sink.Writer(**writer_kwargs, columns=COLS) as w:
        s = "x" * 50
        row = {"a": 10**12, "b": s}
        before = (sys.getrefcount(s), sys.getrefcount(row["a"]), sys.getrefcount(row))
        for i in range(200):
            w.on_change(None, row, 2, True)
        assert (sys.getrefcount(s), sys.getrefcount(row["a"]), sys.getrefcount(row)) == before
