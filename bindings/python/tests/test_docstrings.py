"""The Pathway writers' docstrings: Pathway's layout (summary, Args:, Returns:, Example:),
every parameter and every writer option documented (the options from the runtime's
table), and examples that run. The pw.io.minio.write and pw.io.s3.write examples run as
doctests against a MinIO of their own, and the object they upload is the one the
docstring shows; the DigitalOcean and Wasabi ones (services the tests cannot reach)
compile."""

from __future__ import annotations

import doctest
import inspect
import re
import textwrap

import pathway as pw
import pytest

import s3sink
from s3sink import _pathway

from helpers import MinioServer, objects

WRITERS = {
    "pw.io.s3.write": pw.io.s3.write,
    "pw.io.s3.write_to_digital_ocean": pw.io.s3.write_to_digital_ocean,
    "pw.io.s3.write_to_wasabi": pw.io.s3.write_to_wasabi,
    "pw.io.minio.write": pw.io.minio.write,
}


def sections(doc: str) -> dict[str, str]:
    """Pathway's docstring sections (a line "Name:" at the docstring's indentation) and
    their text; "" holds the text before the first."""
    doc = inspect.cleandoc(doc)
    out, name = {"": []}, ""
    for line in doc.split("\n"):
        m = re.fullmatch(r"(Args|Returns|Example):", line)
        if m:
            name = m[1]
            assert name not in out, f"section {name} twice"
            out[name] = []
        else:
            out[name].append(line)
    return {k: "\n".join(v) for k, v in out.items()}


def code_blocks(text: str, language: str) -> list[str]:
    """The contents of the `.. code-block:: language` blocks of a docstring section."""
    blocks = re.findall(rf"\.\. code-block:: {language}\n\n((?:(?: {{4}}.*)?\n)+)", text + "\n")
    return [textwrap.dedent(b).strip("\n") for b in blocks]


@pytest.mark.parametrize("qualname", sorted(WRITERS))
def test_docstring_layout(qualname):
    fn = WRITERS[qualname]
    parts = sections(fn.__doc__)
    assert list(parts) == ["", "Args", "Returns", "Example"]
    assert parts[""].strip(), "a summary"
    assert parts["Returns"].strip() == "None"
    documented = re.findall(r"^    (\w+): ", parts["Args"], re.M)
    params = [p for p, v in inspect.signature(fn).parameters.items() if v.kind is not v.VAR_KEYWORD]
    # every parameter, in the signature's order, then the runtime's writer options
    assert documented == params + list(_pathway._WRITER_OPTIONS)
    for name in _pathway._WRITER_OPTIONS:  # the entry comes from the runtime's table
        doc = " ".join(next(o for o in s3sink.options() if o["name"] == name)["doc"].split())
        entry = re.search(rf"^    {name}: (.*?)(?=^    \w+: |\Z)", parts["Args"], re.M | re.S)[1]
        assert doc in " ".join(entry.split()), name
    assert ">>> " in parts["Example"]


@pytest.mark.parametrize("qualname", sorted(WRITERS))
def test_examples_compile(qualname):
    example = sections(WRITERS[qualname].__doc__)["Example"]
    test = doctest.DocTestParser().get_doctest(example, {}, qualname, None, 0)
    assert test.examples
    for ex in test.examples:
        compile(ex.source, qualname, "single")
    for block in code_blocks(example, "python"):
        compile(block, qualname, "exec")


@pytest.fixture
def example_server(tmp_path, monkeypatch):
    """A MinIO of its own (the examples use the bucket "datasets"), its endpoint and keys
    in the variables the examples read."""
    with MinioServer(tmp_path / "data", "example", "example-secret") as server:
        for prefix in ("MINIO_S3", "S3"):
            monkeypatch.setenv(f"{prefix}_ENDPOINT", server.endpoint)
            monkeypatch.setenv(f"{prefix}_ACCESS_KEY", "example")
            monkeypatch.setenv(f"{prefix}_SECRET_ACCESS_KEY", "example-secret")
        yield server


def run_example(qualname: str) -> None:
    doc = WRITERS[qualname].__doc__
    test = doctest.DocTestParser().get_doctest(inspect.cleandoc(doc), {}, qualname, None, 0)
    runner = doctest.DocTestRunner(optionflags=doctest.NORMALIZE_WHITESPACE)
    runner.run(test)
    assert runner.failures == 0, f"{qualname}: its example failed (doctest report above)"


@pytest.mark.parametrize(
    "qualname,language",
    [("pw.io.minio.write", "csv"), ("pw.io.s3.write", "json")],
)
def test_examples_run_against_minio(qualname, language, example_server):
    run_example(qualname)
    ((key, body),) = objects(example_server.client(), "datasets", "animals/")
    assert re.fullmatch(rf"animals/\d{{8}}T\d{{6}}\.\d{{3}}Z-0000000000\.{language}", key)
    (shown,) = code_blocks(sections(WRITERS[qualname].__doc__)["Example"], language)
    assert body.decode() == shown + "\n"
