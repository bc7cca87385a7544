"""Faults, against the real MinIO and real Pathway pipelines: each case writes rows with
unique ids, tries to break a guarantee of the README, and counts every id in the bucket.
A row is lost if an acknowledged (or, for a finished run, written) id is missing, and
duplicated if the same id and time are stored twice. Every case takes seconds."""

from __future__ import annotations

import json
import os
import random
import resource
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pathway as pw
import pytest

from faultproxy import (
    DROP_RESPONSE,
    RESET_REQUEST,
    STALL,
    always,
    delay,
    every_nth,
    first,
    respond,
)
from helpers import (TESTS_DIR, AckRecorder, MinioServer, count_ids, count_rows, loss_report, objects,
                     python_env, run)
import s3sink
from s3sink import _pathway


class IdRow(pw.Schema):
    id: int
    payload: str


class IdSubject(pw.io.python.ConnectorSubject):
    """Emits ids 0..n-1 in minibatches of `batch` rows, `pause` seconds apart; calls
    at(batch_number) before each minibatch (to inject a fault at a chosen moment). Stops
    early when its test ends (a failed run leaves its subject running)."""

    stop = threading.Event()

    def __init__(self, n: int, batch: int = 50, pause: float = 0.02, at=None, payload: int = 40) -> None:
        super().__init__()
        self.n, self.batch, self.pause, self.at, self.payload = n, batch, pause, at, payload

    def run(self) -> None:
        for number, start in enumerate(range(0, self.n, self.batch)):
            if self.stop.is_set():
                return
            if self.at:
                self.at(number)
            for i in range(start, min(self.n, start + self.batch)):
                self.next(id=i, payload="x" * self.payload)
            self.commit()
            time.sleep(self.pause)


def settings(endpoint: str, bucket: str, minio) -> pw.io.minio.MinIOSettings:
    return pw.io.minio.MinIOSettings(endpoint=endpoint, bucket_name=bucket, access_key=minio.access_key,
                                     secret_access_key=minio.secret_key, region="us-east-1")


def write_ids(endpoint: str, bucket: str, minio, n: int, *, at=None, pause: float = 0.02,
              batch: int = 50, payload: int = 40, **writer) -> None:
    table = pw.io.python.read(IdSubject(n, batch, pause, at, payload), schema=IdRow, autocommit_duration_ms=50)
    writer.setdefault("write_interval_ms", 200)
    pw.io.minio.write(table, "out/", "json", minio_settings=settings(endpoint, bucket, minio), **writer)


def the_writer(bucket: str):
    """The observer that pw.io.minio.write made for `bucket`."""
    return next(w for w in list(_pathway._live_writers) if f"bucket={bucket} " in repr(w))


@pytest.fixture(autouse=True)
def _stop_subjects():
    IdSubject.stop.clear()
    yield
    IdSubject.stop.set()


@pytest.fixture
def own_minio(tmp_path, minio):
    """A MinIO of this test's own, to kill and start again."""
    server = MinioServer(tmp_path / "minio-data", minio.access_key, minio.secret_key)
    server.start()
    yield server
    server.kill()


# --- the server goes away ---------------------------------------------------------------


def test_minio_killed_mid_stream_and_restarted(own_minio, minio):
    client = own_minio.client()
    client.create_bucket(Bucket="faults")
    down = {}

    def at(number):
        if number == 8:
            own_minio.kill()
            down["at"] = time.monotonic()
        elif number == 40:
            own_minio.start()
            down["for"] = time.monotonic() - down["at"]

    write_ids(own_minio.endpoint, "faults", minio, 3000, at=at, pause=0.05, connect_timeout_ms=1000)
    writer = the_writer("faults")
    run()
    report = loss_report(count_ids(client, "faults", "out/"), set(range(3000)))
    print("MinIO killed for %.1f s:" % down["for"], report, "failed attempts:", writer.stats["failed_uploads"])
    assert down["for"] > 1.5
    assert writer.stats["failed_uploads"] > 0
    assert report["lost"] == 0 and report["duplicated"] == 0


