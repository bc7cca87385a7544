"""The oldest Python the package claims (requires-python in pyproject.toml, 3.10 as
Pathway) is checked here, since only one Python runs the tests:

- the extension's C sources name no C API function, macro or constant that Python added
  after it, except under a `PY_VERSION_HEX` guard: the sources are preprocessed as that
  Python would see them (its PY_VERSION_HEX, Python's own headers left out so that every
  API name stays as written) and the identifiers are checked against NEWER_C_API below
  (from the "What's New" C API sections; docs/packaging.md);
- the package's Python code (and setup.py, tools/buildmk.py, the demo) needs no newer
  Python, by vermin;
- the 3.10 replacement of PyType_GetModuleByDef (module.c) finds the module's state from
  a Python subclass of Writer.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

import buildmk  # conftest put the repository's tools/ on the path
import s3sink

PKG_DIR = Path(__file__).resolve().parents[1]
ROOT = PKG_DIR.parents[1]

REQUIRES = re.search(r'(?m)^requires-python = ">=(\d+)\.(\d+)"$', (PKG_DIR / "pyproject.toml").read_text())
MIN_PYTHON = (int(REQUIRES[1]), int(REQUIRES[2]))

# C API names by the Python version that added them (3.11 on). A new name the extension
# starts to use that is missing here is the gap of this check: add it with its version.
NEWER_C_API: dict[tuple[int, int], str] = {
    (3, 11): """
        PyType_GetModuleByDef PyType_GetName PyType_GetQualName
        PyThreadState_EnterTracing PyThreadState_LeaveTracing
        PyFloat_Pack2 PyFloat_Pack4 PyFloat_Pack8 PyFloat_Unpack2 PyFloat_Unpack4 PyFloat_Unpack8
        PyErr_GetHandledException PyErr_SetHandledException
        PyFrame_GetBuiltins PyFrame_GetGenerator PyFrame_GetGlobals PyFrame_GetLasti
        PyFrame_GetLocals PyCode_GetCode PyCode_GetVarnames PyCode_GetCellvars
        PyCode_GetFreevars Py_Version PyExc_BaseExceptionGroup Py_TPFLAGS_MANAGED_DICT
        Py_HASH_SIPHASH13
    """,
    (3, 12): """
        PyErr_GetRaisedException PyErr_SetRaisedException PyErr_DisplayException
        PyException_GetArgs PyException_SetArgs
        PyType_FromMetaclass PyType_GetDict PyObject_GetTypeData PyType_GetTypeDataSize
        PyFrame_GetVar PyFrame_GetVarString Py_TPFLAGS_MANAGED_WEAKREF Py_TPFLAGS_ITEMS_AT_END
        Py_mod_multiple_interpreters Py_MOD_MULTIPLE_INTERPRETERS_SUPPORTED
        Py_MOD_MULTIPLE_INTERPRETERS_NOT_SUPPORTED Py_MOD_PER_INTERPRETER_GIL_SUPPORTED
        PyDict_AddWatcher PyDict_ClearWatcher PyDict_Watch PyDict_Unwatch PyType_AddWatcher
        PyType_Watch PyCode_AddWatcher PyFunction_AddWatcher
        PyUnstable_Long_IsCompact PyUnstable_Long_CompactValue
        Py_T_SHORT Py_T_INT Py_T_LONG Py_T_FLOAT Py_T_DOUBLE Py_T_STRING Py_T_OBJECT_EX
        Py_T_CHAR Py_T_BYTE Py_T_UBYTE Py_T_UINT Py_T_USHORT Py_T_ULONG Py_T_STRING_INPLACE
        Py_T_BOOL Py_T_LONGLONG Py_T_ULONGLONG Py_T_PYSSIZET Py_T_NONE Py_READONLY
        Py_AUDIT_READ Py_RELATIVE_OFFSET
        PyEval_SetProfileAllThreads PyEval_SetTraceAllThreads Py_NewInterpreterFromConfig
    """,
    (3, 13): """
        PyDict_GetItemRef PyDict_GetItemStringRef PyDict_SetDefaultRef PyDict_Pop
        PyDict_PopString PyDict_ContainsString PyList_GetItemRef PyList_Extend PyList_Clear
        PyLong_AsInt PyLong_AsNativeBytes PyLong_FromNativeBytes PyLong_FromUnsignedNativeBytes
        PyImport_AddModuleRef PyModule_Add PyWeakref_GetRef
        PyObject_GetOptionalAttr PyObject_GetOptionalAttrString PyObject_HasAttrWithError
        PyObject_HasAttrStringWithError PyMapping_GetOptionalItem
        PyMapping_GetOptionalItemString PyMapping_HasKeyWithError
        PyMapping_HasKeyStringWithError PyErr_FormatUnraisable
        PyUnicode_EqualToUTF8 PyUnicode_EqualToUTF8AndSize
        PyType_GetFullyQualifiedName PyType_GetModuleName Py_GetConstant Py_GetConstantBorrowed
        Py_IsFinalizing PyTime_t PyTime_Monotonic PyTime_Time PyTime_PerfCounter
        PyTime_AsSecondsDouble PyMutex PyMutex_Lock PyMutex_Unlock
        Py_BEGIN_CRITICAL_SECTION Py_END_CRITICAL_SECTION
        Py_mod_gil Py_MOD_GIL_USED Py_MOD_GIL_NOT_USED PyUnstable_Module_SetGIL
        PyObject_VisitManagedDict PyObject_ClearManagedDict PyObject_GenericHash Py_HashPointer
        PyEval_GetFrameBuiltins PyEval_GetFrameGlobals PyEval_GetFrameLocals
        PyThreadState_GetUnchecked
    """,
    (3, 14): """
        PyUnicodeWriter PyUnicodeWriter_Create PyUnicodeWriter_Finish PyUnicodeWriter_Discard
        PyUnicodeWriter_WriteChar PyUnicodeWriter_WriteUTF8 PyUnicodeWriter_WriteStr
        PyUnicodeWriter_WriteRepr PyUnicodeWriter_Format
        PyLong_IsPositive PyLong_IsNegative PyLong_IsZero PyLong_GetSign
        PyLong_AsInt32 PyLong_AsInt64 PyLong_AsUInt32 PyLong_AsUInt64
        PyLong_FromInt32 PyLong_FromInt64 PyLong_FromUInt32 PyLong_FromUInt64
        PyLongWriter_Create PyLong_Export
        PyIter_NextItem PyImport_ImportModuleAttr PyImport_ImportModuleAttrString
        PyType_Freeze PyType_GetBaseByToken PyBytes_Join Py_HashBuffer
        PyConfig_Get PyConfig_GetInt PyConfig_Set PyConfig_Names Py_fopen Py_fclose
        PyUnstable_Object_IsUniqueReferencedTemporary
    """,
}


def _newer_than(version: tuple[int, int]) -> dict[str, tuple[int, int]]:
    return {name: v for v, names in NEWER_C_API.items() if v > version for name in names.split()}


def _python_header_stubs(folder: Path) -> Path:
    """Empty files named as the installed Python's headers: with them first on the
    include path, the sources' own code is all that the preprocessor expands."""
    include = Path(sysconfig.get_paths()["include"])
    for header in include.rglob("*.h"):
        stub = folder / header.relative_to(include)
        stub.parent.mkdir(parents=True, exist_ok=True)
        stub.write_text("")
    return folder


