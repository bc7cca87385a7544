"""A streaming pipeline that the fault tests kill: reads JSON Lines files of ids as they
appear, with Pathway persistence on, writes them through pw.io.minio.write with a spool,
and appends to a log, for every minibatch, the rows Pathway delivered to the writer (a line
{"time": t, "rows": [[id, diff], ...]} written before on_time_end is called: all the writer
may store for that time) and, once on_time_end returned, the ids it acknowledged (a JSON
list), over either path of the writer (S3SINK_PATHWAY_FAST_PATH).

  fault_pipeline.py BUCKET IN_DIR PERSISTENCE_DIR SPOOL_DIR ACK_LOG INTERVAL_MS
                    [MAX_BUFFER_BYTES MAX_RETRY_MS [COMPRESSION]]

SPOOL_DIR "-" writes without a spool. FAULT_PIPELINE_OPTIONS (JSON) adds writer options.
With S3SINK_TEST_PARTITIONED=1 in the environment, the rows also have a column part and an
event time ts (the feeder writes them), and are written with partition_by=["part"],
time_column="ts" and the key template
"{prefix}dt={date}/hour={hour}/{partition}/{stamp}-{seq}.{ext}".
"""

import json
import os
import sys

import pathway as pw
from minio_env import minio_settings

import s3sink  # noqa: F401  (adds pw.io.minio.write)
from s3sink import _pathway

bucket, in_dir, persistence_dir, spool_dir, ack_log, interval = sys.argv[1:7]
max_buffer, max_retry = (int(a) for a in (sys.argv[7:9] or ["0", "300000"]))
compression = sys.argv[9] if len(sys.argv) > 9 else "none"
log = os.open(ack_log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
pending: dict[int, list[list[int]]] = {}  # time -> [id, diff] of each row delivered
obs_cls = _pathway._S3Observer
change, engine_change, time_end = obs_cls.on_change, obs_cls.on_engine_change, obs_cls.on_time_end


def on_change(self, key, row, time, is_addition):
    change(self, key, row, time, is_addition)
    pending.setdefault(time, []).append([row["id"], 1 if is_addition else -1])


def on_engine_change(self, key, values, time, diff):  # the rows of the fast path
    engine_change(self, key, values, time, diff)
    pending.setdefault(time, []).append([values[0], diff])  # id is the first column


def on_time_end(self, time):
    rows = pending.pop(time, [])
    os.write(log, (json.dumps({"time": time, "rows": rows}) + "\n").encode())
    time_end(self, time)
    os.write(log, (json.dumps([i for i, _ in rows]) + "\n").encode())


obs_cls.on_change, obs_cls.on_engine_change, obs_cls.on_time_end = on_change, on_engine_change, on_time_end


class Row(pw.Schema):
    id: int
    payload: str


class PartitionedRow(Row):
    part: int
    ts: pw.DateTimeUtc


partitioned = os.environ.get("S3SINK_TEST_PARTITIONED") == "1"
rows = pw.io.jsonlines.read(in_dir, schema=PartitionedRow if partitioned else Row, mode="streaming",
                            name="in", autocommit_duration_ms=100)
partitions = {}
if partitioned:
    partitions = dict(partition_by=["part"], time_column="ts",
                      key_template="{prefix}dt={date}/hour={hour}/{partition}/{stamp}-{seq}.{ext}")
pw.io.minio.write(rows, "out/", "json", minio_settings=minio_settings(bucket),
                  write_interval_ms=int(interval), spool_dir=None if spool_dir == "-" else spool_dir,
                  max_buffer_bytes=max_buffer or None, max_retry_ms=max_retry, compression=compression,
                  name="out", **partitions, **json.loads(os.environ.get("FAULT_PIPELINE_OPTIONS", "{}")))
pw.run(monitoring_level=pw.MonitoringLevel.NONE,
       persistence_config=pw.persistence.Config(pw.persistence.Backend.filesystem(persistence_dir)))
