"""The C conversion of Python values and the bundled formats, without a bucket:
s3sink.Formatter renders rows exactly as the sink buffers them."""

from __future__ import annotations

import datetime
import gc
import math
import random
import struct
import subprocess
import sys
import tracemalloc
from decimal import ROUND_HALF_UP, Context, Decimal
from pathlib import Path

import numpy as np
import pandas as pd
import pathway as pw
import pytest

import s3sink

EXAMPLE_COLUMNS = [
    ("name", "str"),
    ("n", "int"),
    ("x", "float"),
    ("ok", "bool"),
    ("opt", "int", True),
    ("raw", "bytes"),
    ("at", "datetime_naive"),
    ("utc", "datetime_utc"),
    ("dur", "duration"),
    ("tup", "tuple"),
    ("js", "json"),
]


def example_row():
    return {
        "name": 'Al "x", y',
        "n": 10,
        "x": 0.5,
        "ok": True,
        "opt": None,
        "raw": b"\x00\xff",
        "at": pd.Timestamp("2024-01-02T03:04:05.5"),
        "utc": pd.Timestamp("2024-01-02T03:04:05", tz="UTC"),
        "dur": pd.Timedelta(1.5, "s"),
        "tup": (1, "a"),
        "js": pw.Json({"k": [1, 2]}),
    }


def test_worked_example_csv():
    # docs/value-text.md, "Worked example"
    f = s3sink.Formatter("csv", EXAMPLE_COLUMNS)
    assert f.header() == b'"name","n","x","ok","opt","raw","at","utc","dur","tup","js","time","diff"\n'
    assert f.row(example_row(), 1700000000000) == (
        b'"Al ""x"", y","10","0.5","True","None","AP8=","2024-01-02T03:04:05.500000000",'
        b'"2024-01-02T03:04:05.000000000+0000","1500000000","[1,""a""]","{""k"":[1,2]}",'
        b'"1700000000000","1"\n'
    )
    assert f.row(example_row(), 1700000000002, -1).endswith(b'"1700000000002","-1"\n')
    assert f.extension == "csv"


def test_worked_example_json():
    f = s3sink.Formatter("json", EXAMPLE_COLUMNS)
    assert f.header() == b""
    assert f.row(example_row(), 1700000000000) == (
        b'{"name":"Al \\"x\\", y","n":10,"x":0.5,"ok":true,"opt":null,"raw":"AP8=",'
        b'"at":"2024-01-02T03:04:05.500000000","utc":"2024-01-02T03:04:05.000000000+0000",'
        b'"dur":1500000000,"tup":[1,"a"],"js":{"k":[1,2]},"diff":1,"time":1700000000000}\n'
    )
    assert f.extension == "json"


def test_row_dict_in_another_order_or_with_extra_keys():
    f = s3sink.Formatter("csv", EXAMPLE_COLUMNS)
    row = example_row()
    expected = f.row(row, 5)
    shuffled = dict(reversed(list(row.items())))
    assert f.row(shuffled, 5) == expected
    assert f.row({**row, "extra": object()}, 5) == expected
    del row["n"]
    with pytest.raises(KeyError, match="'n'"):
        f.row(row, 5)


# --- floats ---------------------------------------------------------------------------

FLOATS = [
    # value, CSV (Rust {:?}), JSON (serde_json / zmij)
    (1.0, "1.0", "1.0"),
    (0.5, "0.5", "0.5"),
    (100.0, "100.0", "100.0"),
    (-0.0, "-0.0", "-0.0"),
    (0.0, "0.0", "0.0"),
    (1e15, "1000000000000000.0", "1000000000000000.0"),
    (1e16, "1e16", "1e+16"),
    (1e-4, "0.0001", "0.0001"),
    (1e-5, "1e-5", "0.00001"),
    (9.99e-5, "9.99e-5", "0.0000999"),
    (1.5e-7, "1.5e-7", "1.5e-7"),
    (1e-7, "1e-7", "1e-7"),
    (0.1 + 0.2, "0.30000000000000004", "0.30000000000000004"),
    (1.7976931348623157e308, "1.7976931348623157e308", "1.7976931348623157e+308"),
    (5e-324, "5e-324", "5e-324"),
    (123456789012345680.0, "1.2345678901234568e17", "1.2345678901234568e+17"),
    (-2.5e300, "-2.5e300", "-2.5e+300"),
    # exact ties between two shortest candidates: Rust's {:?} rounds half away from zero,
    # zmij (and Python's repr) half to even (checked against pw.io.fs.write output)
    (688673779587758.25, "688673779587758.3", "688673779587758.2"),
    (-123456789012345.125, "-123456789012345.13", "-123456789012345.12"),
    (999999999999999.25, "999999999999999.3", "999999999999999.2"),
    (688673779587758.75, "688673779587758.8", "688673779587758.8"),
    (float("nan"), "NaN", "null"),
    (float("inf"), "inf", "null"),
    (float("-inf"), "-inf", "null"),
]


