"""pw.io.minio.read(mode="streaming") of a prefix; prints each row received as
`<time.monotonic()> <n> <diff>`."""

import sys
import time

import pathway as pw
from minio_env import minio_settings

bucket, prefix, fmt = sys.argv[1:4]


class Schema(pw.Schema):
    n: int
    s: str
    diff: int


settings = minio_settings(bucket)
table = pw.io.minio.read(prefix, settings, fmt, schema=Schema, mode="streaming", autocommit_duration_ms=50)


def on_change(key, row, time_, is_addition):
    print(time.monotonic(), row["n"], row["diff"], flush=True)


pw.io.subscribe(table, lambda key, row, time, is_addition: on_change(key, row, time, is_addition))
print("ready", time.monotonic(), flush=True)
pw.run(monitoring_level=pw.MonitoringLevel.NONE)