def test_storage_down_with_a_small_budget(own_minio, minio):
    """Writes wait while the server is away (backpressure): the writer's memory stays
    within max_buffer_bytes, health properties answer at once, nothing is lost."""
    client = own_minio.client()
    client.create_bucket(Bucket="faults")
    budget = 128 * 1024
    seen = {"buffered": 0, "slowest_health": 0.0}
    stop = threading.Event()

    def sample(writer):
        while not stop.is_set():
            t0 = time.monotonic()
            st = writer.stats
            writer.failure, writer.last_error  # noqa: B018 - health must not block
            seen["slowest_health"] = max(seen["slowest_health"], time.monotonic() - t0)
            seen["buffered"] = max(seen["buffered"], st["buffered_bytes"])
            time.sleep(0.01)

    def at(number):
        if number == 20:
            own_minio.kill()
        elif number == 120:
            own_minio.start()

    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    write_ids(own_minio.endpoint, "faults", minio, 20000, at=at, batch=100, pause=0.03,
              max_buffer_bytes=budget, connect_timeout_ms=1000)
    writer = the_writer("faults")
    sampler = threading.Thread(target=sample, args=(writer,), daemon=True)
    sampler.start()
    run()
    stop.set()
    sampler.join()
    rss_growth_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before) / 1024
    report = loss_report(count_ids(client, "faults", "out/"), set(range(20000)))
    print("budget", budget, "largest buffered", seen["buffered"], "slowest health read %.3f s"
          % seen["slowest_health"], "peak RSS growth %.0f MB" % rss_growth_mb, report)
    assert seen["buffered"] <= budget
    assert seen["slowest_health"] < 0.5
    assert report["lost"] == 0 and report["duplicated"] == 0


@pytest.mark.parametrize("spooled", [False, True], ids=["in memory", "spooled"])
def test_a_minibatch_larger_than_the_budget_spans_objects(spooled, s3, bucket, minio, tmp_path):
    """One minibatch of 20000 rows (about 1.4 MB) through a 64 KiB budget: split across
    consecutive objects, each self-contained, every row once."""
    budget = {"spool_dir": tmp_path / "spool", "spool_max_bytes": 64 * 1024} if spooled else {
        "max_buffer_bytes": 64 * 1024}
    table = pw.io.python.read(IdSubject(20000, batch=20000), schema=IdRow, autocommit_duration_ms=60_000)
    pw.io.minio.write(table, "out/", "json", minio_settings=settings(minio.endpoint, bucket, minio),
                      write_interval_ms=3_600_000, **budget)
    run()
    found = count_ids(s3, bucket, "out/")
    report = loss_report(found, set(range(20000)))
    times = {t for ts in found.values() for t in ts}
    objects = s3.list_objects_v2(Bucket=bucket, Prefix="out/")["KeyCount"]
    print("spooled" if spooled else "in memory", objects, "objects", report)
    assert len(times) == 1  # one minibatch...
    assert objects > 10  # ...in many objects
    assert report["lost"] == 0 and report["duplicated"] == 0


# --- the network misbehaves (a proxy in front of the real MinIO) -------------------------

PROXY_FAULTS = {
    "reset mid-request": (every_nth(3, RESET_REQUEST, method="PUT"), "reset_request", {}),
    "response dropped after the server stored the object": (
        every_nth(3, DROP_RESPONSE, method="PUT"), "drop_response", {}),
    "added latency": (always(delay(0.3)), "delay", {}),
    "stalled connection": (every_nth(2, STALL, method="PUT"), "stall", {"request_timeout_ms": 1500}),
    "503 SlowDown": (every_nth(2, respond(503, "SlowDown"), method="PUT"), "respond", {}),
}


# compressed objects, and objects with settings, through the faults that make a PUT
# repeat: a retry must send the same bytes, and a stored copy must be recognised
OBJECT_VARIANTS = {
    "gzip": {"compression": "gzip"},
    "zstd, spooled": {"compression": "zstd", "spool": True},
    "zstd, SSE-S3, tags, metadata": {"compression": "zstd", "sse": "AES256", "tags": {"run": "faults"},
                                     "metadata": {"source": "test-faults"}},
}


@pytest.mark.parametrize("variant", list(OBJECT_VARIANTS))
@pytest.mark.parametrize("fault", ["reset mid-request", "response dropped after the server stored the object"])
def test_network_faults_with_compression_and_object_settings(fault, variant, s3, bucket, minio, proxy, tmp_path):
    rule, kind, _ = PROXY_FAULTS[fault]
    writer = dict(OBJECT_VARIANTS[variant])
    if writer.pop("spool", False):
        writer["spool_dir"] = str(tmp_path / "spool")
    proxy.rule = rule
    write_ids(proxy.endpoint, bucket, minio, 2000, pause=0.04, write_interval_ms=100, **writer)
    run()
    report = loss_report(count_ids(s3, bucket, "out/"), set(range(2000)))  # decompressed
    print(fault, variant, "faults injected:", proxy.actions(kind), report)
    assert proxy.actions(kind) >= 1
    assert report["lost"] == 0 and report["duplicated"] == 0
    ext = ".json.gz" if writer["compression"] == "gzip" else ".json.zst"
    assert all(key.endswith(ext) for key, _ in objects(s3, bucket, "out/"))


