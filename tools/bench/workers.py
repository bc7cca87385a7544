"""One measurement per process: `python workers.py <kind> <json args>` prints one JSON line.

Each measurement runs in a fresh interpreter so that imports, caches and memory of one
variant never help or hurt the next; only the work itself (``pw.run()``, a flush, a
put_object) is timed. The MinIO endpoint and keys come from the environment that
tools/with-minio sets (S3SINK_TEST_ENDPOINT, ..._ACCESS_KEY, ..._SECRET_KEY).
"""

from __future__ import annotations

import csv
import io
import json
import os
import sys
import threading
import time
from typing import Any, Callable

# the shapes of the end-to-end tables: column name -> Python type, in order
NARROW_TYPES: tuple[type, ...] = (int, float, str, bool)


def shape_columns(ncols: int) -> dict[str, type]:
    """Columns c00.. cycling int, float, str, bool (4 columns: the narrow table)."""
    return {f"c{i:02d}": NARROW_TYPES[i % len(NARROW_TYPES)] for i in range(ncols)}


def endpoint() -> str:
    return os.environ["S3SINK_TEST_ENDPOINT"]


def credentials() -> tuple[str, str]:
    return os.environ["S3SINK_TEST_ACCESS_KEY"], os.environ["S3SINK_TEST_SECRET_KEY"]


def boto_client(url: str | None = None) -> Any:
    import boto3
    from botocore.config import Config

    key, secret = credentials()
    return boto3.client(
        "s3",
        endpoint_url=url or endpoint(),
        aws_access_key_id=key,
        aws_secret_access_key=secret,
        region_name="us-east-1",
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 3}),
    )


def list_prefix(client: Any, bucket: str, prefix: str) -> list[dict[str, Any]]:
    objects: list[dict[str, Any]] = []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        objects.extend(page.get("Contents", []))
    return objects


def rss_kib() -> tuple[int, int]:
    """(VmRSS, VmHWM) of this process, in KiB."""
    values: dict[str, int] = {}
    with open("/proc/self/status") as f:
        for line in f:
            name, _, rest = line.partition(":")
            if name in ("VmRSS", "VmHWM"):
                values[name] = int(rest.split()[0])
    return values["VmRSS"], values["VmHWM"]


# ---------------------------------------------------------------------------------------
# End to end through Pathway


def _minio_settings(bucket: str, url: str | None = None) -> Any:
    import pathway as pw

    key, secret = credentials()
    return pw.io.minio.MinIOSettings(
        endpoint=url or endpoint(), bucket_name=bucket, access_key=key,
        secret_access_key=secret, region="us-east-1", with_path_style=True,
    )


class PlainPythonObserver:
    """What one would write without s3sink: the csv/json modules into a StringIO, one
    boto3 put_object per interval (checked at the end of each minibatch) and at the end."""

    def __init__(self, fmt: str, columns: list[str], bucket: str, prefix: str, interval_s: float) -> None:
        self.fmt, self.columns, self.bucket, self.prefix = fmt, columns, bucket, prefix
        self.interval_s = interval_s
        self.client = boto_client()
        self.sequence = 0
        self.last_upload = time.monotonic()
        self._start_object()

    def _start_object(self) -> None:
        self.buffer = io.StringIO()
        self.rows = 0
        self.writer = csv.writer(self.buffer, quoting=csv.QUOTE_ALL, lineterminator="\n")
        if self.fmt == "csv":
            self.writer.writerow([*self.columns, "time", "diff"])

    def on_change(self, key: Any, row: dict[str, Any], time: int, is_addition: bool) -> None:
        diff = 1 if is_addition else -1
        if self.fmt == "csv":
            self.writer.writerow([*row.values(), time, diff])
        else:
            self.buffer.write(json.dumps({**row, "diff": diff, "time": time}) + "\n")
        self.rows += 1

    def _upload(self) -> None:
        if self.rows:
            key = f"{self.prefix}{self.sequence:010d}.{'csv' if self.fmt == 'csv' else 'jsonl'}"
            self.client.put_object(Bucket=self.bucket, Key=key, Body=self.buffer.getvalue().encode())
            self.sequence += 1
        self.last_upload = time.monotonic()
        self._start_object()

    def on_time_end(self, time: int) -> None:
        if time_module.monotonic() - self.last_upload >= self.interval_s:
            self._upload()

    def on_end(self) -> None:
        self._upload()


