"""Pathway tables written with pw.io.s3.write / pw.io.minio.write: read back with
pw.io.s3.read / pw.io.minio.read, compared byte for byte with pw.io.fs.write."""

from __future__ import annotations

import json
import random

import numpy as np
import pandas as pd
import pathway as pw
import pytest

from helpers import ROOT, objects, read_back, run

# every test here, over the engine's callback sink and over pw.io.python.write
pytestmark = pytest.mark.usefixtures("pathway_path")


class Basic(pw.Schema):
    name: str
    n: int
    x: float
    ok: bool
    opt: int | None


def basic_rows(count=40):
    rnd = random.Random(7)
    rows = []
    for i in range(count):
        rows.append(
            (
                f"name {i} \"quoted\", comma" if i % 5 == 0 else f"n{i}",
                rnd.randint(-(10**12), 10**12),
                rnd.uniform(-1e6, 1e6) * 10 ** rnd.randint(-8, 8),
                i % 3 == 0,
                None if i % 4 == 0 else i,
            )
        )
    return rows


def aws_settings(minio, bucket=None):
    return pw.io.s3.AwsS3Settings(
        bucket_name=bucket,
        endpoint=minio.endpoint,
        access_key=minio.access_key,
        secret_access_key=minio.secret_key,
        with_path_style=True,
        region="us-east-1",
    )


@pytest.mark.parametrize("fmt", ["csv", "json"])
@pytest.mark.parametrize("api", ["s3", "minio"])
def test_write_and_read_back(fmt, api, minio, s3, bucket, minio_settings):
    rows = basic_rows()
    table = pw.debug.table_from_rows(Basic, rows)
    if api == "s3":
        pw.io.s3.write(table, f"s3://{bucket}/basic", fmt, aws_s3_settings=aws_settings(minio), write_interval_ms=60_000)
    else:
        pw.io.minio.write(table, "basic", fmt, minio_settings=minio_settings, write_interval_ms=60_000)
    run()

    listed = objects(s3, bucket, "basic/")
    assert len(listed) == 1  # one interval, one object
    key, body = listed[0]
    assert key.endswith("." + fmt)
    lines = body.decode().splitlines()
    if fmt == "csv":
        assert lines[0] == '"name","n","x","ok","opt","time","diff"'
        assert len(lines) == len(rows) + 1
    else:
        assert len(lines) == len(rows)
        assert all(list(json.loads(ln))[-2:] == ["diff", "time"] for ln in lines)

    if api == "s3":
        back = read_back(f"s3://{bucket}/basic/", aws_settings(minio), fmt, Basic, reader="s3")
    else:
        back = read_back("basic/", minio_settings, fmt, Basic, reader="minio")
    expected = sorted(rows, key=repr)
    assert len(back) == len(expected)
    for got, want in zip(sorted(back, key=lambda r: r[0]), sorted(expected, key=lambda r: r[0])):
        # Pathway's JSON reader (serde_json without float_roundtrip) may parse the
        # shortest round-trip text one ULP off; the text itself is exact (see
        # test_formatting and the byte comparisons with pw.io.fs.write)
        assert got[:2] == want[:2] and got[3:] == want[3:]
        assert got[2] == pytest.approx(want[2], rel=1e-15, abs=0)
        if fmt == "csv":
            assert got[2] == want[2]


