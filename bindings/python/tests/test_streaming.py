"""Streaming pipelines: flush timing, buffer retention, several flush cycles, the idle
timer, and a streaming reader picking objects up while the writer runs.

Timing assertions have a hard lower bound (the sink never uploads before
write_interval_ms has passed since its last upload, or since it was opened) and generous
upper bounds."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import pathway as pw
import pytest

from helpers import TESTS_DIR, ObjectWatcher, ScriptedSubject, objects, python_env, read_back, run

SLACK = 4.0  # seconds of tolerance above a deadline (slow machines)
POLL_JITTER = 0.2  # the watcher polls every 50 ms


class Schema(pw.Schema):
    n: int
    s: str


def stream_table(plan):
    subject = ScriptedSubject(plan)
    return subject, pw.io.python.read(subject, schema=Schema, autocommit_duration_ms=50)


def rows_of(body: bytes) -> list[int]:
    lines = body.decode().splitlines()
    return [int(ln.split(",")[0].strip('"')) for ln in lines[1:]]


def test_flush_timing(s3, bucket, minio_settings):
    """A continuous stream: no object before write_interval_ms, one shortly after, and
    then at most one per interval."""
    interval = 2.0
    plan = [("mark", "start")]
    for n in range(30):  # ~6 s of rows, one minibatch each
        plan += [("row", {"n": n, "s": f"r{n}"}), ("sleep", 0.2)]
    subject, table = stream_table(plan)
    before_open = time.monotonic()
    pw.io.minio.write(table, "timing", "csv", minio_settings=minio_settings, write_interval_ms=int(interval * 1000))
    with ObjectWatcher(s3, bucket, "timing/") as w:
        run()
    times = w.times()
    assert len(times) >= 3
    assert times[0] >= before_open + interval - POLL_JITTER
    assert times[0] <= max(before_open + interval, subject.row_times[0]) + SLACK
    gaps = [b - a for a, b in zip(times, times[1:])]
    assert all(g >= interval - POLL_JITTER for g in gaps[:-1]), gaps  # the last one: on_end
    bodies = [b for _, b in objects(s3, bucket, "timing/")]
    assert sorted(n for b in bodies for n in rows_of(b)) == list(range(30))


def test_buffer_retention_on_early_flush(s3, bucket, minio_settings):
    """Minibatches that end before the interval are kept and go into the next object."""
    interval = 3.0
    plan = [
        ("row", {"n": 1, "s": "a"}), ("sleep", 0.3),  # minibatch 1
        ("row", {"n": 2, "s": "b"}), ("sleep", 0.3),  # minibatch 2
        ("row", {"n": 3, "s": "c"}), ("mark", "early"),  # minibatch 3
        ("sleep", interval + 2.5),  # the first object is uploaded meanwhile
        ("row", {"n": 4, "s": "d"}), ("sleep", 0.3),
    ]
    subject, table = stream_table(plan)
    before_open = time.monotonic()
    pw.io.minio.write(table, "keep", "json", minio_settings=minio_settings, write_interval_ms=int(interval * 1000))
    with ObjectWatcher(s3, bucket, "keep/") as w:
        run()
    assert subject.marks["early"] < before_open + interval  # they did end early
    bodies = [b.decode() for _, b in objects(s3, bucket, "keep/")]
    assert len(bodies) == 2
    assert [ln.split(",")[0] for ln in bodies[0].splitlines()] == ['{"n":1', '{"n":2', '{"n":3']
    assert [ln.split(",")[0] for ln in bodies[1].splitlines()] == ['{"n":4']
    assert w.times()[0] >= before_open + interval - POLL_JITTER


@pytest.mark.usefixtures("pathway_path")
def test_multiple_flush_cycles(s3, bucket, minio_settings):
    """Rows over several intervals: several objects, each readable on its own, together
    exactly the dataset."""
    plan = []
    for n in range(40):
        plan += [("row", {"n": n, "s": f"row {n}, \"q\""}), ("sleep", 0.12)]
    _, table = stream_table(plan)
    pw.io.minio.write(table, "cycles", "csv", minio_settings=minio_settings, write_interval_ms=1000)
    run()
    listed = objects(s3, bucket, "cycles/")
    assert len(listed) >= 3
    for key, body in listed:  # every object stands alone: header + whole rows
        assert key.endswith(".csv")
        assert body.startswith(b'"n","s","time","diff"\n') and body.endswith(b"\n")
        assert len(body.splitlines()) >= 2
    back = read_back("cycles/", minio_settings, "csv", Schema)
    assert sorted(back) == [(n, f'row {n}, "q"') for n in range(40)]
    # and through pw.io.s3.read as well
    back = read_back("cycles/", minio_settings, "csv", Schema, reader="s3")
    assert len(back) == 40


def test_idle_stream_is_flushed_by_the_timer(s3, bucket, minio_settings):
    """The last minibatch before a long pause reaches the bucket within about one
    interval, without waiting for more rows or the end of the stream."""
    interval = 3.0
    plan = [
        ("row", {"n": 1, "s": "x"}), ("sleep", 0.2),
        ("row", {"n": 2, "s": "y"}), ("mark", "last"),
        ("sleep", interval + 5.0), ("mark", "idle_end"),
    ]
    subject, table = stream_table(plan)
    before_open = time.monotonic()
    pw.io.minio.write(table, "idle", "csv", minio_settings=minio_settings, write_interval_ms=int(interval * 1000))
    with ObjectWatcher(s3, bucket, "idle/") as w:
        run()
    times = w.times()
    assert len(times) == 1
    assert times[0] < subject.marks["idle_end"]  # not by on_end
    assert before_open + interval - POLL_JITTER <= times[0]
    assert times[0] <= max(before_open + interval, subject.marks["last"]) + SLACK
    ((_, body),) = objects(s3, bucket, "idle/")
    assert rows_of(body) == [1, 2]


def _collect(proc, lines, done):
    for line in proc.stdout:
        lines.append(line.split())
    done.set()


def test_streaming_read_back_while_writing(s3, bucket):
    """pw.io.minio.read(mode="streaming") in another pipeline picks the objects up while
    the writer is still running; every row arrives exactly once."""
    env = python_env()
    reader = subprocess.Popen(
        [sys.executable, str(TESTS_DIR / "scripts" / "stream_reader.py"), bucket, "live/", "json"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env,
    )
    got: list[list[str]] = []
    reader_done = threading.Event()
    threading.Thread(target=_collect, args=(reader, got, reader_done), daemon=True).start()
    try:
        count = 40
        writer = subprocess.run(
            [sys.executable, str(TESTS_DIR / "scripts" / "stream_writer.py"), bucket, "live", "json", str(count), "0.2", "1000"],
            capture_output=True, text=True, env=env, timeout=180,
        )
        assert writer.returncode == 0, writer.stderr[-3000:]
        marks = dict(line.split() for line in writer.stdout.splitlines() if line.split()[0] in ("start", "end"))
        writer_end = float(marks["end"])
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            rows = [r for r in got if r[0] != "ready"]
            if len(rows) >= count:
                break
            assert reader.poll() is None, "the reader stopped"
            time.sleep(0.2)
        rows = [r for r in got if r[0] != "ready"]
        assert sorted(int(r[1]) for r in rows) == list(range(count))  # once each
        assert all(r[2] == "1" for r in rows)
        first_seen = min(float(r[0]) for r in rows)
        assert first_seen < writer_end, "no object was read while the writer ran"
        assert len(objects(s3, bucket, "live/")) >= 3
    finally:
        reader.kill()
        reader.wait()