@pytest.mark.parametrize("value,csv,js", FLOATS, ids=[c for _, c, _ in FLOATS])
def test_float_text(value, csv, js):
    assert s3sink.format_float(value, "csv") == csv
    assert s3sink.format_float(value, "json") == js
    assert s3sink.to_json(value) == js
    fc = s3sink.Formatter("csv", [("x", "float")])
    fj = s3sink.Formatter("json", [("x", "float")])
    assert fc.row({"x": value}, 0) == f'"{csv}","0","1"\n'.encode()
    assert fj.row({"x": value}, 0) == f'{{"x":{js},"diff":1,"time":0}}\n'.encode()


def reference_float(x: float, style: str) -> str:
    """The rules of docs/value-text.md, "Floats", from Python's shortest digits."""
    if math.isnan(x):
        return "NaN" if style == "csv" else "null"
    if math.isinf(x):
        return ("inf" if x > 0 else "-inf") if style == "csv" else "null"
    if x == 0:
        return "-0.0" if math.copysign(1, x) < 0 else "0.0"
    sign, digits, exp = Decimal(repr(x)).as_tuple()
    if style == "csv":
        # same length as the shortest digits, but ties rounded half away from zero
        half_up = Context(prec=len(digits), rounding=ROUND_HALF_UP).plus(Decimal(x))
        if float(half_up) == x:
            sign, digits, exp = half_up.as_tuple()
    d = "".join(map(str, digits)).rstrip("0")
    exp += len(digits) - len(d)
    sci = len(d) - 1 + exp  # x = d[0].d[1:] * 10**sci
    lo = -4 if style == "csv" else -5
    s = "-" if sign else ""
    if lo <= sci < 16:
        if sci >= 0:
            ip = d[: sci + 1].ljust(sci + 1, "0")
            fp = d[sci + 1 :] or "0"
            return f"{s}{ip}.{fp}"
        return f"{s}0.{'0' * (-sci - 1)}{d}"
    mant = d[0] + ("." + d[1:] if len(d) > 1 else "")
    plus = "+" if style == "json" and sci > 0 else ""
    return f"{s}{mant}e{plus}{sci}"


def test_float_text_matches_the_engine_rules_on_random_values():
    rnd = random.Random(1234)
    values = [rnd.uniform(-1, 1) * 10 ** rnd.randint(-30, 30) for _ in range(3000)]
    values += [float(rnd.randint(-(10**17), 10**17)) for _ in range(500)]
    values += [rnd.getrandbits(64) / 2**rnd.randint(0, 80) for _ in range(500)]
    values += [rnd.randint(10**13, 10**15) + rnd.choice([0.125, 0.25, 0.375, 0.75]) for _ in range(200)]
    # every exponent: random bit patterns, the smallest subnormals, powers of two and their
    # neighbours (where the rounding interval is uneven)
    bits = [rnd.getrandbits(64) for _ in range(30000)] + list(range(1, 2000))
    values += [v for v in struct.unpack(f"<{len(bits)}d", struct.pack(f"<{len(bits)}Q", *bits)) if math.isfinite(v)]
    for e in range(-1074, 1024):
        p = math.ldexp(1.0, e)
        values += [p, math.nextafter(p, 0), math.nextafter(p, math.inf)]
    for v in values:
        assert s3sink.format_float(v, "csv") == reference_float(v, "csv"), v
        assert s3sink.format_float(v, "json") == reference_float(v, "json"), v


def test_the_float_writers_power_table_is_what_its_generator_writes():
    root = Path(__file__).resolve().parents[3]
    generated = subprocess.run(
        [sys.executable, str(root / "tools" / "gen_pow10_table.py")], capture_output=True, text=True, check=True
    ).stdout
    assert (root / "runtime" / "pow10_table.h").read_text() == generated