def every_type_table():
    base = pw.debug.table_from_markdown(
        """
        k | __time__ | __diff__
        0 | 2        | 1
        1 | 4        | 1
        2 | 6        | 1
        3 | 8        | 1
        4 | 10       | 1
        1 | 12       | -1
        """
    )
    floats = [1.5, float("nan"), float("inf"), -float("inf"), -0.0, 1e16, 1e-5, 1.5e-7, 0.1 + 0.2, 100.0]
    texts = ['Al "x", y', "line\nbreak\ttab\\", "żółw €", "", "ctl\x01\x1f"]

    def pick(values):
        return lambda k: values[k % len(values)]

    return base.select(
        i=pw.this.k * 7 - 10,
        f=pw.apply_with_type(pick(floats), float, pw.this.k),
        f2=pw.apply_with_type(pick(floats[4:]), float, pw.this.k),
        b=pw.apply_with_type(lambda k: k % 2 == 0, bool, pw.this.k),
        s=pw.apply_with_type(pick(texts), str, pw.this.k),
        oi=pw.apply_with_type(lambda k: None if k % 2 else k, int | None, pw.this.k),
        of=pw.apply_with_type(lambda k: None if k % 2 else k / 4, float | None, pw.this.k),
        os_=pw.apply_with_type(lambda k: None if k % 2 else "v", str | None, pw.this.k),
        by=pw.apply_with_type(lambda k: bytes(range(k * 3)), bytes, pw.this.k),
        p=pw.this.id,
        dn=pw.apply_with_type(
            lambda k: pd.Timestamp("2024-01-02T03:04:05.5") + pd.Timedelta(k * 1001, "us"), pw.DateTimeNaive, pw.this.k
        ),
        du=pw.apply_with_type(
            lambda k: pd.Timestamp("1969-12-31T23:59:59.000000001", tz="UTC") + pd.Timedelta(k, "D"), pw.DateTimeUtc, pw.this.k
        ),
        dur=pw.apply_with_type(lambda k: pd.Timedelta(k * 1.5 - 2, "s"), pw.Duration, pw.this.k),
        js=pw.apply_with_type(
            lambda k: pw.Json([{"k": [1, 2.5, None]}, 's"', 3, True, None, {"z": 1, "a": 1e20}][k]), pw.Json, pw.this.k
        ),
        ojs=pw.apply_with_type(lambda k: None if k % 2 else pw.Json({"k": k}), pw.Json | None, pw.this.k),
        tup=pw.apply_with_type(lambda k: (k, "a", None, 1.0, b"\x01"), tuple[int, str, None, float, bytes], pw.this.k),
        tup2=pw.apply_with_type(
            lambda k: (pd.Timestamp("2020-02-29T12:00:00"), pd.Timedelta(k, "ms"), pw.Json({"n": k}), (k, (float("nan"),))),
            tuple[pw.DateTimeNaive, pw.Duration, pw.Json, tuple[int, tuple[float]]],
            pw.this.k,
        ),
        ptup=pw.apply_with_type(lambda p: (p, p), tuple[pw.Pointer, pw.Pointer], pw.this.id),
        lst=pw.apply_with_type(lambda k: tuple(float(x) / 3 for x in range(k)), list[float], pw.this.k),
        ai=pw.apply_with_type(lambda k: np.arange(k * 2, dtype=np.int64).reshape(2, k), np.ndarray, pw.this.k),
        af=pw.apply_with_type(lambda k: np.array([[0.5, float("nan")], [1e20, -1.0]]) * k, np.ndarray, pw.this.k),
        af1=pw.apply_with_type(lambda k: np.linspace(0, 1, k + 1), np.ndarray, pw.this.k),
    )


@pytest.mark.parametrize("fmt", ["csv", "json"])
def test_every_type_byte_for_byte_as_fs_write(fmt, s3, bucket, minio_settings, tmp_path):
    table = every_type_table()
    pw.io.minio.write(table, "all", fmt, minio_settings=minio_settings, write_interval_ms=600_000)
    pw.io.fs.write(table, tmp_path / f"out.{fmt}", fmt)
    run()
    listed = objects(s3, bucket, "all/")
    assert len(listed) == 1
    reference = (tmp_path / f"out.{fmt}").read_bytes()
    assert reference.count(b"\n") >= 6  # every batch, the retraction too
    assert listed[0][1] == reference