time_module = time  # on_time_end's parameter is called `time`, as in Pathway's observers


def e2e(args: dict[str, Any]) -> dict[str, Any]:
    """One variant over the static CSV; times ``pw.run()`` alone."""
    import pathway as pw

    variant, fmt, bucket = args["variant"], args["format"], args["bucket"]
    prefix = args["prefix"]
    schema = pw.schema_from_types(**shape_columns(args["ncols"]))
    table = pw.io.csv.read(args["input"], schema=schema, mode="static")
    interval_ms = args["interval_ms"]
    if variant == "null":
        pw.io.null.write(table)
    elif variant == "noop":
        class NoopObserver(pw.io.python.ConnectorObserver):
            def on_change(self, key: Any, row: dict[str, Any], time: int, is_addition: bool) -> None:
                pass

        pw.io.python.write(table, NoopObserver())
    elif variant == "fs":
        pw.io.fs.write(table, os.path.join(args["outdir"], f"out.{fmt}"), format=fmt)
    elif variant == "python":
        class Plain(PlainPythonObserver, pw.io.python.ConnectorObserver):
            pass  # Pathway accepts ConnectorObserver instances only

        pw.io.python.write(table, Plain(fmt, list(schema.column_names()), bucket, prefix, interval_ms / 1000))
    elif variant in ("s3sink", "s3sink-fallback"):
        import s3sink  # noqa: F401  (adds pw.io.minio.write)

        pw.io.minio.write(table, prefix, fmt, minio_settings=_minio_settings(bucket),
                          write_interval_ms=interval_ms, name="bench")
    else:
        raise ValueError(f"unknown variant {variant!r}")

    started = time.perf_counter()
    pw.run(monitoring_level=pw.MonitoringLevel.NONE)
    seconds = time.perf_counter() - started

    out_bytes = early_bytes = 0
    if variant in ("s3sink", "s3sink-fallback"):
        import s3sink

        early_bytes = s3sink.stats("bench")["early_bytes"]
    if variant == "fs":
        out_bytes = os.path.getsize(os.path.join(args["outdir"], f"out.{fmt}"))
    elif variant in ("python", "s3sink", "s3sink-fallback"):
        out_bytes = sum(o["Size"] for o in list_prefix(boto_client(), bucket, prefix))
    return {"seconds": seconds, "out_bytes": out_bytes, "early_bytes": early_bytes,
            "max_rss_kib": rss_kib()[1]}


# ---------------------------------------------------------------------------------------
# Streaming: a rate-limited subject through s3sink (its endpoint: the counting proxy)


def stream(args: dict[str, Any]) -> dict[str, Any]:
    import pathway as pw
    import s3sink  # noqa: F401

    rate, seconds = args["rate"], args["seconds"]
    payload = "x" * args["payload_bytes"]

    class Paced(pw.io.python.ConnectorSubject):
        emitted = 0

        def run(self) -> None:
            # small batches every 10 ms keep the rate even without a busy loop
            start = time.time()
            total = int(rate * seconds)
            while self.emitted < total:
                due = min(total, int((time.time() - start) * rate) + 1)
                while self.emitted < due:
                    self.next(seq=self.emitted, emitted=time.time(), payload=payload)
                    self.emitted += 1
                time.sleep(0.01)

    class Row(pw.Schema):
        seq: int
        emitted: float
        payload: str

    subject = Paced()
    table = pw.io.python.read(subject, schema=Row, autocommit_duration_ms=50)
    pw.io.minio.write(table, args["prefix"], "csv", minio_settings=_minio_settings(args["bucket"], args["endpoint"]),
                      write_interval_ms=args["interval_ms"])
    started = time.perf_counter()
    pw.run(monitoring_level=pw.MonitoringLevel.NONE)
    return {"seconds": time.perf_counter() - started, "rows": subject.emitted}


# ---------------------------------------------------------------------------------------
# Memory: many rows as fast as the subject can emit them, RSS sampled over time