@pytest.mark.parametrize("fault", list(PROXY_FAULTS))
def test_network_faults(fault, s3, bucket, minio, proxy):
    rule, kind, writer = PROXY_FAULTS[fault]
    proxy.rule = rule
    write_ids(proxy.endpoint, bucket, minio, 2000, pause=0.04, write_interval_ms=100, **writer)
    run()
    report = loss_report(count_ids(s3, bucket, "out/"), set(range(2000)))
    print(fault, "faults injected:", proxy.actions(kind), report)
    assert proxy.actions(kind) >= 1
    assert report["lost"] == 0 and report["duplicated"] == 0


def test_the_final_upload_is_retried(s3, bucket, minio, proxy):
    proxy.rule = first(1, respond(503, "SlowDown"), method="PUT")
    write_ids(proxy.endpoint, bucket, minio, 500, write_interval_ms=3_600_000)
    run()  # the only upload is the one at the end of the stream
    assert proxy.actions("respond") == 1
    report = loss_report(count_ids(s3, bucket, "out/"), set(range(500)))
    assert report["lost"] == 0 and report["duplicated"] == 0


def test_opening_retries_and_lists_from_the_policys_start(s3, bucket, minio, proxy):
    old = [f"out/20200101T0000{i // 60:02d}.{i % 1000:03d}Z-{i:010d}.json" for i in range(1500)]
    for k in old:
        s3.put_object(Bucket=bucket, Key=k, Body=b"")
    proxy.rule = first(2, respond(503, "SlowDown"))  # HeadBucket and a first listing fail
    write_ids(proxy.endpoint, bucket, minio, 100)
    run()
    lists = sum(1 for m, _, a in proxy.log if m == "GET" and a == "pass")
    keys_after = sorted(o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix="out/2026")["Contents"])
    assert proxy.actions("respond") == 2
    assert lists == 1  # one page: the listing started a day back, not at 2020
    assert keys_after and all(k > old[-1] for k in keys_after)


# --- errors that need a person: the run fails fast and loud ------------------------------


@pytest.mark.parametrize("cause", ["access denied", "bucket deleted"])
def test_a_permanent_error_fails_the_run_and_the_spool_keeps_every_acknowledged_row(
    cause, s3, bucket, minio, proxy, tmp_path
):
    spool = tmp_path / "spool"
    fault = {}

    def at(number):
        if number == 10:
            fault["at"] = time.monotonic()
            if cause == "access denied":
                proxy.rule = always(respond(403, "AccessDenied"), method="PUT")
            else:
                s3.delete_bucket(Bucket=bucket)  # empty: the first upload is later

    interval = 200 if cause == "access denied" else 3000
    with AckRecorder() as acks:
        write_ids(proxy.endpoint, bucket, minio, 100_000, at=at, pause=0.02,
                  write_interval_ms=interval, spool_dir=spool)
        with pytest.raises(Exception) as ei:
            run()
    failed_after = time.monotonic() - fault["at"]
    text = str(ei.value)
    code = "AccessDenied" if cause == "access denied" else "NoSuchBucket"
    print(cause, "run failed %.1f s after the fault:" % failed_after, text[:300])
    assert "uploads stopped" in text and code in text and bucket in text and "out/" in text
    assert failed_after < interval / 1000 + 5
    assert acks.acked

    # a later run with good settings uploads what the failed one acknowledged (first,
    # what the exit of the failed run's process does: the spool is left to the next run)
    from pathway.internals.parse_graph import G

    _pathway._close_live_writers()
    G.clear()
    proxy.rule = None
    if cause == "bucket deleted":
        s3.create_bucket(Bucket=bucket)
    empty = pw.debug.table_from_rows(IdRow, [])
    pw.io.minio.write(empty, "out/", "json", minio_settings=settings(proxy.endpoint, bucket, minio),
                      spool_dir=spool)
    run()
    report = loss_report(count_ids(s3, bucket, "out/"), acks.acked)
    print(cause, report)
    assert report["lost"] == 0 and report["duplicated"] == 0


def _fails_within(seconds: float, match: str, bucket: str) -> None:
    t0 = time.monotonic()
    with pytest.raises(Exception, match=match):
        run()
    assert time.monotonic() - t0 < seconds
    the_writer(bucket).discard()  # what the exit of the failed run's process does


def test_a_naming_script_that_raises_fails_the_run(bucket, minio, tmp_path):
    naming = tmp_path / "naming.lua"
    naming.write_text('return { name = function(ctx) error("no name for you") end }')
    write_ids(minio.endpoint, bucket, minio, 100_000, naming=str(naming))
    _fails_within(15, "no name for you", bucket)


def test_a_format_script_that_loops_in_pcall_fails_the_run(bucket, minio, tmp_path):
    fmt = tmp_path / "fmt.lua"
    fmt.write_text("return { row = function() while true do pcall(function() while true do end end) end end }")
    table = pw.io.python.read(IdSubject(100_000), schema=IdRow, autocommit_duration_ms=50)
    pw.io.minio.write(table, "out/", str(fmt), minio_settings=settings(minio.endpoint, bucket, minio))
    _fails_within(30, "instruction budget", bucket)


