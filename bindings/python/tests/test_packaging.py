"""The distributions a user installs: `python -m build` makes the sdist, then the wheel from
that sdist; each goes into a fresh virtual environment (no Pathway, no checkout on the
path), where the installed package writes to the real MinIO with a bundled format and the
test reads the object back."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tarfile
import venv
import zipfile
from pathlib import Path

import pytest

import buildmk  # conftest put the repository's tools/ on the path
from helpers import objects

PKG_DIR = Path(__file__).resolve().parents[1]
ROOT = PKG_DIR.parents[1]

pytestmark = pytest.mark.skipif(
    bool(os.environ.get("S3SINK_PY_BUILD")),
    reason="the distributions are built and checked in the plain run; this run tests a "
    "package built elsewhere (S3SINK_PY_BUILD)",
)

VERSION = re.search(r'(?m)^version = "([^"]+)"$', (PKG_DIR / "pyproject.toml").read_text())[1]

# Run in the fresh environment: the installed s3sink, not the checkout's, writes two rows.
CHILD = r"""
import json, sys
from pathlib import Path
import s3sink
where = Path(s3sink.__file__).resolve()
assert where.is_relative_to(Path(sys.prefix).resolve()), where
options = json.loads(sys.argv[1])
w = s3sink.Writer(**options, columns=[("id", "int"), ("name", "str", True)])
w.on_change(None, {"id": 1, "name": "alice"}, 2, True)
w.on_change(None, {"id": 2, "name": None}, 2, True)
w.on_time_end(2)
w.close()
print(json.dumps({"file": str(where), "version": s3sink.__version__, "key": w.last_key,
                  "formats": list(s3sink.bundled("format"))}))
"""


def _clean_env() -> dict[str, str]:
    """The environment without what the test run adds for itself (the checkout's package
    on PYTHONPATH, sanitizer preloads)."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("PYTHONPATH", "LD_PRELOAD", "PYTHONMALLOC", "PYTHONHOME", "VIRTUAL_ENV")
    }
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return env


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    res = subprocess.run(args, cwd=cwd, env=_clean_env(), capture_output=True, text=True)
    assert res.returncode == 0, f"{args}\n{res.stdout[-3000:]}\n{res.stderr[-5000:]}"
    return res


@pytest.fixture(scope="module")
def dists(tmp_path_factory) -> dict[str, Path]:
    """`python -m build`: the sdist from the checkout, then the wheel from the sdist."""
    out = tmp_path_factory.mktemp("dist")
    _run([sys.executable, "-m", "build", "--outdir", str(out), str(PKG_DIR)], cwd=out)
    sdists, wheels = list(out.glob("s3sink-*.tar.gz")), list(out.glob("s3sink-*.whl"))
    assert len(sdists) == 1 and len(wheels) == 1, sorted(p.name for p in out.iterdir())
    return {"sdist": sdists[0], "wheel": wheels[0]}


def _fresh_env(path: Path) -> Path:
    venv.create(path, with_pip=True, clear=True)
    return path / "bin" / "python"


def _install_and_write(dist: Path, where: Path, options: dict) -> dict:
    python = _fresh_env(where / "venv")
    _run([str(python), "-m", "pip", "install", "-q", str(dist)], cwd=where)
    res = _run([str(python), "-c", CHILD, json.dumps(options)], cwd=where)
    return json.loads(res.stdout.strip().splitlines()[-1])


def _repository_build_inputs() -> set[str]:
    """What the extension's build reads from the repository's root (build.mk's globs,
    the settings and the scripts' embedder), relative to it."""
    settings = buildmk.read()
    globs = [
        *(f"{d}/*.[ch]" for d in settings["RUNTIME_DIR"]),
        *(f"{d}/*.h" for d in settings["PUBLIC_INCLUDE_DIR"]),
        *settings["SCRIPT_GLOBS"],
    ]
    found = {str(p.relative_to(ROOT)) for g in globs for p in ROOT.glob(g)}
    return found | {"build.mk", "tools/buildmk.py", "tools/embed_scripts.lua"}


def test_sdist_carries_the_runtime_and_the_scripts(dists):
    top = f"s3sink-{VERSION}/"
    with tarfile.open(dists["sdist"]) as tar:
        names = {m.name[len(top):] for m in tar.getmembers() if m.isfile()}
        inputs = _repository_build_inputs()
        assert {"formats/csv.lua", "formats/json.lua", "scripts/naming/default.lua"} <= inputs
        missing = inputs - names
        assert not missing, f"not in the sdist: {sorted(missing)}"
        for rel in ("formats/csv.lua", "runtime/include/s3sink.h", "build.mk"):
            assert tar.extractfile(top + rel).read() == (ROOT / rel).read_bytes(), rel
    assert {"setup.py", "pyproject.toml", "MANIFEST.in", "src/pyext.h", "s3sink/py.typed"} <= names
    assert not [n for n in names if n.startswith("tests/") or n.endswith((".so", ".o"))]


def test_wheel_holds_the_extension_and_the_metadata(dists):
    with zipfile.ZipFile(dists["wheel"]) as whl:
        names = set(whl.namelist())
        metadata = whl.read(f"s3sink-{VERSION}.dist-info/METADATA").decode()
        entry_points = whl.read(f"s3sink-{VERSION}.dist-info/entry_points.txt").decode()
    assert [n for n in names if n.startswith("s3sink/_s3sink.") and n.endswith(".so")]
    assert {"s3sink/__init__.py", "s3sink/_s3sink.pyi", "s3sink/py.typed", "s3sink/cli.py"} <= names
    assert not [n for n in names if n.startswith(("runtime/", "formats/", "tests/"))]
    assert "Requires-Python: >=3.10" in metadata
    assert "[console_scripts]\ns3sink = s3sink.cli:main" in entry_points
    assert "Requires-Dist: typing_extensions>=4.0; python_version < \"3.11\"" in metadata


@pytest.mark.parametrize("kind,fmt", [("sdist", "csv"), ("wheel", "json")])
def test_installed_package_writes_with_a_bundled_format(
    kind, fmt, dists, tmp_path, s3, bucket, writer_kwargs
):
    got = _install_and_write(
        dists[kind], tmp_path, {**writer_kwargs, "prefix": f"{kind}/", "format": fmt}
    )
    assert got["version"] == VERSION
    assert "site-packages" in got["file"]
    assert got["formats"] == ["csv", "json"]
    [(key, body)] = objects(s3, bucket, f"{kind}/")
    assert key == got["key"] and key.endswith("." + fmt)
    if fmt == "csv":
        assert body == b'"id","name","time","diff"\n"1","alice","2","1"\n"2","None","2","1"\n'
    else:
        assert body == (
            b'{"id":1,"name":"alice","diff":1,"time":2}\n{"id":2,"name":null,"diff":1,"time":2}\n'
        )
    # the command the package installs: two lines through the console script
    script = tmp_path / "venv" / "bin" / "s3sink"
    env = {**_clean_env(), "AWS_ACCESS_KEY_ID": writer_kwargs["access_key"],
           "AWS_SECRET_ACCESS_KEY": writer_kwargs["secret_key"]}
    res = subprocess.run([str(script), "--endpoint", writer_kwargs["endpoint"], "--format", fmt,
                          f"s3://{bucket}/{kind}-command"], input=b"one\ntwo\n", env=env,
                         capture_output=True, cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    [(key, body)] = objects(s3, bucket, f"{kind}-command/")
    assert key.endswith("." + fmt) and body.count(b"one") == 1 and body.count(b"two") == 1