def memory(args: dict[str, Any]) -> dict[str, Any]:
    """RSS while a stream goes through s3sink, or (variant "null") the same stream into
    pw.io.null.write: what Pathway itself takes, to tell s3sink's share."""
    import pathway as pw
    import s3sink  # noqa: F401  (imported by both variants: its imports weigh the same)

    rows, budget = args["rows"], args["budget_bytes"]
    columns = shape_columns(4)

    class Burst(pw.io.python.ConnectorSubject):
        def run(self) -> None:
            for i in range(rows):
                self.next(c00=i, c01=i * 0.25, c02=f"name-{i % 10007}", c03=i % 3 == 0)

    table = pw.io.python.read(Burst(), schema=pw.schema_from_types(**columns),
                              autocommit_duration_ms=100, max_backlog_size=args["backlog"])
    if args["variant"] == "null":
        pw.io.null.write(table)
    else:
        pw.io.minio.write(table, args["prefix"], "csv", minio_settings=_minio_settings(args["bucket"]),
                          write_interval_ms=args["interval_ms"], max_buffer_bytes=budget)

    samples: list[tuple[float, int]] = []
    done = threading.Event()
    started = time.perf_counter()

    def sample() -> None:
        while not done.wait(args["sample_s"]):
            samples.append((time.perf_counter() - started, rss_kib()[0]))

    baseline = rss_kib()[0]
    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    pw.run(monitoring_level=pw.MonitoringLevel.NONE)
    seconds = time.perf_counter() - started
    done.set()
    sampler.join()
    objects = list_prefix(boto_client(), args["bucket"], args["prefix"]) if args["variant"] != "null" else []
    return {
        "seconds": seconds, "rows": rows, "baseline_kib": baseline, "hwm_kib": rss_kib()[1],
        "samples": samples, "objects": len(objects), "bytes": sum(o["Size"] for o in objects),
    }


# ---------------------------------------------------------------------------------------
# Uploads: one object of a given size, s3sink's forced flush vs boto3 put_object

_RAW_FORMAT = """-- the row's one value, as it is: the object's body is exactly the bytes written
return { extension = "bin", content_type = "application/octet-stream",
         row = function(values) return values[1] end }
"""


def upload(args: dict[str, Any]) -> dict[str, Any]:
    size, bucket, prefix, tool = args["bytes"], args["bucket"], args["prefix"], args["tool"]
    chunk_size = 1 << 20
    # hex text: valid UTF-8 for a str column, and not compressible into nothing
    chunk = os.urandom(chunk_size // 2).hex()
    nchunks = max(1, size // chunk_size)
    if tool == "boto3":
        client = boto_client()
        body = (chunk * nchunks).encode()
        started = time.perf_counter()
        client.put_object(Bucket=bucket, Key=f"{prefix}object.bin", Body=body)
        seconds = time.perf_counter() - started
    else:
        import s3sink

        script = os.path.join(args["tmpdir"], "raw.lua")
        with open(script, "w") as f:
            f.write(_RAW_FORMAT)
        key, secret = credentials()
        writer = s3sink.Writer(
            endpoint=endpoint(), bucket=bucket, prefix=prefix, access_key=key, secret_key=secret,
            format=script, columns=[("payload", "str")], write_interval_ms=3_600_000,
            no_timer=True, max_buffer_bytes=max(1 << 30, 4 * size),
        )
        for i in range(nchunks):
            writer.on_change(i, {"payload": chunk}, 2, True)
        writer.on_time_end(2)
        started = time.perf_counter()
        uploaded = writer.flush(True)
        seconds = time.perf_counter() - started
        writer.close()
        if not uploaded:
            raise RuntimeError("the forced flush uploaded nothing")
    sizes = [o["Size"] for o in list_prefix(boto_client(), bucket, prefix)]
    if sizes != [nchunks * chunk_size]:
        raise RuntimeError(f"expected one object of {nchunks * chunk_size} bytes, found {sizes}")
    return {"seconds": seconds, "bytes": nchunks * chunk_size}


KINDS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "e2e": e2e, "stream": stream, "memory": memory, "upload": upload,
}

if __name__ == "__main__":
    result = KINDS[sys.argv[1]](json.loads(sys.argv[2]))
    # the last line of stdout is the result; Pathway may print before it
    sys.stdout.write("\n" + json.dumps(result) + "\n")
