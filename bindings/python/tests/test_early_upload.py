"""Early uploads against a real MinIO: the parts of a large open object go up while rows
are written, and only a sealed object is completed. What a dropped minibatch, a part that
fails and a large static Pathway run do with them."""

from __future__ import annotations

import time

import s3sink
from faultproxy import first, respond
from helpers import objects, wait_for

MiB = 1 << 20
COLS = [("a", "int"), ("b", "str")]
SMALL = dict(multipart_threshold_bytes=5 * MiB, multipart_part_bytes=5 * MiB, background_uploads=True,
             write_interval_ms=3_600_000)


def write_rows(w, first: int, last: int, t: int) -> bytes:
    out = []
    for i in range(first, last + 1):
        text = f"{i:07d}" + chr(97 + i % 26) * 1000
        w.on_change(None, {"a": i, "b": text}, t, True)
        out.append(f'"{i}","{text}","{t}","1"\n'.encode())
    return b"".join(out)


def live_uploads(s3, bucket):
    return s3.list_multipart_uploads(Bucket=bucket).get("Uploads", [])


def test_dropping_the_unfinished_minibatch_aborts_its_early_upload(s3, bucket, writer_kwargs):
    w = s3sink.Writer(**writer_kwargs, columns=COLS, **SMALL)
    write_rows(w, 1, 7000, 2)
    assert wait_for(lambda: w.stats["early_bytes"] == 5 * MiB)
    assert len(live_uploads(s3, bucket)) == 1 and objects(s3, bucket) == []
    w.close(drop_unfinished=True)  # an interrupted run: those rows were never acknowledged
    assert objects(s3, bucket) == [] and live_uploads(s3, bucket) == []


def test_a_failed_early_part_leaves_the_object_to_its_seal(s3, bucket, proxied_kwargs, proxy):
    proxy.rule = first(1, respond(503, "SlowDown"), method="PUT")  # the first part
    w = s3sink.Writer(**proxied_kwargs, columns=COLS, **SMALL)
    body = write_rows(w, 1, 7000, 2)
    assert wait_for(lambda: proxy.actions("respond") == 1)
    time.sleep(0.5)  # no second early attempt for this object
    assert w.stats["early_bytes"] == 0 and live_uploads(s3, bucket) == []
    w.on_time_end(2)
    w.close()
    [(key, stored)] = objects(s3, bucket)
    assert stored == b'"a","b","time","diff"\n' + body
    assert s3.head_object(Bucket=bucket, Key=key)["ETag"].strip('"').endswith("-2")
    assert live_uploads(s3, bucket) == []


def test_a_large_static_pathway_run_goes_up_while_it_is_written(s3, bucket, minio_settings, tmp_path):
    import pathway as pw

    class Row(pw.Schema):
        a: int
        b: str

    rows = [(i, f"{i:07d}" + chr(97 + i % 26) * 1000) for i in range(40_000)]  # about 40 MiB
    table = pw.debug.table_from_rows(Row, rows)
    pw.io.minio.write(table, "static", "csv", minio_settings=minio_settings, name="early-static",
                      multipart_threshold_bytes=5 * MiB, multipart_part_bytes=5 * MiB)
    pw.io.fs.write(table, tmp_path / "out.csv", "csv")
    pw.run(monitoring_level=pw.MonitoringLevel.NONE)
    [(key, body)] = objects(s3, bucket, "static/")
    assert body == (tmp_path / "out.csv").read_bytes()
    assert live_uploads(s3, bucket) == []
    st = s3sink.stats("early-static")
    # how much went early depends on the machine; what went early was not sent twice
    assert st["early_bytes"] % (5 * MiB) == 0 and st["early_bytes"] <= len(body)


def test_a_lost_complete_answer_finds_its_own_early_object(s3, bucket, proxied_kwargs, proxy):
    """The early upload's identity is a token given at its creation: a Complete whose
    answer was lost is sent again, gets 412, and the token says the object is ours."""
    from faultproxy import DROP_RESPONSE

    dropped = []

    def rule(req):
        if req.method == "POST" and "uploadId=" in req.target and not dropped:
            dropped.append(req.target)
            return DROP_RESPONSE
        return None

    proxy.rule = rule
    w = s3sink.Writer(**proxied_kwargs, columns=COLS, **SMALL)
    body = write_rows(w, 1, 7000, 2)
    assert wait_for(lambda: w.stats["early_bytes"] == 5 * MiB)
    w.on_time_end(2)
    w.close()
    assert dropped and proxy.actions("drop_response") == 1
    [(key, stored)] = objects(s3, bucket)
    assert stored == b'"a","b","time","diff"\n' + body
    assert w.stats["objects"] == 1  # not renamed: the token said the object was ours
    assert live_uploads(s3, bucket) == []