def test_foreign_objects_under_the_prefix(s3, bucket, minio):
    foreign = ("out/_SUCCESS", "out/manifest.json", "out/sub/part-0.json")
    for key in foreign:
        s3.put_object(Bucket=bucket, Key=key, Body=b"{}")
    write_ids(minio.endpoint, bucket, minio, 1000)
    run()
    found = count_ids(s3, bucket, "out/", keep=lambda key: key not in foreign)
    report = loss_report(found, set(range(1000)))
    assert report["lost"] == 0 and report["duplicated"] == 0


# --- the writer is killed: the spool and Pathway's persistence ---------------------------


class Pipeline:
    """scripts/fault_pipeline.py in a process of its own, fed JSON Lines files of ids
    by a thread, with the rows Pathway delivered to the writer and its acknowledgements
    logged to a file.

    Pathway's reader also reads the feeder's hidden temporary files: one it sees before
    the rename is retracted and read again, sometimes within one minibatch, so the writer
    gets the same id twice with the same time (diffs -1 and +1). That is Pathway's stream,
    which the writer stores as given: report() counts as duplicated only rows (id, time,
    diff) stored more often than Pathway delivered them."""

    def __init__(self, tmp_path: Path, bucket: str, endpoint: str, *, spool: bool = True,
                 interval_ms: int = 1000, max_buffer_bytes: int = 0, max_retry_ms: int = 300_000,
                 compression: str = "none", payload: int = 30, options: dict | None = None,
                 partitioned: bool = False) -> None:
        self.in_dir = tmp_path / "in"
        self.in_dir.mkdir(exist_ok=True)
        self.ack_log = tmp_path / "acks.log"
        self.args = [sys.executable, str(TESTS_DIR / "scripts" / "fault_pipeline.py"), bucket,
                     str(self.in_dir), str(tmp_path / "persistence"),
                     str(tmp_path / "spool") if spool else "-", str(self.ack_log), str(interval_ms),
                     str(max_buffer_bytes), str(max_retry_ms), compression]
        self.env = python_env(S3SINK_TEST_ENDPOINT=endpoint, PYTHONPATH=os.pathsep.join(
            [str(TESTS_DIR / "scripts"), os.environ["PYTHONPATH"]]),
            FAULT_PIPELINE_OPTIONS=json.dumps(options or {}),
            S3SINK_TEST_PARTITIONED="1" if partitioned else "0")
        self.payload = payload
        self.partitioned = partitioned
        self.fed = 0
        self.proc: subprocess.Popen | None = None
        self._stop = threading.Event()
        self._feeder: threading.Thread | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(self.args, env=self.env, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, text=True)

    def feed(self) -> None:
        """Writes a file of 50 ids every 30 ms until stop_feeding()."""
        self._stop.clear()
        self._feeder = threading.Thread(target=self._feed, daemon=True)
        self._feeder.start()

    def _feed(self) -> None:
        while not self._stop.is_set():
            lines = "".join(json.dumps({"id": self.fed + i, "payload": "y" * self.payload,
                                        **self._partition(self.fed + i)}) + "\n"
                            for i in range(50))
            tmp = self.in_dir / f".{self.fed:08d}.tmp"
            tmp.write_text(lines)
            tmp.rename(self.in_dir / f"{self.fed:08d}.jsonl")
            self.fed += 50
            time.sleep(0.03)

    def _partition(self, i: int) -> dict:
        """The partition columns of row i (partitioned): part, and an event time in one of 3
        hours of 2025-11-25."""
        return {"part": i % 4, "ts": f"2025-11-25T{i % 3:02d}:00:00+00:00"} if self.partitioned else {}

    def stop_feeding(self) -> None:
        self._stop.set()
        if self._feeder:
            self._feeder.join()

    def signal(self, sig: int, wait: float = 60) -> float:
        """Sends sig; returns the seconds until the process exited."""
        t0 = time.monotonic()
        self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        return time.monotonic() - t0

    def stderr(self) -> str:
        return self.proc.stderr.read()[-2000:] if self.proc and self.proc.stderr else ""

    def _log(self) -> list:
        if not self.ack_log.exists():
            return []
        return [json.loads(line) for line in self.ack_log.read_text().splitlines()]

    def acked(self) -> set[int]:
        return {i for entry in self._log() if isinstance(entry, list) for i in entry}

    def delivered(self) -> Counter[tuple[int, int, int]]:
        """(id, time, diff) -> how many times Pathway gave that row to the writer, over
        every run (the writer may store each delivery once)."""
        return Counter((i, entry["time"], diff) for entry in self._log() if isinstance(entry, dict)
                       for i, diff in entry["rows"])

    def report(self, s3, bucket: str) -> dict[str, int]:
        """loss_report of the bucket against what Pathway delivered and the writer acknowledged."""
        return loss_report(count_ids(s3, bucket, "out/"), self.acked(),
                           count_rows(s3, bucket, "out/"), self.delivered())

    def catch_up(self, s3, bucket: str, timeout: float = 60) -> None:
        """Runs until the bucket holds every id fed, then kills the process."""
        self.start()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and len(count_ids(s3, bucket, "out/")) < self.fed:
            time.sleep(0.3)
        self.signal(signal.SIGKILL)


