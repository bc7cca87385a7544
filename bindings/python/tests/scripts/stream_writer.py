"""A streaming Pathway pipeline writing with pw.io.minio.write: `count` rows, one every
`period` seconds (each its own minibatch). Prints its start and end (time.monotonic)."""

import sys
import time

import pathway as pw
from minio_env import minio_settings

import s3sink  # noqa: F401  (adds pw.io.minio.write)

bucket, prefix, fmt, count, period, interval = sys.argv[1:7]
count, period, interval = int(count), float(period), int(interval)


class Numbers(pw.io.python.ConnectorSubject):
    def run(self):
        for n in range(count):
            self.next(n=n, s=f"row {n}")
            time.sleep(period)


class Schema(pw.Schema):
    n: int
    s: str


print("start", time.monotonic(), flush=True)
table = pw.io.python.read(Numbers(), schema=Schema, autocommit_duration_ms=50)
settings = minio_settings(bucket)
pw.io.minio.write(table, prefix, fmt, minio_settings=settings, write_interval_ms=interval)
pw.run(monitoring_level=pw.MonitoringLevel.NONE)
print("end", time.monotonic(), flush=True)
