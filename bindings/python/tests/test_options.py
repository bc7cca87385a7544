"""The runtime's vocabulary in Python: Writer reads its options by the runtime's table,
and options(), column_types() and bundled() expose the tables. No bucket needed: every
case fails (or passes its options) before the network."""

from __future__ import annotations

import ast
import re
import typing
from pathlib import Path

import pytest

import s3sink
from s3sink import _s3sink
from s3sink._options import Names, SinkOptions, Text, WriterOptions

COLS = [("a", "int")]
PY_TYPES = {"str": str, "int": int, "bool": bool, "dict": dict}


def test_options_describe_every_option():
    opts = _s3sink.options()
    names = [o["name"] for o in opts]
    assert len(names) == len(set(names)) and "write_interval_ms" in names
    for o in opts:
        assert set(o) == {"name", "type", "group", "min", "max", "unlimited", "default", "doc", "list"}
        assert not o["list"] or o["type"] == "str"
        assert o["type"] in PY_TYPES
        assert o["group"] in ("target", "output", "transport", "reliability", "host")
        assert o["doc"]
        if o["type"] == "int":
            assert o["min"] <= o["max"]
        else:
            assert o["min"] is None and o["max"] is None and not o["unlimited"]


def test_the_package_exports_the_vocabulary():
    assert (s3sink.options, s3sink.column_types, s3sink.bundled) == (_s3sink.options, _s3sink.column_types, _s3sink.bundled)


def test_column_types_and_bundled_scripts():
    types = _s3sink.column_types()
    assert types[0] == "int" and "any" in types and len(set(types)) == len(types)
    for t in types:  # every type of the table is one the binding converts
        s3sink.Formatter("json", [("v", t, True)]).row({"v": None}, 0)
    assert "csv" in _s3sink.bundled("format") and "json" in _s3sink.bundled("format")
    assert _s3sink.bundled("naming") == ("default", "time_range")
    with pytest.raises(ValueError, match="'neither'"):
        _s3sink.bundled("neither")


def test_a_misspelt_option_gets_the_runtime_suggestion():
    with pytest.raises(s3sink.ConfigError, match="unknown option 'write_intervl_ms': did you mean 'write_interval_ms'"):
        s3sink.Writer(columns=COLS, write_intervl_ms=5)
    with pytest.raises(s3sink.ConfigError, match="unknown option 'zzz': the options are endpoint, "):
        s3sink.Writer(columns=COLS, zzz=1)


@pytest.mark.parametrize("option", [o["name"] for o in _s3sink.options()])
def test_values_of_another_type_are_refused_naming_the_option(option):
    kind = next(o["type"] for o in _s3sink.options() if o["name"] == option)
    wrong = {"str": 5, "int": "5", "bool": 1, "dict": "k=v"}[kind]
    with pytest.raises(TypeError, match=f"option '{option}' must be {kind}"):
        s3sink.Writer(columns=COLS, **{option: wrong})


def test_bools_are_not_integers():
    with pytest.raises(TypeError, match="write_interval_ms"):
        s3sink.Writer(columns=COLS, write_interval_ms=True)


def test_ranges_and_rules_are_the_runtime_s():
    with pytest.raises(s3sink.ConfigError, match="write_interval_ms is 0: it must be 1 or more"):
        s3sink.Writer(columns=COLS, write_interval_ms=0)
    with pytest.raises(s3sink.ConfigError, match="writer_id 'a b' is not valid"):
        s3sink.Writer(columns=COLS, writer_id="a b")
    with pytest.raises(s3sink.ConfigError, match="starts with '/'"):
        s3sink.Writer(columns=COLS, prefix="/p")
    with pytest.raises(s3sink.ConfigError, match="NUL"):
        s3sink.Writer(columns=COLS, bucket="b\0c")


def test_list_options_take_a_list_or_names_separated_by_commas():
    lists = [o["name"] for o in _s3sink.options() if o["list"]]
    assert lists == ["partition_by"]
    # both forms reach the runtime, which checks the names against the columns
    for value in (["a", "zz"], ("a", "zz"), "a,zz"):
        with pytest.raises(s3sink.ConfigError, match="partition_by: 'zz' is not a column of the table; its columns are 'a'"):
            s3sink.Writer(columns=COLS, bucket="b", endpoint="http://127.0.0.1:9", partition_by=value)
    with pytest.raises(TypeError, match="option 'partition_by' must be str or a list of str, not a list holding int"):
        s3sink.Writer(columns=COLS, partition_by=["a", 1])
    with pytest.raises(s3sink.ConfigError, match="the name 'a,b' holds a comma"):
        s3sink.Writer(columns=COLS, partition_by=["a,b"])
    with pytest.raises(s3sink.ConfigError, match="has an empty column name"):
        s3sink.Writer(columns=COLS, partition_by="a,")