def kill_9_rounds(s3, bucket: str, minio, tmp_path: Path, **pipeline_options) -> None:
    """Rounds of a streaming pipeline killed with SIGKILL at random moments, with Pathway
    persistence on: after each restart the bucket gets every row acknowledged before the
    kill, each spooled chunk once."""
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    pipeline = Pipeline(tmp_path, bucket, minio.endpoint, **pipeline_options)
    rounds = []
    for _ in range(4):
        pipeline.start()
        pipeline.feed()
        time.sleep(rng.uniform(3.0, 6.0))
        pipeline.signal(signal.SIGKILL)
        pipeline.stop_feeding()
        acked = pipeline.acked()
        rounds.append({"acked": len(acked),
                       "acked, not uploaded at the kill": len(acked - set(count_ids(s3, bucket, "out/")))})
    pipeline.catch_up(s3, bucket)  # takes over the spool, then catches up with the input
    found = count_ids(s3, bucket, "out/")
    report = pipeline.report(s3, bucket)
    print("seed", seed, "rounds", rounds, "fed", pipeline.fed, "in the bucket", len(found), report)
    assert report["lost"] == 0, pipeline.stderr()
    assert report["duplicated"] == 0
    assert set(range(pipeline.fed)) <= set(found), pipeline.stderr()
    # the kills did catch acknowledged rows that only the spool held
    assert sum(r["acked, not uploaded at the kill"] for r in rounds) > 0


def test_kill_9_with_a_spool_and_partitions(s3, bucket, minio, tmp_path):
    """The same with rows routed to partitions by a column and by event time: every
    acknowledged row reaches its partition's folder after the restarts, once."""
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    pipeline = Pipeline(tmp_path, bucket, minio.endpoint, partitioned=True)
    rounds = []
    for _ in range(2):
        pipeline.start()
        pipeline.feed()
        time.sleep(rng.uniform(3.0, 6.0))
        pipeline.signal(signal.SIGKILL)
        pipeline.stop_feeding()
        acked = pipeline.acked()
        rounds.append({"acked": len(acked),
                       "acked, not uploaded at the kill": len(acked - set(count_ids(s3, bucket, "out/")))})
    pipeline.catch_up(s3, bucket)
    misplaced = []
    for key, body in objects(s3, bucket, "out/"):
        for row in map(json.loads, body.decode().splitlines()):
            folder = f"out/dt=2025-11-25/hour={row['id'] % 3:02d}/part={row['id'] % 4}/"
            if not key.startswith(folder):
                misplaced.append((key, row["id"]))
    report = pipeline.report(s3, bucket)
    print("seed", seed, "rounds", rounds, "fed", pipeline.fed, report)
    assert misplaced == []
    assert report["lost"] == 0, pipeline.stderr()
    assert report["duplicated"] == 0
    assert set(range(pipeline.fed)) <= set(count_ids(s3, bucket, "out/")), pipeline.stderr()


@pytest.mark.usefixtures("pathway_path")
def test_kill_9_with_a_spool_and_persistence(s3, bucket, minio, tmp_path):
    kill_9_rounds(s3, bucket, minio, tmp_path)


def test_kill_9_with_a_spool_and_persistence_compressed(s3, bucket, minio, tmp_path):
    """The same with gzip: a kill may land while the sink's thread compresses a segment,
    or between compressing and uploading it; every .gz object is one gzip member."""
    kill_9_rounds(s3, bucket, minio, tmp_path, compression="gzip")
    assert all(key.endswith(".json.gz") for key, _ in objects(s3, bucket, "out/"))


def test_sigterm_during_an_outage_with_a_spool(own_minio, minio, tmp_path):
    """SIGTERM while the server is down: the process ends at once (the spool keeps what
    it acknowledged), and the next run uploads all of it."""
    client = own_minio.client()
    client.create_bucket(Bucket="faults")
    pipeline = Pipeline(tmp_path, "faults", own_minio.endpoint, interval_ms=300)
    pipeline.start()
    pipeline.feed()
    time.sleep(4)
    own_minio.kill()
    time.sleep(1.5)
    took = pipeline.signal(signal.SIGTERM)
    pipeline.stop_feeding()
    own_minio.start()
    pipeline.catch_up(client, "faults")
    report = pipeline.report(client, "faults")
    print("exited %.1f s after SIGTERM;" % took, report)
    assert took < 10, pipeline.stderr()
    assert report["lost"] == 0 and report["duplicated"] == 0