def _api_uses(source: Path, stubs: Path, version: tuple[int, int]) -> dict[str, str]:
    """The identifiers of `source`, preprocessed for Python `version`, that a later
    Python added: {name: "3.x"}."""
    settings = buildmk.read()
    hexversion = f"0x{version[0]:02X}{version[1]:02X}00F0"
    res = subprocess.run(
        [
            os.environ.get("CC", "cc"), "-E", "-P", *settings["C_STD"], *settings["C_DEFINES"],
            f"-DPY_VERSION_HEX={hexversion}", "-DPY_SSIZE_T_CLEAN", f"-I{stubs}",
            f"-I{PKG_DIR / 'src'}", *(f"-I{ROOT / d}" for d in settings["PUBLIC_INCLUDE_DIR"]),
            *(f"-I{ROOT / d}" for d in settings["RUNTIME_DIR"]), str(source),
        ],
        capture_output=True,
        text=True,
        env={k: v for k, v in os.environ.items() if k != "LD_PRELOAD"},
    )
    assert res.returncode == 0, res.stderr
    # string and character literals may name an API without using it
    code = re.sub(r'"(?:\\.|[^"\\\n])*"|\'(?:\\.|[^\'\\\n])*\'', " ", res.stdout)
    newer = _newer_than(version)
    return {
        name: "%d.%d" % newer[name]
        for name in set(re.findall(r"\b[A-Za-z_]\w*\b", code))
        if name in newer
    }