@pytest.mark.parametrize("fmt", ["csv", "json"])
def test_any_columns_byte_for_byte_as_fs_write(fmt, s3, bucket, minio_settings, tmp_path):
    """Columns of type Any (pw.apply without a return type): each value is written as
    the engine writes its own type."""
    values = [
        7, -1.5, float("nan"), 1e16, True, "a \"q\", b", None, b"\x00\xff",
        pd.Timestamp("2024-01-02T03:04:05.5"), pd.Timestamp("2024-01-02T03:04:05", tz="UTC"),
        pd.Timedelta(1500, "ms"), pw.Json({"k": [1, 2.5]}), (1, "a", None),
    ]
    base = pw.debug.table_from_markdown(
        "k\n" + "\n".join(str(k) for k in range(len(values)))
    )
    table = base.select(k=pw.this.k, v=pw.apply(lambda k: values[k], pw.this.k))
    assert table.schema.columns()["v"].dtype == pw.internals.dtype.ANY
    pw.io.minio.write(table, "any", fmt, minio_settings=minio_settings, write_interval_ms=600_000)
    pw.io.fs.write(table, tmp_path / f"out.{fmt}", fmt)
    run()
    listed = objects(s3, bucket, "any/")
    assert len(listed) == 1
    reference = (tmp_path / f"out.{fmt}").read_bytes()
    assert reference.count(b"\n") == len(values) + (fmt == "csv")
    assert listed[0][1] == reference


@pytest.mark.parametrize("fmt", ["csv", "json"])
def test_many_floats_as_fs_write(fmt, s3, bucket, minio_settings, tmp_path):
    rnd = random.Random(99)
    values = [rnd.uniform(-1, 1) * 10 ** rnd.randint(-25, 25) for _ in range(600)]
    values += [float(rnd.randint(-(10**17), 10**17)) for _ in range(100)]
    values += [rnd.getrandbits(53) / 2 ** rnd.randint(0, 70) for _ in range(100)]

    class F(pw.Schema):
        i: int
        x: float

    table = pw.debug.table_from_rows(F, list(enumerate(values)))
    pw.io.minio.write(table, "floats", fmt, minio_settings=minio_settings, write_interval_ms=600_000)
    pw.io.fs.write(table, tmp_path / "ref", fmt)
    run()
    ((_, body),) = objects(s3, bucket, "floats/")
    ours = body.decode().splitlines()
    ref = (tmp_path / "ref").read_text().splitlines()
    if fmt == "csv":
        assert ours[0] == ref[0]
    assert sorted(ours) == sorted(ref)


UPDATES = """
    owner | pet | __time__ | __diff__
    Alice | dog | 2        | 1
    Bob   | cat | 2        | 1
    Alice | dog | 4        | -1
    Alice | cow | 4        | 1
    Carol | eel | 6        | 1
    Bob   | cat | 8        | -1
"""


@pytest.mark.parametrize("fmt", ["csv", "json"])
def test_retractions_and_updates_keep_diff_and_time(fmt, s3, bucket, minio_settings, tmp_path):
    t = pw.debug.table_from_markdown(UPDATES)
    counts = t.groupby(pw.this.owner).reduce(pw.this.owner, n=pw.reducers.count())
    pw.io.minio.write(t, "pets", fmt, minio_settings=minio_settings, write_interval_ms=600_000)
    pw.io.minio.write(counts, "counts", fmt, minio_settings=minio_settings, write_interval_ms=600_000)
    pw.io.fs.write(t, tmp_path / "pets", fmt)
    pw.io.fs.write(counts, tmp_path / "counts", fmt)
    run()
    for name in ("pets", "counts"):
        ((_, body),) = objects(s3, bucket, name + "/")
        ours, ref = body.decode().splitlines(), (tmp_path / name).read_text().splitlines()
        assert sorted(ours) == sorted(ref)
        if fmt == "csv":
            assert ours[0] == ref[0]

    class Changes(pw.Schema):
        owner: str
        pet: str
        time: int
        diff: int

    back = read_back("pets/", minio_settings, fmt, Changes)
    assert [(o, p, d) for o, p, _, d in sorted(back, key=lambda r: (r[2], r[3], r[0]))] == [
        ("Alice", "dog", 1), ("Bob", "cat", 1),
        ("Alice", "dog", -1), ("Alice", "cow", 1),
        ("Carol", "eel", 1),
        ("Bob", "cat", -1),
    ]
    times = sorted({r[2] for r in back})
    assert len(times) == 4  # one engine time per minibatch, kept
    assert all(isinstance(x, int) for x in times)

    class Counts(pw.Schema):
        owner: str
        n: int
        time: int
        diff: int

    back = read_back("counts/", minio_settings, fmt, Counts)
    net = {}
    for owner, n, _, diff in back:
        net[(owner, n)] = net.get((owner, n), 0) + diff
    assert {k for k, v in net.items() if v} == {("Alice", 1), ("Carol", 1)}
    assert any(diff == -1 for *_, diff in back)