def test_sigterm_during_an_outage_without_a_spool_waits_at_most_max_retry_ms(own_minio, minio, tmp_path):
    """Without a spool the process tries to upload what it holds before it exits, for up
    to max_retry_ms, even while its worker waits for room (backpressure)."""
    client = own_minio.client()
    client.create_bucket(Bucket="faults")
    pipeline = Pipeline(tmp_path, "faults", own_minio.endpoint, spool=False, interval_ms=300,
                        max_buffer_bytes=20_000, max_retry_ms=2000)
    pipeline.start()
    pipeline.feed()
    time.sleep(4)
    own_minio.kill()
    time.sleep(1.5)  # the worker now waits for room
    took = pipeline.signal(signal.SIGTERM)
    pipeline.stop_feeding()
    print("exited %.1f s after SIGTERM" % took)
    assert took < 2 + 8, pipeline.stderr()


# --- multipart uploads (objects of multipart_threshold_bytes or more) --------------------

# MinIO takes parts of 5 MiB or more but the last: objects of about 11.5 MiB in parts of
# 5, 5 and 1.5 MiB, from rows of about 1 KB
MULTIPART = {"multipart_threshold_bytes": 5 << 20, "multipart_part_bytes": 5 << 20,
             "max_object_bytes": 11 << 20, "write_interval_ms": 3_600_000}


def is_part(req) -> bool:
    return req.method == "PUT" and "partNumber=" in req.target


def is_complete(req) -> bool:
    return req.method == "POST" and "uploadId=" in req.target


def aborted_uploads(proxy) -> list[str]:
    """The upload ids of the AbortMultipartUpload requests through the proxy."""
    from urllib.parse import parse_qs, urlsplit

    return [parse_qs(urlsplit(t).query)["uploadId"][0] for m, t in list(proxy.targets)
            if m == "DELETE" and "uploadId=" in t]


def every_nth_of(kind, n: int, action):
    """`action` for every n-th request that `kind` accepts."""
    seen = [0]
    lock = threading.Lock()

    def rule(req):
        if not kind(req):
            return None
        with lock:
            seen[0] += 1
            return action if seen[0] % n == 0 else None

    return rule


def uploads_left(s3, bucket: str) -> list[dict]:
    """Multipart uploads not completed nor aborted. MinIO lists a bucket's (without a
    prefix) from what it started since it runs, and a key's by prefix = key."""
    found = s3.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
    for key, _ in objects(s3, bucket):
        found += s3.list_multipart_uploads(Bucket=bucket, Prefix=key).get("Uploads", [])
    return found


def multipart_objects(s3, bucket: str) -> dict[str, int]:
    """key -> number of parts (0 for an object of one PutObject), from the ETag."""
    out = {}
    for key, _ in objects(s3, bucket, "out/"):
        etag = s3.head_object(Bucket=bucket, Key=key)["ETag"].strip('"')
        out[key] = int(etag.split("-")[1]) if "-" in etag else 0
    return out


MULTIPART_FAULTS = {
    "UploadPart reset mid-request": (every_nth_of(is_part, 3, RESET_REQUEST), "reset_request"),
    "UploadPart answer dropped after the server stored the part": (
        every_nth_of(is_part, 3, DROP_RESPONSE), "drop_response"),
    "CompleteMultipartUpload answer dropped after the object was made": (
        every_nth_of(is_complete, 2, DROP_RESPONSE), "drop_response"),
    "CompleteMultipartUpload answers 200 with an error inside": (
        every_nth_of(is_complete, 2, respond(200, "InternalError", "We encountered an internal error. Please try again.")),
        "respond"),
}


@pytest.mark.parametrize("spooled", [False, True], ids=["in memory", "spooled"])
@pytest.mark.parametrize("fault", list(MULTIPART_FAULTS))
def test_multipart_uploads_through_network_faults(fault, spooled, s3, bucket, minio, proxy, tmp_path):
    """Parts and Completes fail or lose their answers: each part is sent again alone, a
    Complete whose answer was lost finds our own object (412, then its identity), and
    nothing is lost, stored twice or left as an upload."""
    rule, kind = MULTIPART_FAULTS[fault]
    proxy.rule = rule
    spool = {"spool_dir": str(tmp_path / "spool")} if spooled else {}
    write_ids(proxy.endpoint, bucket, minio, 24000, batch=500, pause=0.01, payload=1000, **MULTIPART, **spool)
    run()
    report = loss_report(count_ids(s3, bucket, "out/"), set(range(24000)))
    parts = multipart_objects(s3, bucket)
    print(fault, "spooled" if spooled else "in memory", "faults injected:", proxy.actions(kind),
          "objects (parts):", sorted(parts.values()), report)
    assert proxy.actions(kind) >= 1
    assert report["lost"] == 0 and report["duplicated"] == 0
    assert sorted(parts.values())[-2:] == [3, 3]  # two objects of 3 parts (and a small rest)
    assert uploads_left(s3, bucket) == []