@pytest.fixture(scope="module")
def stubs(tmp_path_factory) -> Path:
    return _python_header_stubs(tmp_path_factory.mktemp("python-headers"))


def test_requires_python_is_the_minimum_the_classifiers_start_at():
    text = (PKG_DIR / "pyproject.toml").read_text()
    versions = re.findall(r'"Programming Language :: Python :: 3\.(\d+)"', text)
    assert versions and min(int(v) for v in versions) == MIN_PYTHON[1]
    assert MIN_PYTHON <= sys.version_info[:2]


def test_extension_uses_no_c_api_newer_than_requires_python(stubs):
    sources = sorted((PKG_DIR / "src").glob("*.c"))
    assert sources
    found = {str(s.relative_to(PKG_DIR)): _api_uses(s, stubs, MIN_PYTHON) for s in sources}
    found = {source: names for source, names in found.items() if names}
    assert not found, (
        f"C API newer than Python {MIN_PYTHON[0]}.{MIN_PYTHON[1]} (requires-python): use an "
        f"older equivalent or guard it with PY_VERSION_HEX: {found}"
    )


def test_the_c_api_check_finds_an_unguarded_use_and_accepts_a_guarded_one(stubs, tmp_path):
    def probe(guard: str) -> str:
        return (
            '#include "pyext.h"\n'
            "modstate *probe(PyTypeObject *t, PyModuleDef *d) {\n"
            "  PyObject *m = PyType_GetModuleByDef(t, d);\n"
            '  PyErr_SetString(PyExc_TypeError, "not PyErr_GetRaisedException");\n'
            f"#if {guard}\n"
            "  Py_DECREF(PyErr_GetRaisedException());\n"
            "#endif\n"
            "  return PyModule_GetState(m);\n"
            "}\n"
        )

    src = tmp_path / "probe.c"
    src.write_text(probe("PY_VERSION_HEX >= 0x030C0000"))
    assert _api_uses(src, stubs, (3, 10)) == {"PyType_GetModuleByDef": "3.11"}
    assert _api_uses(src, stubs, (3, 11)) == {}
    src.write_text(probe("1"))
    assert _api_uses(src, stubs, (3, 11)) == {"PyErr_GetRaisedException": "3.12"}


def _vermin(*paths: Path) -> subprocess.CompletedProcess:
    target = "%d.%d-" % MIN_PYTHON
    # vermin has no __main__: its script, installed beside the interpreter
    script = Path(sys.executable).with_name("vermin")
    assert script.exists(), f"{script}: vermin is in requirements-test.txt (make deps-python)"
    return subprocess.run(
        [str(script), "--no-tips", "--violations", f"--target={target}", *map(str, paths)],
        capture_output=True,
        text=True,
    )


def test_python_code_needs_no_newer_python():
    res = _vermin(
        PKG_DIR / "s3sink", PKG_DIR / "setup.py", PKG_DIR / "examples", ROOT / "tools" / "buildmk.py"
    )
    assert res.returncode == 0, res.stdout + res.stderr


def test_vermin_reports_newer_python(tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text("import tomllib\n")
    res = _vermin(probe)
    assert res.returncode != 0 and "tomllib" in res.stdout, res.stdout + res.stderr


def test_a_python_subclass_of_writer_finds_the_module_state(writer_kwargs, s3, bucket):
    class Audited(s3sink.Writer):
        pass

    w = Audited(**writer_kwargs, prefix="sub/", columns=[("a", "int")])
    w.on_change(None, {"a": 7}, 2, True)
    w.on_time_end(2)
    w.close()
    body = s3.get_object(Bucket=bucket, Key=w.last_key)["Body"].read()
    assert body == b'"a","time","diff"\n"7","2","1"\n'
    # Formatter finds it from its own class (it cannot be subclassed)
    assert s3sink.Formatter("json", [("a", "int")]).row({"a": 7}, 2) == b'{"a":7,"diff":1,"time":2}\n'
