"""docker-compose.yml and its demo image, without a Docker engine: the Compose
implementation validates the file (`docker compose config`, or Debian's docker-compose),
and the services are checked against what they serve: MinIO with a health check, a
one-shot bucket creator for the buckets the README and the demo use, and a demo service
whose settings are the ones bindings/python/examples/demo.py reads."""

from __future__ import annotations

import ast
import shlex
import shutil
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

import buildmk  # conftest put the repository's tools/ on the path

ROOT = Path(__file__).resolve().parents[3]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
DEMO = ROOT / "bindings" / "python" / "examples" / "demo.py"


def _demo_settings() -> tuple[set[str], str]:
    """The environment variables demo.py reads and the bucket it writes to."""
    tree = ast.parse(DEMO.read_text())
    names, bucket = set(), None
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            f = node.func
            called = f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else ""
            if called in ("env", "getenv") or (
                called == "get" and isinstance(f, ast.Attribute) and ast.unparse(f.value) == "os.environ"
            ):
                names.add(node.args[0].value)
        if isinstance(node, ast.Assign) and [ast.unparse(t) for t in node.targets] == ["BUCKET"]:
            bucket = node.value.value
    assert names and bucket, (names, bucket)
    return names, bucket


def _environment(service: dict) -> dict[str, str]:
    env = service.get("environment", {})
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {k: str(v) for k, v in env.items()}


def _pinned(image: str, repository: str) -> None:
    name, _, tag = image.partition(":")
    assert name == repository and tag and tag != "latest", image


def test_minio_serves_on_9000_with_a_health_check():
    minio = SERVICES["minio"]
    _pinned(minio["image"], "minio/minio")
    assert "9000:9000" in minio["ports"]
    assert minio["command"].split()[:2] == ["server", "/data"]
    env = _environment(minio)
    assert env["MINIO_ROOT_USER"] and env["MINIO_ROOT_PASSWORD"]
    check = minio["healthcheck"]["test"]
    assert check[0] == "CMD" and check[1:] == ["mc", "ready", "local"], check


def test_bucket_creator_makes_the_readme_and_demo_buckets_once_minio_is_healthy():
    creator, minio = SERVICES["create-bucket"], SERVICES["minio"]
    _pinned(creator["image"], "minio/mc")
    assert creator["depends_on"]["minio"]["condition"] == "service_healthy"
    words = shlex.split(creator["entrypoint"])
    assert words[:2] == ["/bin/sh", "-c"], words
    commands = [shlex.split(c) for c in words[2].split("&&")]
    env = _environment(minio)
    assert commands[0] == [
        "mc", "alias", "set", "local", "http://minio:9000", env["MINIO_ROOT_USER"], env["MINIO_ROOT_PASSWORD"],
    ]
    mb = commands[1]
    assert mb[:3] == ["mc", "mb", "--ignore-existing"], mb
    _, demo_bucket = _demo_settings()
    assert {"local/s3sink", f"local/{demo_bucket}"} <= set(mb[3:])
    readme = (ROOT / "README.md").read_text()
    assert "bucket `s3sink`" in readme or 'bucket_name="s3sink"' in readme


def test_demo_service_gets_exactly_the_settings_the_demo_reads():
    demo, minio = SERVICES["demo"], SERVICES["minio"]
    names, _ = _demo_settings()
    env = _environment(demo)
    assert set(env) == names
    endpoint = urlsplit(env["S3SINK_TEST_ENDPOINT"])
    assert (endpoint.scheme, endpoint.hostname, endpoint.port) == ("http", "minio", 9000)
    minio_env = _environment(minio)
    assert env["S3SINK_TEST_ACCESS_KEY"] == minio_env["MINIO_ROOT_USER"]
    assert env["S3SINK_TEST_SECRET_KEY"] == minio_env["MINIO_ROOT_PASSWORD"]
    assert demo["depends_on"]["create-bucket"]["condition"] == "service_completed_successfully"
    assert demo["depends_on"]["minio"]["condition"] == "service_healthy"


def test_demo_image_copies_what_the_build_reads_and_runs_the_demo():
    build = SERVICES["demo"]["build"]
    dockerfile = (ROOT / build["context"] / build["dockerfile"]).read_text()
    copied: set[str] = set()
    for line in dockerfile.splitlines():
        words = line.split()
        if words[:1] == ["COPY"]:
            for src in words[1:-1]:
                assert (ROOT / src).exists(), line
                copied.add(src.rstrip("/"))
    settings = buildmk.read()
    needed = {
        *(d.split("/")[0] for d in settings["RUNTIME_DIR"] + settings["PUBLIC_INCLUDE_DIR"]),
        *(g.split("/")[0] for g in settings["SCRIPT_GLOBS"]),
        "build.mk", "tools/buildmk.py", "tools/embed_scripts.lua", "bindings/python",
    }
    assert needed <= copied, needed - copied
    for pkg in ("lua5.4", "liblua5.4-dev", "libcurl4-openssl-dev", "libssl-dev", "pkg-config", "gcc"):
        assert f" {pkg}" in dockerfile, pkg
    cmd = [line for line in dockerfile.splitlines() if line.startswith("CMD ")][-1]
    assert str(DEMO.relative_to(ROOT)) in cmd, cmd
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".venv", "build", "**/*.so"} <= set(ignored)


def _compose_command() -> list[str]:
    """Docker's compose plugin where it is installed, else Debian's docker-compose (1.29,
    which `make deps-apt` installs): both validate the file against the Compose schema
    without a Docker engine."""
    if shutil.which("docker"):
        probe = subprocess.run(["docker", "compose", "version"], capture_output=True)
        if probe.returncode == 0:
            return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    pytest.fail("neither `docker compose` nor docker-compose: `make deps-apt` installs docker-compose")


def test_compose_config_accepts_it(tmp_path):
    compose = _compose_command()
    res = subprocess.run(
        [*compose, "--profile", "demo", "config", "--quiet"], cwd=ROOT, capture_output=True, text=True
    )
    assert res.returncode == 0, res.stdout + res.stderr
    # and it is a validator: a misspelt condition is refused
    broken = tmp_path / "docker-compose.yml"
    text = (ROOT / "docker-compose.yml").read_text()
    broken.write_text(text.replace("service_completed_successfully", "service_finished"))
    res = subprocess.run(
        [*compose, "--profile", "demo", "config", "--quiet"], cwd=tmp_path, capture_output=True, text=True
    )
    assert res.returncode != 0 and "service_finished" in res.stdout + res.stderr
