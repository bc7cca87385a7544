"""Writes two tables (the changes of a table, and a groupby that moves rows between
workers) with pw.io.minio.write; run under `pathway spawn -t/-n`.

  spawn_writer.py BUCKET PREFIX FORMAT INTERVAL_MS [SPOOL_ROOT]
"""

import os
import sys

import pathway as pw
from minio_env import minio_settings

import s3sink  # noqa: F401

bucket, prefix, fmt, interval = sys.argv[1:5]
spool_root = sys.argv[5] if len(sys.argv) > 5 else None

rows = "\n".join(
    f"{i} | owner{i % 7} | {i * 3 % 11} | {2 * (i % 9) + 2} | 1" for i in range(60)
) + "\n" + "\n".join(
    f"{i} | owner{i % 7} | {i * 3 % 11} | {2 * (i % 9) + 20} | -1" for i in range(0, 60, 4)
)
t = pw.debug.table_from_markdown("k | owner | v | __time__ | __diff__\n" + rows)
agg = t.groupby(pw.this.owner).reduce(pw.this.owner, total=pw.reducers.sum(pw.this.v), n=pw.reducers.count())
settings = minio_settings(bucket)
for name, table in (("rows", t), ("agg", agg)):
    pw.io.minio.write(table, f"{prefix}/{name}", fmt, minio_settings=settings,
                      write_interval_ms=int(interval),
                      spool_dir=os.path.join(spool_root, name) if spool_root else None)
pw.run(monitoring_level=pw.MonitoringLevel.NONE)
print("done", os.environ.get("PATHWAY_PROCESS_ID", "0"), flush=True)
