"""The writers attach to the engine's callback sink (s3sink._fastpath) on the Pathway
version it was verified with, fall back to pw.io.python.write when asked or when the
internals differ, and Writer.on_engine_change converts the engine's value lists."""

from __future__ import annotations

import gc

import pathway as pw
import pytest
from pathway.internals.datasink import CallbackDataSink
from pathway.internals.parse_graph import G

import s3sink
from helpers import objects, run
from s3sink import _fastpath


class Row(pw.Schema):
    a: int
    b: str


def callback_sinks() -> list[CallbackDataSink]:
    return [op.datasink for op in G.global_scope.output_nodes if isinstance(op.datasink, CallbackDataSink)]


def write_rows(minio_settings, **kw):
    table = pw.debug.table_from_rows(Row, [(1, "x"), (2, "y")])
    pw.io.minio.write(table, "fp", "csv", minio_settings=minio_settings, write_interval_ms=600_000, **kw)
    return table


def test_the_fast_path_is_taken_on_the_verified_version(monkeypatch, s3, bucket, minio_settings):
    monkeypatch.delenv(_fastpath.ENV_SWITCH, raising=False)
    if pw.__version__ != _fastpath.VERIFIED_PATHWAY:
        pytest.skip(f"fast path verified with Pathway {_fastpath.VERIFIED_PATHWAY}, not {pw.__version__}")
    assert _fastpath.AVAILABLE, _fastpath.UNAVAILABLE_REASON
    assert _fastpath.enabled()
    write_rows(minio_settings, name="fp-writer")
    (sink,) = callback_sinks()
    on_change = sink.on_change
    assert on_change.__name__ == "on_engine_change"
    assert isinstance(on_change.__self__, s3sink.Writer)
    # the rest as pw.io.python.write sets it
    assert (sink.skip_persisted_batch, sink.skip_errors, sink.unique_name) == (True, True, "fp-writer")
    assert sink.on_end == on_change.__self__.on_end
    assert sink.on_time_end == on_change.__self__.on_time_end
    run()
    [(_, body)] = objects(s3, bucket, "fp/")
    assert sorted(body.splitlines()[1:]) == [b'"1","x","0","1"', b'"2","y","0","1"']


def test_the_switch_forces_pw_io_python_write(monkeypatch, minio_settings):
    monkeypatch.setenv(_fastpath.ENV_SWITCH, "0")
    assert not _fastpath.enabled()
    write_rows(minio_settings)
    (sink,) = callback_sinks()
    # table_subscription's wrapper around the observer's on_change
    assert sink.on_change.__wrapped__.__name__ == "on_change"


def test_another_column_order_falls_back(monkeypatch, minio_settings):
    monkeypatch.delenv(_fastpath.ENV_SWITCH, raising=False)
    if not _fastpath.AVAILABLE:
        pytest.skip(_fastpath.UNAVAILABLE_REASON)
    table = pw.debug.table_from_rows(Row, [(1, "x")])
    observer = s3sink.Writer.__new__(s3sink.Writer)  # never opened: attach only wires it
    monkeypatch.setattr(pw.io.python, "write", lambda *a, **k: None)
    assert _fastpath.attach(table, observer, ["b", "a"], None, None) is False
    assert _fastpath.attach(table, observer, ["a", "b"], None, None) is True


def test_internals_of_another_shape_are_detected(monkeypatch):
    assert not isinstance(_fastpath._check(), str)
    monkeypatch.setattr(_fastpath, "_SINK_FIELDS", _fastpath._SINK_FIELDS + ("extra",))
    assert "fields" in _fastpath._check()
    monkeypatch.undo()
    monkeypatch.setattr(_fastpath, "_SUBSCRIBE_PARAMS", ("table",))
    assert "signature" in _fastpath._check()


def test_on_engine_change(s3, bucket, writer_kwargs):
    w = s3sink.Writer(
        **writer_kwargs, prefix="e/", columns=[("a", "int"), ("b", "str", True), ("j", "json")],
        write_interval_ms=600_000,
    )
    w.on_engine_change(None, [1, "x", pw.Json({"k": [1, 2]})], 2, 1)
    w.on_engine_change(None, (2, None, pw.Json(None)), 2, -1)
    with pytest.raises(ValueError, match="2 items for 3 columns"):
        w.on_engine_change(None, [1, "x"], 2, 1)
    with pytest.raises(TypeError, match="must be a list"):
        w.on_engine_change(None, {"a": 1}, 2, 1)
    with pytest.raises(TypeError, match="column 'a'"):
        w.on_engine_change(None, ["1", "x", None], 2, 1)
    with pytest.raises(TypeError, match="time and diff"):
        w.on_engine_change(None, [1, "x", None], 2, 1.0)
    with pytest.raises(TypeError, match="4 arguments"):
        w.on_engine_change(None, [1, "x", None], 2)
    # after failed rows the writer's row buffer is clean: the next rows are whole
    w.on_engine_change(None, [3, "z" * 5000, pw.Json(list(range(2000)))], 4, 1)
    w.on_end()
    [(_, body)] = objects(s3, bucket, "e/")
    lines = body.decode().splitlines()
    assert lines[:3] == [
        '"a","b","j","time","diff"',
        '"1","x","{""k"":[1,2]}","2","1"',
        '"2","None","null","2","-1"',
    ]
    assert lines[3].startswith('"3","' + "z" * 5000 + '","[0,1,2,')
    assert len(lines) == 4
    with pytest.raises(s3sink.SinkError, match="closed"):
        w.on_engine_change(None, [1, "x", None], 2, 1)


def test_a_conversion_that_reenters_the_writer(s3, bucket, writer_kwargs):
    """A value whose conversion calls back into the same writer (Python code run from
    the conversion) gets a row buffer of its own: both rows are written whole."""
    w = s3sink.Writer(**writer_kwargs, prefix="r/", columns=[("a", "int"), ("b", "str")],
                      write_interval_ms=600_000)

    class Sneaky:
        def __index__(self) -> int:
            w.on_engine_change(None, [7, "inner"], 2, 1)
            return 5

    w.on_engine_change(None, [Sneaky(), "outer"], 2, 1)
    w.on_end()
    [(_, body)] = objects(s3, bucket, "r/")
    assert body.splitlines()[1:] == [b'"7","inner","2","1"', b'"5","outer","2","1"']
    del Sneaky
    gc.collect()