# --- JSON texts of composite values ------------------------------------------------------


def test_to_json_composites():
    assert s3sink.to_json((1, "a", None, True, b"\x00\xff", (2.0, [])) ) == '[1,"a",null,true,"AP8=",[2.0,[]]]'
    assert s3sink.to_json(pw.Json({"b": 1, "a": [1, 2.5, None, "x"]})) == '{"b":1,"a":[1,2.5,null,"x"]}'
    assert s3sink.to_json(pw.Json("text")) == '"text"'
    assert s3sink.to_json(pw.Json(None)) == "null"
    assert s3sink.to_json((pw.Json({"x": 1}), 2)) == '[{"x":1},2]'
    # serde_json escaping: quote, backslash, control characters; raw UTF-8 and '/'
    assert s3sink.to_json("a\"b\\c\n\t\r\b\f\x01\x1f\x7f/ż€") == '"a\\"b\\\\c\\n\\t\\r\\b\\f\\u0001\\u001f\x7f/ż€"'
    # big integers: u64 still exact, beyond that an f64 as serde_json holds it
    assert s3sink.to_json(2**64 - 1) == "18446744073709551615"
    assert s3sink.to_json(-(2**63)) == "-9223372036854775808"
    assert s3sink.to_json(2**70) == "1.1805916207174113e+21"


def test_to_json_datetimes_and_durations():
    assert s3sink.to_json(
        (
            pd.Timestamp("2024-01-02T03:04:05.123456789"),
            pd.Timestamp("2024-01-02T03:04:05", tz="UTC"),
            pd.Timestamp("1960-06-30T23:59:59.999999999"),
            pd.Timedelta(-1, "ns"),
            datetime.datetime(2024, 1, 2, 3, 4, 5, 500000),
            datetime.datetime(2024, 1, 2, 3, 4, 5, tzinfo=datetime.timezone(datetime.timedelta(hours=1))),
            datetime.timedelta(days=1, microseconds=3),
        )
    ) == (
        '["2024-01-02T03:04:05.123456789","2024-01-02T03:04:05.000000000+0000",'
        '"1960-06-30T23:59:59.999999999",-1,"2024-01-02T03:04:05.500000000",'
        '"2024-01-02T02:04:05.000000000+0000",86400000003000]'
    )


def test_out_of_range_datetimes_and_durations():
    with pytest.raises(OverflowError):
        s3sink.to_json(datetime.datetime(1, 1, 1))
    with pytest.raises(OverflowError):
        s3sink.to_json(datetime.timedelta.max)
    f = s3sink.Formatter("csv", [("d", "duration")])
    with pytest.raises(TypeError, match="column 'd'"):
        f.row({"d": datetime.timedelta(days=-999999)}, 0)
    assert f.row({"d": datetime.timedelta(days=-1)}, 0) == b'"-86400000000000","0","1"\n'


def test_to_json_ndarrays():
    assert s3sink.to_json(np.arange(6, dtype=np.int64).reshape(2, 3)) == '{"shape":[2,3],"elements":[0,1,2,3,4,5]}'
    # non-contiguous (transposed) arrays are written in logical row-major order
    a = np.arange(6, dtype=np.float64).reshape(3, 2).T
    assert s3sink.to_json(a) == '{"shape":[2,3],"elements":[0.0,2.0,4.0,1.0,3.0,5.0]}'
    assert s3sink.to_json(np.array([np.nan, np.inf, 1e-7])) == '{"shape":[3],"elements":[null,null,1e-7]}'
    assert s3sink.to_json(np.zeros((0, 2), dtype=np.int64)) == '{"shape":[0,2],"elements":[]}'
    assert s3sink.to_json((np.int64(5), np.float64(0.25))) == "[5,0.25]"


def test_pointer_is_its_str():
    key = pw.debug.table_from_markdown("a\n1").select(p=pw.this.id)
    keys_, cols = pw.debug.table_to_dicts(key)
    p = cols["p"][keys_[0]]
    assert isinstance(p, pw.Pointer)
    text = str(p)
    assert text.startswith("^") and len(text) == 27
    assert s3sink.to_json((p,)) == f'["{text}"]'
    f = s3sink.Formatter("csv", [("p", "pointer")])
    assert f.row({"p": p}, 0) == f'"{text}","0","1"\n'.encode()