def test_none_is_not_given_or_no_limit():
    unlimited = [o["name"] for o in _s3sink.options() if o["unlimited"]]
    assert unlimited
    limited = {o["name"]: None for o in _s3sink.options() if not o["unlimited"]}
    # every option accepted: what stops the writer is the bucket nobody gave
    with pytest.raises(s3sink.ConfigError, match="no bucket given"):
        s3sink.Writer(columns=COLS, **limited, **{name: None for name in unlimited})
    with pytest.raises(s3sink.ConfigError, match="or -1 for no limit"):
        s3sink.Writer(columns=COLS, **{unlimited[0]: -2})


def test_writer_takes_keywords_only():
    with pytest.raises(TypeError, match="keyword arguments only"):
        s3sink.Writer(COLS)
    with pytest.raises(TypeError, match="'columns'"):
        s3sink.Writer(bucket="b")


# --- the types that spell the options for type checkers -------------------------------------

PKG = Path(s3sink.__file__).parent
SRC = Path(__file__).resolve().parents[1] / "src"
WRITER_GROUPS = ("output", "transport", "reliability")


def expected_hint(o: dict) -> object:
    if o["list"]:
        return Names | None
    return {"str": Text, "int": int, "bool": bool, "dict": dict[str, str]}[o["type"]] | None


def test_option_types_match_the_table():
    opts = {o["name"]: o for o in _s3sink.options()}
    sink = typing.get_type_hints(SinkOptions)
    assert set(sink) == set(opts), "SinkOptions must list every option of the runtime"
    assert {name: sink[name] for name in opts} == {name: expected_hint(o) for name, o in opts.items()}
    # the Pathway writers: format is a parameter of its own; target and host options are not theirs
    writer = {name for name, o in opts.items() if o["group"] in WRITER_GROUPS} - {"format"}
    assert set(typing.get_type_hints(WriterOptions)) == writer
    assert set(_pathway_writer_options()) == writer
    assert not SinkOptions.__required_keys__ and not WriterOptions.__required_keys__


def _pathway_writer_options() -> tuple[str, ...]:
    from s3sink import _pathway

    return _pathway._WRITER_OPTIONS


def test_stub_declares_writer_and_vocabulary_from_the_table():
    tree = ast.parse((PKG / "_s3sink.pyi").read_text())
    classes = {n.name: n for n in tree.body if isinstance(n, ast.ClassDef)}
    init = next(f for f in classes["Writer"].body if isinstance(f, ast.FunctionDef) and f.name == "__init__")
    assert [a.arg for a in init.args.kwonlyargs] == ["columns", "credentials", "on_event"] and init.args.args[1:] == []
    assert ast.unparse(init.args.kwarg.annotation) == "Unpack[SinkOptions]"
    column_type = next(n for n in tree.body if isinstance(n, ast.Assign) and n.targets[0].id == "ColumnType")
    assert tuple(ast.literal_eval(e) for e in column_type.value.slice.elts) == _s3sink.column_types()
    option_info = {a.target.id for a in classes["OptionInfo"].body if isinstance(a, ast.AnnAssign)}
    assert option_info == set(_s3sink.options()[0])


def test_stub_declares_the_runtimes_counters(writer_kwargs):
    tree = ast.parse((PKG / "_s3sink.pyi").read_text())
    stats = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "Stats")
    with s3sink.Writer(**writer_kwargs, columns=[("a", "int")]) as w:
        assert [a.target.id for a in stats.body if isinstance(a, ast.AnnAssign)] == list(w.stats)


def test_pathway_writers_take_the_writer_options():
    import pathway as pw

    for fn in (pw.io.s3.write, pw.io.s3.write_to_digital_ocean, pw.io.s3.write_to_wasabi, pw.io.minio.write):
        hints = typing.get_type_hints(fn, include_extras=True)
        assert typing.get_args(hints["options"]) == (WriterOptions,), fn


def test_the_extension_includes_only_public_runtime_headers():
    for source in sorted(SRC.glob("*.[ch]")):
        text = source.read_text()
        assert set(re.findall(r'^#include "([^"]+)"', text, re.M)) <= {"pyext.h", "s3sink.h", "s3sink_text.h"}, source.name
        system = set(re.findall(r"^#include <([^>]+)>", text, re.M))
        assert system <= {"Python.h", "pythread.h", "limits.h", "stdbool.h", "stdint.h", "string.h"}, source.name
