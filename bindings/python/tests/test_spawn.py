"""Multi-worker (-t 2) and multi-process (-n 2) runs through `pathway spawn`: the output
is the same as with one worker, and no process writes empty or duplicate objects."""

from __future__ import annotations

import pytest

from helpers import TESTS_DIR, objects, spawn

SCRIPT = TESTS_DIR / "scripts" / "spawn_writer.py"


def run_spawn(bucket, prefix, fmt, *, threads=1, processes=1, interval=600_000, spool=None):
    args = [bucket, prefix, fmt, str(interval)] + ([str(spool)] if spool else [])
    res = spawn(SCRIPT, args, threads=threads, processes=processes)
    assert res.returncode == 0, (res.stdout[-2000:], res.stderr[-4000:])
    assert res.stdout.count("done") == processes
    return res


def contents(s3, bucket, prefix):
    listed = objects(s3, bucket, prefix + "/")
    for key, body in listed:
        assert body.strip(), f"empty object {key}"
    return listed


@pytest.mark.parametrize("fmt", ["csv", "json"])
@pytest.mark.usefixtures("pathway_path")
def test_multi_worker_and_multi_process_output_equals_single(fmt, s3, bucket):
    run_spawn(bucket, "one", fmt)
    run_spawn(bucket, "threads", fmt, threads=2)
    run_spawn(bucket, "procs", fmt, processes=2)
    for table in ("rows", "agg"):
        single = contents(s3, bucket, f"one/{table}")
        assert len(single) == 1
        header_and_lines = lambda body: (  # noqa: E731
            body.splitlines()[0] if fmt == "csv" else b"",
            sorted(body.splitlines()),
        )
        for variant in ("threads", "procs"):
            other = contents(s3, bucket, f"{variant}/{table}")
            assert len(other) == 1, [k for k, _ in other]  # no duplicates from other workers
            assert header_and_lines(other[0][1]) == header_and_lines(single[0][1])
    single_rows = contents(s3, bucket, "one/rows")[0][1].splitlines()
    assert len(single_rows) == (61 if fmt == "csv" else 60) + 15  # 60 inserts, 15 deletes


def test_multi_process_with_a_short_interval_uploads_nothing_empty(s3, bucket):
    """With -n 2 and a short interval, the second process's sink (which gets no rows)
    never uploads, and every row is written exactly once."""
    run_spawn(bucket, "short", "csv", processes=2, interval=50)
    listed = contents(s3, bucket, "short/rows")
    lines = [ln for _, body in listed for ln in body.splitlines()[1:]]
    assert len(lines) == 75
    assert len(set(lines)) == 75


def test_multi_process_with_a_spool(s3, bucket, tmp_path):
    """Every process builds its writers; each gets a spool folder of its own (the first
    process the folder given, the others sub-folders), and every row is written once."""
    run_spawn(bucket, "spooled", "csv", processes=2, interval=50, spool=tmp_path / "spool")
    lines = [ln for _, body in contents(s3, bucket, "spooled/rows") for ln in body.splitlines()[1:]]
    assert len(lines) == 75 and len(set(lines)) == 75
    assert (tmp_path / "spool" / "rows" / "process-1").is_dir()
