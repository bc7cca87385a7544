"""pw.io.minio.read(mode="streaming") of a prefix; prints each row received as
`<time.monotonic()> <n> <diff>`."""

import os
import sys
import time

import pathway as pw

bucket, prefix, fmt = sys.argv[1:4]


class Schema(pw.Schema):
    n: int
    s: str
    diff: int


settings = pw.io.minio.MinIOSettings(
    endpoint=os.environ["S3SINK_TEST_ENDPOINT"],
    bucket_name=bucket,
    access_key=os.environ["S3SINK_TEST_ACCESS_KEY"],
    secret_access_key=os.environ["S3SINK_TEST_SECRET_KEY"],
    region="us-east-1",
)
table = pw.io.minio.read(prefix, settings, fmt, schema=Schema, mode="streaming", autocommit_duration_ms=50)


def on_change(key, row, time_, is_addition):
    print(time.monotonic(), row["n"], row["diff"], flush=True)


pw.io.subscribe(table, lambda key, row, time, is_addition: on_change(key, row, time, is_addition))
print("ready", time.monotonic(), flush=True)
pw.run(monitoring_level=pw.MonitoringLevel.NONE)