# --- errors --------------------------------------------------------------------------


def test_value_of_the_wrong_type_names_the_column():
    f = s3sink.Formatter("csv", [("a", "int"), ("b", "str")])
    with pytest.raises(TypeError, match=r"column 'b' \(str\) needs a str, got int"):
        f.row({"a": 1, "b": 2}, 0)
    with pytest.raises(TypeError, match="column 'a'"):
        f.row({"a": 2**64, "b": "x"}, 0)
    with pytest.raises(TypeError, match="column 'a'"):
        s3sink.Formatter("json", [("a", "json")]).row({"a": object()}, 0)
    with pytest.raises(TypeError, match="row must be a dict"):
        f.row([1, "x"], 0)


def test_bad_columns():
    with pytest.raises(s3sink.ConfigError, match="'decimal'"):
        s3sink.Formatter("csv", [("a", "decimal")])
    with pytest.raises(ValueError, match="twice"):
        s3sink.Formatter("csv", [("a", "int"), ("a", "str")])
    with pytest.raises(TypeError):
        s3sink.Formatter("csv", "a")
    with pytest.raises(TypeError):
        s3sink.Formatter("csv", [("a",)])


def test_any_column_writes_each_value_by_its_own_type():
    f = s3sink.Formatter("csv", [("v", "any")])
    got = [f.row({"v": v}, 2, 1) for v in (3, 0.5, False, "x", None, b"\x01", (1, 2))]
    cells = [g.split(b",")[0] for g in got]
    assert cells[:6] == [b'"3"', b'"0.5"', b'"False"', b'"x"', b'"None"', b'"AQ=="']
    assert got[6] == b'"[1,2]","2","1"\n'


def test_bad_format_script(tmp_path):
    with pytest.raises(s3sink.SinkError):
        s3sink.Formatter(str(tmp_path / "missing.lua"), [("a", "int")])
    bad = tmp_path / "bad.lua"
    bad.write_text("return {  -- unfinished\n")
    with pytest.raises(s3sink.ScriptError, match="bad.lua"):
        s3sink.Formatter(str(bad), [("a", "int")])


def test_exception_hierarchy():
    assert issubclass(s3sink.ConfigError, s3sink.SinkError)
    assert issubclass(s3sink.ConfigError, ValueError)
    assert issubclass(s3sink.ScriptError, s3sink.SinkError)
    assert issubclass(s3sink.UploadError, s3sink.SinkError)
    assert issubclass(s3sink.UploadError, OSError)
    e = s3sink.UploadError("x")
    assert (e.status, e.s3_code, e.request_id) == (None, None, None)


# --- references and memory --------------------------------------------------------------


def test_no_references_kept():
    f = s3sink.Formatter("csv", EXAMPLE_COLUMNS + [("p", "pointer"), ("arr", "array"), ("lst", "list")])
    row = example_row()
    row["p"] = "^ABC"
    row["arr"] = np.arange(4)
    row["lst"] = (1.5, "x")
    tracked = {k: v for k, v in row.items() if not any(v is s for s in (None, True, False))}
    before = {k: sys.getrefcount(v) for k, v in tracked.items()}
    row_before = sys.getrefcount(row)
    for _ in range(100):
        f.row(row, 1)
    with pytest.raises(TypeError):
        f.row({**row, "n": "bad"}, 1)
    gc.collect()
    assert {k: sys.getrefcount(v) for k, v in tracked.items()} == before
    assert sys.getrefcount(row) == row_before


def test_no_leak_over_many_rows():
    f = s3sink.Formatter("json", EXAMPLE_COLUMNS)
    row = example_row()
    for _ in range(2000):  # warm up caches
        f.row(row, 1)
    gc.collect()
    tracemalloc.start()
    try:
        start, _ = tracemalloc.get_traced_memory()
        for i in range(30000):
            f.row(row, i)
        gc.collect()
        end, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert end - start < 64 * 1024


def test_wide_rows_use_the_heap_path():
    cols = [(f"c{i}", "str") for i in range(100)]
    f = s3sink.Formatter("csv", cols)
    row = {f"c{i}": "v" * i for i in range(100)}
    out = f.row(row, 3).decode()
    assert out.count('","') == 101
    assert '"' + "v" * 99 + '"' in out
