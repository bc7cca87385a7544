"""Shared fixtures of the s3sink Python tests.

The tests use the extension built in place in bindings/python/s3sink (rebuilt here when a
C, header or Lua source is newer than it; S3SINK_PY_BUILD=<dir> tests a package built
elsewhere instead, e.g. with S3SINK_SANITIZE=1), a real MinIO (tools/run-tests or
tools/with-minio export S3SINK_TEST_ENDPOINT, S3SINK_TEST_ACCESS_KEY and
S3SINK_TEST_SECRET_KEY) and the real Pathway of the virtual environment.
"""

from __future__ import annotations

import glob
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

PKG_DIR = Path(__file__).resolve().parents[1]
ROOT = PKG_DIR.parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import buildmk  # noqa: E402  (the build settings shared with the Makefile and setup.py)


def _ensure_built() -> None:
    sos = glob.glob(str(PKG_DIR / "s3sink" / "_s3sink*.so"))
    build = buildmk.read()
    globs = [
        *(f"{d}/*.[ch]" for d in build["RUNTIME_DIR"]),
        *(f"{d}/*.h" for d in build["PUBLIC_INCLUDE_DIR"]),
        *build["SCRIPT_GLOBS"],
    ]
    sources = [
        *(str(ROOT / p) for g in globs for p in glob.glob(g, root_dir=ROOT)),
        *glob.glob(str(PKG_DIR / "src" / "*.[ch]")),
        str(PKG_DIR / "setup.py"),
        buildmk.BUILD_MK,
        buildmk.__file__,
    ]
    newest = max(os.path.getmtime(s) for s in sources)
    if sos and min(os.path.getmtime(s) for s in sos) >= newest:
        return
    subprocess.run(
        [sys.executable, "setup.py", "-q", "build_ext", "--inplace"],
        cwd=PKG_DIR,
        check=True,
        stdout=subprocess.DEVNULL,
    )


# S3SINK_PY_BUILD: a directory holding an already built s3sink package to test instead
# (e.g. one built with S3SINK_SANITIZE=1 into build/asan/python)
IMPORT_DIR = Path(os.environ.get("S3SINK_PY_BUILD") or PKG_DIR).resolve()
if IMPORT_DIR == PKG_DIR:
    _ensure_built()
sys.path.insert(0, str(IMPORT_DIR))
os.environ["PYTHONPATH"] = os.pathsep.join(
    p for p in (str(IMPORT_DIR), os.environ.get("PYTHONPATH")) if p
)
# tests pick their settings explicitly; a developer's AWS setup must not leak in
for _var in (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_S3",
    "AWS_ENDPOINT_URL_STS",
    "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_ROLE_ARN",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_EC2_METADATA_SERVICE_ENDPOINT",
):
    os.environ.pop(_var, None)
os.environ["AWS_SHARED_CREDENTIALS_FILE"] = os.devnull
os.environ["AWS_CONFIG_FILE"] = os.devnull
# botocore's chain ends with the EC2 metadata service: no waiting for it to time out in
# tests without credentials (test_credentials.py serves one of its own)
os.environ["AWS_EC2_METADATA_DISABLED"] = "true"

import s3sink  # noqa: E402  (after the build)

assert Path(s3sink.__file__).resolve().parent == IMPORT_DIR / "s3sink", s3sink.__file__


class MinioEnv:
    def __init__(self, endpoint: str, access_key: str, secret_key: str) -> None:
        self.endpoint = endpoint
        self.access_key = access_key
        self.secret_key = secret_key

    def client(self):
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            region_name="us-east-1",
            config=Config(s3={"addressing_style": "path"}),
        )


@pytest.fixture(scope="session")
def minio() -> MinioEnv:
    endpoint = os.environ.get("S3SINK_TEST_ENDPOINT")
    if not endpoint:
        pytest.skip("no MinIO: run through tools/run-tests or tools/with-minio")
    return MinioEnv(
        endpoint,
        os.environ["S3SINK_TEST_ACCESS_KEY"],
        os.environ["S3SINK_TEST_SECRET_KEY"],
    )


@pytest.fixture(scope="session")
def s3(minio):
    return minio.client()


@pytest.fixture
def bucket(s3) -> str:
    """A fresh, empty bucket for one test."""
    name = "t-" + uuid.uuid4().hex[:20]
    s3.create_bucket(Bucket=name)
    return name


@pytest.fixture
def minio_settings(minio, bucket):
    import pathway as pw

    return pw.io.minio.MinIOSettings(
        endpoint=minio.endpoint,
        bucket_name=bucket,
        access_key=minio.access_key,
        secret_access_key=minio.secret_key,
        region="us-east-1",
    )


@pytest.fixture
def writer_kwargs(minio, bucket):
    """Keyword arguments of s3sink.Writer for the test bucket."""
    return dict(
        endpoint=minio.endpoint,
        bucket=bucket,
        access_key=minio.access_key,
        secret_key=minio.secret_key,
    )


@pytest.fixture
def proxy(minio):
    """A fault proxy in front of the test MinIO (see faultproxy.py); passes everything
    until a test sets its rule."""
    from faultproxy import FaultProxy

    with FaultProxy(minio.endpoint) as p:
        yield p


@pytest.fixture
def proxied_kwargs(writer_kwargs, proxy):
    """writer_kwargs, through the fault proxy."""
    return {**writer_kwargs, "endpoint": proxy.endpoint}


@pytest.fixture(autouse=True)
def _fresh_pathway_graph():
    """Every test builds its own Pathway graph (in this process)."""
    if "pathway" in sys.modules:
        from pathway.internals.parse_graph import G

        G.clear()
    yield
    if "pathway" in sys.modules:
        from pathway.internals.parse_graph import G

        G.clear()


@pytest.fixture(params=["fast", "fallback"])
def pathway_path(request, monkeypatch) -> str:
    """Runs a test over both ways the writers attach to Pathway: the engine's callback
    sink (s3sink._fastpath) and the public pw.io.python.write observer (forced with
    S3SINK_PATHWAY_FAST_PATH=0, which subprocesses inherit)."""
    monkeypatch.setenv("S3SINK_PATHWAY_FAST_PATH", "1" if request.param == "fast" else "0")
    return request.param