def test_user_lua_format_by_path(s3, bucket, minio_settings, monkeypatch):
    monkeypatch.chdir(ROOT)  # a relative path is resolved at the call
    t = pw.debug.table_from_markdown(
        """
        a | b
        1 | x
        2 | y
        """
    ).select(pw.this.a, b=pw.apply_with_type(lambda b: b + "\t\\", str, pw.this.b), c=pw.apply_with_type(lambda a: None if a == 2 else 0.5, float | None, pw.this.a))
    pw.io.minio.write(t, "tsv", "examples/formats/tsv.lua", minio_settings=minio_settings, write_interval_ms=600_000)
    run()
    ((key, body),) = objects(s3, bucket, "tsv/")
    assert key.endswith(".tsv")
    lines = body.decode().split("\n")
    assert lines[0] == "a\tb\tc\ttime\tdiff"
    assert sorted(ln.rsplit("\t", 2)[0] for ln in lines[1:-1]) == ["1\tx\\t\\\\\t0.5", "2\ty\\t\\\\\t\\N"]
    assert lines[-1] == ""


def test_example_scripts_of_the_guide(s3, bucket, minio_settings, monkeypatch):
    """docs/scripts.md's examples from Pathway: the change-log format, and the Hive-style
    naming whose partitions pw.io.minio.read reads back as one prefix."""
    import re

    import s3sink

    monkeypatch.chdir(ROOT)
    t = pw.debug.table_from_markdown(
        """
        owner | pet
        Alice | dog
        Bob   | cat
        """
    )
    pw.io.minio.write(t, "hive/", "csv", minio_settings=minio_settings,
                      naming="examples/naming/hive.lua")
    pw.io.minio.write(t, "changes/", "examples/formats/changes.lua", minio_settings=minio_settings,
                      naming="examples/naming/hive.lua")
    run()
    ((key, _),) = objects(s3, bucket, "hive/")
    assert re.fullmatch(r"hive/dt=\d{4}-\d\d-\d\d/hour=\d\d/\d{8}T\d{6}\.\d{3}Z-0000000000\.csv", key)

    class Pet(pw.Schema):
        owner: str
        pet: str

    assert read_back("hive/", minio_settings, "csv", Pet) == [("Alice", "dog"), ("Bob", "cat")]
    ((key, body),) = objects(s3, bucket, "changes/")
    assert key.endswith(".jsonl")
    lines = [json.loads(line) for line in body.decode().splitlines()]
    assert sorted((d["op"], d["row"]["owner"], d["row"]["pet"]) for d in lines) == [
        ("insert", "Alice", "dog"), ("insert", "Bob", "cat")]
    # the guide's Python one-liner
    rendered = s3sink.Formatter("examples/formats/changes.lua", [("id", "int"), ("name", "str", True)]).row(
        {"id": 1, "name": "alice"}, 10)
    assert rendered == b'{"op":"insert","time":10,"row":{"id":1,"name":"alice"}}\n'


