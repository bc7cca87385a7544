"""compression="gzip" / "zstd" through the Pathway writers, against the real MinIO: the
objects are read back with boto3 and decompressed with the standard library (gzip) and
pyarrow (zstd), and every row is counted; the content is byte for byte what
pw.io.fs.write writes; what readers can do with the objects (Pathway's own readers do not
decompress them)."""

from __future__ import annotations

import csv
import gzip
import io
import json
import time

import pandas as pd
import pathway as pw
import pyarrow as pa
import pyarrow.csv
import pytest

import s3sink
from helpers import objects, run, unpack

CODECS = {"gzip": ("gz", "application/gzip"), "zstd": ("zst", "application/zstd")}


class Row(pw.Schema):
    id: int
    name: str
    value: float | None


class Rows(pw.io.python.ConnectorSubject):
    """ids 0..n-1 in minibatches of 100, 20 ms apart: several objects at a 100 ms interval."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.n = n

    def run(self) -> None:
        for start in range(0, self.n, 100):
            for i in range(start, min(self.n, start + 100)):
                self.next(id=i, name=f"name {i}, \"quoted\"", value=None if i % 9 == 0 else i / 4)
            self.commit()
            time.sleep(0.02)


@pytest.mark.usefixtures("pathway_path")
@pytest.mark.parametrize("fmt", ["csv", "json"])
@pytest.mark.parametrize("codec", list(CODECS))
def test_pathway_writes_compressed_objects_with_every_row_once(codec, fmt, s3, bucket, minio_settings):
    n = 3000
    table = pw.io.python.read(Rows(n), schema=Row, autocommit_duration_ms=20)
    pw.io.minio.write(table, "out/", fmt, minio_settings=minio_settings, write_interval_ms=100,
                      compression=codec)
    run()
    extension, content_type = CODECS[codec]
    listed = objects(s3, bucket, "out/")
    assert len(listed) > 1
    ids: list[int] = []
    for key, body in listed:
        assert key.endswith(f".{fmt}.{extension}")
        head = s3.head_object(Bucket=bucket, Key=key)
        assert head["ContentType"] == content_type
        assert "ContentEncoding" not in head  # HTTP clients must not decompress on the way
        text = unpack(key, body).decode()
        assert len(body) < len(text)
        if fmt == "csv":
            rows = list(csv.reader(io.StringIO(text)))
            assert rows[0] == ["id", "name", "value", "time", "diff"]  # every object has its header
            ids += [int(r[0]) for r in rows[1:]]
        else:
            ids += [json.loads(line)["id"] for line in text.splitlines()]
    assert sorted(ids) == list(range(n))


@pytest.mark.parametrize("codec", list(CODECS))
@pytest.mark.parametrize("fmt", ["csv", "json"])
def test_content_is_byte_for_byte_as_fs_write(fmt, codec, s3, bucket, minio_settings, tmp_path):
    rows = [(i, f"n{i} ż \"q\", c", None if i % 3 else i * 0.1) for i in range(500)]
    table = pw.debug.table_from_rows(Row, rows)
    pw.io.minio.write(table, "all", fmt, minio_settings=minio_settings, write_interval_ms=600_000,
                      compression=codec, compression_level=1)
    pw.io.fs.write(table, tmp_path / "ref", fmt)
    run()
    ((key, body),) = objects(s3, bucket, "all/")
    assert unpack(key, body) == (tmp_path / "ref").read_bytes()


def test_writer_counts_stored_bytes_and_buffers_uncompressed(writer_kwargs, s3, bucket):
    with s3sink.Writer(columns=[("id", "int"), ("s", "str")], format="csv", compression="zstd",
                       no_timer=True, write_interval_ms=600_000, **writer_kwargs) as w:
        for i in range(2000):
            w.on_engine_change(None, [i, "same text " * 3], 2, 1)
        w.on_time_end(2)
        stats = w.stats
        buffered = stats["buffered_bytes"]
        assert w.flush(True)
        stats = w.stats
    ((key, body),) = objects(s3, bucket, "")
    content = unpack(key, body)
    assert buffered == len(content) - len(b'"id","s","time","diff"\n')  # rows, uncompressed
    assert stats["bytes"] == len(body) < len(content) / 10  # what was stored


def test_bad_values_are_refused_naming_the_option(writer_kwargs):
    with pytest.raises(s3sink.ConfigError, match="compression 'brotli' is not known: give one of \"none\", \"gzip\", \"zstd\""):
        s3sink.Writer(columns=[("id", "int")], compression="brotli", **writer_kwargs)
    with pytest.raises(s3sink.ConfigError, match="compression_level is 10: gzip takes 1 to 9"):
        s3sink.Writer(columns=[("id", "int")], compression="gzip", compression_level=10, **writer_kwargs)
    with pytest.raises(s3sink.ConfigError, match="compression_level is set but compression is \"none\""):
        s3sink.Writer(columns=[("id", "int")], compression_level=3, **writer_kwargs)


# --- readers ----------------------------------------------------------------------------


@pytest.fixture
def gzip_csv_objects(s3, bucket, minio_settings):
    """Two .csv.gz objects under out/ (rows 0..9 and 10..19) and their rows."""
    rows = [(i, f"n{i}", i / 2) for i in range(20)]
    for part in (rows[:10], rows[10:]):
        pw.io.minio.write(pw.debug.table_from_rows(Row, part), "out", "csv", minio_settings=minio_settings,
                          compression="gzip")
        run()
        from pathway.internals.parse_graph import G

        G.clear()
    assert len(objects(s3, bucket, "out/")) == 2
    return rows


def test_readers_that_decompress(gzip_csv_objects, s3, bucket):
    """boto3 + gzip, pandas and pyarrow read the objects as the README says."""
    ids = []
    for key, body in objects(s3, bucket, "out/"):
        ids += [int(r["id"]) for r in csv.DictReader(io.StringIO(gzip.decompress(body).decode()))]
        frame = pd.read_csv(io.BytesIO(body), compression="gzip")
        assert list(frame.columns) == ["id", "name", "value", "time", "diff"]
        stream = pa.CompressedInputStream(pa.BufferReader(body), "gzip")
        assert pyarrow.csv.read_csv(stream).num_rows == len(frame)
    assert sorted(ids) == [r[0] for r in gzip_csv_objects]


def test_pathway_readers_do_not_decompress_but_the_binary_format_does(gzip_csv_objects, minio_settings):
    """Pathway 0.33's csv reader takes the compressed bytes for text and fails; reading
    whole objects as bytes and decompressing them in a UDF works (README, Compression)."""
    with pytest.raises(Exception, match="invalid utf-8|UTF-8"):
        t = pw.io.minio.read("out/", minio_settings, "csv", schema=Row, mode="static")
        pw.debug.table_to_pandas(t)
    from pathway.internals.parse_graph import G

    G.clear()

    def rows_of(data: bytes) -> list[tuple]:
        return [(int(r["id"]), r["name"]) for r in csv.DictReader(io.StringIO(gzip.decompress(data).decode()))]

    raw = pw.io.minio.read("out/", minio_settings, "binary", mode="static")
    flat = raw.select(r=pw.apply_with_type(rows_of, list[tuple[int, str]], pw.this.data)).flatten(pw.this.r)
    back = flat.select(
        ident=pw.apply_with_type(lambda r: r[0], int, pw.this.r),
        name=pw.apply_with_type(lambda r: r[1], str, pw.this.r),
    )
    got = pw.debug.table_to_pandas(back)
    assert sorted(zip(got["ident"], got["name"])) == [(r[0], r[1]) for r in gzip_csv_objects]
