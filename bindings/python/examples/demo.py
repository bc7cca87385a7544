"""s3sink demo: a streaming Pathway pipeline writes to MinIO with pw.io.minio.write (CSV
and JSON Lines) over a few flush intervals, then the objects are listed and read back with
pw.io.minio.read.

Environment: S3SINK_TEST_ENDPOINT (e.g. http://127.0.0.1:9000), S3SINK_TEST_ACCESS_KEY,
S3SINK_TEST_SECRET_KEY; `tools/with-minio` starts a MinIO and sets them:

    tools/with-minio .venv/bin/python bindings/python/examples/demo.py [--seconds 6]
"""

from __future__ import annotations

import argparse
import logging
import os
import random
import sys
import time
from datetime import datetime, timezone

import boto3
import pathway as pw
from botocore.config import Config

import s3sink  # noqa: F401  (adds pw.io.s3.write and pw.io.minio.write)

BUCKET = "s3sink-demo"


class Reading(pw.Schema):
    sensor: str
    seq: int
    value: float
    at: pw.DateTimeUtc


class Sensors(pw.io.python.ConnectorSubject):
    """Readings of four sensors, one every `period` seconds, for `seconds` seconds."""

    def __init__(self, seconds: float, period: float) -> None:
        super().__init__()
        self.count = int(seconds / period)
        self.period = period

    def run(self) -> None:
        rnd = random.Random(42)
        for seq in range(self.count):
            self.next(
                sensor=f"sensor-{seq % 4}",
                seq=seq,
                value=round(rnd.gauss(20.0, 5.0), 3),
                at=datetime.now(timezone.utc),
            )
            time.sleep(self.period)


def env(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        sys.exit(f"{name} is not set: run through tools/with-minio (or `make demo`)")
    return value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=6.0, help="how long the stream runs")
    parser.add_argument("--interval-ms", type=int, default=1500, help="write_interval_ms")
    args = parser.parse_args()
    # keep the engine's progress messages out of the demo's output
    logging.getLogger().setLevel(logging.ERROR)
    logging.getLogger("pathway_engine").setLevel(logging.ERROR)

    endpoint = env("S3SINK_TEST_ENDPOINT")
    access_key, secret_key = env("S3SINK_TEST_ACCESS_KEY"), env("S3SINK_TEST_SECRET_KEY")
    settings = pw.io.minio.MinIOSettings(
        endpoint=endpoint,
        bucket_name=BUCKET,
        access_key=access_key,
        secret_access_key=secret_key,
        region="us-east-1",
    )
    run_id = datetime.now(timezone.utc).strftime("run-%Y%m%dT%H%M%S")

    # 1. the streaming pipeline: raw readings as CSV, per-sensor statistics (a table that
    #    keeps changing: updates are a retraction and an insertion) as JSON Lines
    readings = pw.io.python.read(Sensors(args.seconds, 0.1), schema=Reading, autocommit_duration_ms=100)
    stats = readings.groupby(pw.this.sensor).reduce(
        pw.this.sensor,
        readings=pw.reducers.count(),
        mean=pw.reducers.avg(pw.this.value),
        last=pw.reducers.max(pw.this.at),
    )
    pw.io.minio.write(
        readings, f"{run_id}/readings", "csv", minio_settings=settings,
        write_interval_ms=args.interval_ms, create_bucket=True,
    )
    pw.io.minio.write(
        stats, f"{run_id}/stats", "json", minio_settings=settings,
        write_interval_ms=args.interval_ms,
    )
    print(f"streaming for {args.seconds:.0f} s to {endpoint}/{BUCKET}/{run_id}/ "
          f"(write_interval_ms={args.interval_ms}) ...", flush=True)
    started = time.monotonic()
    pw.run(monitoring_level=pw.MonitoringLevel.NONE)
    print(f"pipeline finished in {time.monotonic() - started:.1f} s\n")

    # 2. what landed in the bucket
    s3 = boto3.client(
        "s3", endpoint_url=endpoint, aws_access_key_id=access_key,
        aws_secret_access_key=secret_key, region_name="us-east-1",
        config=Config(s3={"addressing_style": "path"}),
    )
    for name in ("readings", "stats"):
        listed = s3.list_objects_v2(Bucket=BUCKET, Prefix=f"{run_id}/{name}/").get("Contents", [])
        print(f"{name}: {len(listed)} objects")
        total = 0
        for obj in listed:
            body = s3.get_object(Bucket=BUCKET, Key=obj["Key"])["Body"].read()
            rows = body.count(b"\n") - (1 if name == "readings" else 0)
            total += rows
            print(f"  {obj['Key']}  {obj['Size']:>6} bytes  {rows:>3} rows")
        print(f"  {total} rows in all\n")

    # 3. read everything back with Pathway's own reader
    from pathway.internals.parse_graph import G

    G.clear()

    class ReadingBack(Reading):
        time: int
        diff: int

    class StatsBack(pw.Schema):
        sensor: str
        readings: int
        mean: float
        last: pw.DateTimeUtc
        time: int
        diff: int

    back = pw.io.minio.read(f"{run_id}/readings/", settings, "csv", schema=ReadingBack, mode="static")
    df = pw.debug.table_to_pandas(back).sort_values("seq")
    print(f"pw.io.minio.read of readings/: {len(df)} rows; sample:")
    print(df.head(5).to_string(index=False), "\n")

    G.clear()
    back = pw.io.minio.read(f"{run_id}/stats/", settings, "json", schema=StatsBack, mode="static")
    df = pw.debug.table_to_pandas(back).sort_values(["time", "diff", "sensor"])
    print(f"pw.io.minio.read of stats/: {len(df)} changes (diff -1 retracts an old value); last ones:")
    print(df.tail(8).to_string(index=False))
    final = df.groupby(["sensor", "readings", "mean"])["diff"].sum()
    print(f"\nfinal statistics (changes summed by diff):\n{final[final > 0].reset_index().drop(columns='diff').to_string(index=False)}")


if __name__ == "__main__":
    main()