def test_user_format_and_naming_scripts(s3, bucket, minio_settings, tmp_path):
    fmt = tmp_path / "pipes.lua"
    fmt.write_text(
        """
        local types
        return {
          extension = "txt",
          content_type = "text/plain",
          init = function(columns) types = {} for i, c in ipairs(columns) do types[i] = c.type end end,
          header = function(columns)
            local names = {}
            for i, c in ipairs(columns) do names[i] = c.name end
            return "#" .. table.concat(names, "|") .. "\\n"
          end,
          row = function(values, time, diff)
            local cells = {}
            for i = 1, #types do cells[i] = fmt.csv_cell(values[i], types[i]) end
            return table.concat(cells, "|") .. "|" .. (diff > 0 and "+" or "-") .. "\\n"
          end,
        }
        """
    )
    naming = tmp_path / "names.lua"
    naming.write_text(
        'return { name = function(ctx) return string.format("%sbatch-%06d.%s", ctx.prefix, ctx.sequence, ctx.extension) end }'
    )
    t = pw.debug.table_from_markdown(UPDATES)
    pw.io.minio.write(t, "custom", str(fmt), minio_settings=minio_settings, naming=naming, write_interval_ms=600_000)
    run()
    ((key, body),) = objects(s3, bucket, "custom/")
    assert key == "custom/batch-000000.txt"
    lines = body.decode().splitlines()
    assert lines[0] == "#owner|pet"
    assert sorted(lines[1:]) == sorted(["Alice|dog|+", "Bob|cat|+", "Alice|dog|-", "Alice|cow|+", "Carol|eel|+", "Bob|cat|-"])


def test_sort_by(s3, bucket, minio_settings):
    class S(pw.Schema):
        n: int
        s: str

    rows = [(n, f"r{n}") for n in random.Random(3).sample(range(1000), 50)]
    t = pw.debug.table_from_rows(S, rows)
    pw.io.minio.write(t, "sorted", "csv", minio_settings=minio_settings, sort_by=[t.n], name="sorted-writer")
    run()
    ((_, body),) = objects(s3, bucket, "sorted/")
    ns = [int(ln.split(",")[0].strip('"')) for ln in body.decode().splitlines()[1:]]
    assert ns == sorted(n for n, _ in rows)


def test_digital_ocean_and_wasabi_counterparts_reach_their_hosts(monkeypatch):
    """Without the real services: the writers are opened against the providers' hosts
    (the Writer is replaced to capture its configuration)."""
    from s3sink import _pathway

    seen = []

    class Capture(_pathway._S3Observer):
        def __init__(self, **kw):
            seen.append(kw)
            raise RuntimeError("captured")

    monkeypatch.setattr(_pathway, "_S3Observer", Capture)
    t = pw.debug.table_from_markdown("a\n1")
    with pytest.raises(RuntimeError, match="captured"):
        pw.io.s3.write_to_digital_ocean(
            t, "out", pw.io.s3.DigitalOceanS3Settings("space", region="ams3", access_key="k", secret_access_key="s"), "json"
        )
    with pytest.raises(RuntimeError, match="captured"):
        pw.io.s3.write_to_wasabi(
            t, "s3://ignored/out", pw.io.s3.WasabiS3Settings("wb", region="eu-central-1", access_key="k", secret_access_key="s"), "csv"
        )
    assert [(k["endpoint"], k["region"], k["bucket"], k["prefix"], k["virtual_hosted"], k["format"]) for k in seen] == [
        ("https://ams3.digitaloceanspaces.com", "ams3", "space", "out/", True, "json"),
        ("https://s3.eu-central-1.wasabisys.com", "eu-central-1", "wb", "out/", True, "csv"),
    ]


@pytest.mark.parametrize("limit", [{"max_object_rows": 3}, {"max_object_bytes": 60}])
def test_objects_roll_at_max_object_rows_or_bytes(limit, s3, bucket, minio_settings):
    """An option added to the runtime's table reaches the Pathway writers untouched: an
    object holding max_object_rows rows (or max_object_bytes bytes) is uploaded at the end
    of its minibatch, long before write_interval_ms; every row once."""
    rows = "\n".join(f"{i} | {2 * (i // 2 + 1)} | 1" for i in range(10))
    t = pw.debug.table_from_markdown("k | __time__ | __diff__\n" + rows)
    pw.io.minio.write(t, "rolled", "json", minio_settings=minio_settings,
                      write_interval_ms=600_000, **limit)
    run()
    bodies = [body.decode().splitlines() for _, body in objects(s3, bucket, "rolled/")]
    assert sorted(json.loads(line)["k"] for lines in bodies for line in lines) == list(range(10))
    # minibatches of two rows: an object is sealed once it holds 4 (>= 3 rows, or >= 60
    # bytes at about 26 bytes a row); the end of the stream uploads the last 2
    assert [len(lines) for lines in bodies] == [4, 4, 2]