def test_multipart_key_taken_during_the_upload(s3, bucket, minio, proxy):
    """Someone else's object appears under the key while the parts go up: the Complete
    (If-None-Match) is refused, the upload is aborted and the object goes under the next
    key; the foreign object stays as it was."""
    planted = {}

    def rule(req):
        if is_part(req) and not planted:
            key = req.path.split("/", 2)[2]
            s3.put_object(Bucket=bucket, Key=key, Body=b"someone else's")
            planted["key"] = key
        return None

    proxy.rule = rule
    write_ids(proxy.endpoint, bucket, minio, 12000, batch=500, pause=0.01, payload=1000, **MULTIPART)
    run()
    foreign = planted["key"]
    assert s3.get_object(Bucket=bucket, Key=foreign)["Body"].read() == b"someone else's"
    report = loss_report(count_ids(s3, bucket, "out/", keep=lambda key: key != foreign), set(range(12000)))
    aborts = aborted_uploads(proxy)
    print("key taken:", foreign, "aborts:", aborts, report)
    assert report["lost"] == 0 and report["duplicated"] == 0
    assert aborts
    assert uploads_left(s3, bucket) == []


def test_multipart_permanent_failure_aborts_the_upload_and_keeps_the_rows(s3, bucket, minio, proxy, tmp_path):
    """A part refused for good (AccessDenied) stops uploads with the usual message; the
    upload is aborted, every acknowledged row stays in the spool, and a later run with
    good settings uploads them, once."""
    spool = tmp_path / "spool"
    proxy.rule = lambda req: respond(403, "AccessDenied") if is_part(req) and "partNumber=2&" in req.target else None
    with AckRecorder() as acks:
        write_ids(proxy.endpoint, bucket, minio, 100_000, batch=500, pause=0.01, payload=1000,
                  spool_dir=spool, **MULTIPART)
        with pytest.raises(Exception) as ei:
            run()
    text = str(ei.value)
    print("run failed:", text[:400])
    assert "uploads stopped" in text and "AccessDenied" in text and "UploadPart" in text
    assert "kept in spool_dir" in text
    assert aborted_uploads(proxy), "the upload was not aborted"
    assert uploads_left(s3, bucket) == []
    assert acks.acked

    from pathway.internals.parse_graph import G

    _pathway._close_live_writers()
    G.clear()
    proxy.rule = None
    empty = pw.debug.table_from_rows(IdRow, [])
    pw.io.minio.write(empty, "out/", "json", minio_settings=settings(proxy.endpoint, bucket, minio),
                      spool_dir=spool, **MULTIPART)
    run()
    report = loss_report(count_ids(s3, bucket, "out/"), acks.acked)
    print("after the fix:", report)
    assert report["lost"] == 0 and report["duplicated"] == 0
    assert uploads_left(s3, bucket) == []


def test_kill_9_mid_multipart_upload_with_a_spool(s3, bucket, minio, proxy, tmp_path):
    """A pipeline killed while a spooled object's parts go up (slowed by the proxy): the
    upload is left behind; the next run aborts it when it opens, uploads the object again
    under its key, and nothing is lost or stored twice."""
    options = {k: v for k, v in MULTIPART.items() if k.startswith("multipart")}
    pipeline = Pipeline(tmp_path, bucket, proxy.endpoint, interval_ms=2000, payload=4000, options=options)
    proxy.rule = lambda req: delay(1.0) if is_part(req) else None
    orphans: list[str] = []
    for _ in range(4):
        pipeline.start()
        pipeline.feed()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not orphans:
            orphans = [u["UploadId"] for u in s3.list_multipart_uploads(Bucket=bucket).get("Uploads", [])]
            time.sleep(0.1)
        time.sleep(random.uniform(0, 0.8))
        pipeline.signal(signal.SIGKILL)
        pipeline.stop_feeding()
        orphans = [u["UploadId"] for u in s3.list_multipart_uploads(Bucket=bucket).get("Uploads", [])]
        if orphans:
            break
    assert orphans, "no kill landed during an upload"
    proxy.rule = None
    pipeline.catch_up(s3, bucket)
    aborted = aborted_uploads(proxy)
    report = pipeline.report(s3, bucket)
    parts = multipart_objects(s3, bucket)
    print("orphans", orphans, "aborted", aborted, "objects (parts):", sorted(parts.values()), report)
    assert report["lost"] == 0, pipeline.stderr()
    assert report["duplicated"] == 0
    assert uploads_left(s3, bucket) == []
    assert set(orphans) <= set(aborted)  # aborted by the restarted sink, not completed
    assert max(parts.values()) >= 2


def _big_writer(kwargs, **options) -> "s3sink.Writer":
    """A Writer holding one complete minibatch of about 12 MiB (12000 rows of 1 KB)."""
    options.setdefault("write_interval_ms", 3_600_000)
    w = s3sink.Writer(**kwargs, prefix="out/", columns=[("id", "int"), ("payload", "str")], format="json",
                      multipart_threshold_bytes=5 << 20, multipart_part_bytes=5 << 20, **options)
    for i in range(12000):
        w.on_change(None, {"id": i, "payload": "x" * 1000}, 2, True)
    w.on_time_end(2)
    return w


def test_multipart_part_failing_past_max_retry_ms_aborts_the_upload(s3, bucket, proxied_kwargs, proxy):
    """A part that keeps failing transiently (503) is retried alone until max_retry_ms,
    then uploads stop and the upload is aborted; a forced flush once the server is back
    uploads the object from its first part, once."""
    proxy.rule = lambda req: respond(503, "SlowDown") if is_part(req) and "partNumber=2&" in req.target else None
    w = _big_writer(proxied_kwargs, no_timer=True, max_retry_ms=1500)
    t0 = time.monotonic()
    with pytest.raises(s3sink.UploadError, match="still failed after .* attempts .*max_retry_ms.*SlowDown"):
        w.flush(forced=True)
    took = time.monotonic() - t0
    sent = sum(1 for m, t in proxy.targets if m == "PUT" and "partNumber=1&" in t)
    print("gave up after %.1f s;" % took, "part 1 sent", sent, "times; aborted", aborted_uploads(proxy))
    assert 1.5 <= took < 10
    assert sent == 1  # the part that went through is not sent again while part 2 is retried
    assert len(aborted_uploads(proxy)) == 1
    assert uploads_left(s3, bucket) == []
    assert w.stats["buffered_rows"] == 12000
    proxy.rule = None
    assert w.flush(forced=True) is True
    w.close()
    report = loss_report(count_ids(s3, bucket, "out/"), set(range(12000)))
    assert report["lost"] == 0 and report["duplicated"] == 0
    assert list(multipart_objects(s3, bucket).values()) == [3]
    assert uploads_left(s3, bucket) == []


def test_multipart_upload_of_a_discarded_writer_is_aborted(s3, bucket, proxied_kwargs, proxy):
    """A writer given up (discard, collection) while its object's parts are retried: the
    rows are dropped (no spool), and so is the upload, not left to take space."""
    proxy.rule = lambda req: respond(503, "SlowDown") if is_part(req) and "partNumber=2&" in req.target else None
    w = _big_writer(proxied_kwargs, max_retry_ms=-1, write_interval_ms=1, background_uploads=True)
    try:
        w.flush()  # the sink's thread uploads it
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and proxy.actions("respond") < 2:
            time.sleep(0.05)
        assert proxy.actions("respond") >= 2
        assert len(s3.list_multipart_uploads(Bucket=bucket).get("Uploads", [])) == 1
    finally:
        w.discard()
    print("aborted", aborted_uploads(proxy))
    assert len(aborted_uploads(proxy)) == 1
    assert uploads_left(s3, bucket) == []
    assert objects(s3, bucket, "out/") == []


def test_sigterm_mid_multipart_upload_with_a_spool(s3, bucket, minio, proxy, tmp_path):
    """SIGTERM while a spooled object's parts go up slowly: the sink's thread stops after
    the part it is sending (the process does not wait for the whole object), the upload
    stays recorded in the spool, and the next run aborts it and uploads everything."""
    options = {k: v for k, v in MULTIPART.items() if k.startswith("multipart")}
    pipeline = Pipeline(tmp_path, bucket, proxy.endpoint, interval_ms=2000, payload=4000, options=options)
    proxy.rule = lambda req: delay(2.0) if is_part(req) else None
    pipeline.start()
    pipeline.feed()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not s3.list_multipart_uploads(Bucket=bucket).get("Uploads"):
        time.sleep(0.1)
    orphans = [u["UploadId"] for u in s3.list_multipart_uploads(Bucket=bucket).get("Uploads", [])]
    took = pipeline.signal(signal.SIGTERM)
    pipeline.stop_feeding()
    assert orphans, pipeline.stderr()
    proxy.rule = None
    pipeline.catch_up(s3, bucket)
    report = pipeline.report(s3, bucket)
    print("exited %.1f s after SIGTERM; orphans" % took, orphans, "aborted", aborted_uploads(proxy), report)
    assert took < 8, pipeline.stderr()  # an object of 3 or more parts takes over 6 s
    assert report["lost"] == 0 and report["duplicated"] == 0
    assert set(orphans) <= set(aborted_uploads(proxy))
    assert uploads_left(s3, bucket) == []
