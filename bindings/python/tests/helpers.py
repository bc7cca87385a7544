"""Helpers of the s3sink tests: bucket listings, Pathway runs, streaming subjects."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pathway as pw

TESTS_DIR = Path(__file__).resolve().parent
ROOT = TESTS_DIR.parents[2]


def wait_for(pred, timeout: float = 20.0, period: float = 0.02) -> bool:
    """Polls pred until it is true or timeout seconds have passed; its last answer."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(period)
    return bool(pred())


def objects(s3, bucket: str, prefix: str = "") -> list[tuple[str, bytes]]:
    """(key, body) of every object under prefix, in key order."""
    out = []
    token = None
    while True:
        kw: dict[str, Any] = {"Bucket": bucket, "Prefix": prefix}
        if token:
            kw["ContinuationToken"] = token
        resp = s3.list_objects_v2(**kw)
        for o in resp.get("Contents", []):
            body = s3.get_object(Bucket=bucket, Key=o["Key"])["Body"].read()
            out.append((o["Key"], body))
        if not resp.get("IsTruncated"):
            return out
        token = resp["NextContinuationToken"]


def zstd_content_size(frame: bytes) -> int | None:
    """The content size a zstd frame's header records (None if it records none)."""
    assert frame[:4] == b"\x28\xb5\x2f\xfd", "not a zstd frame"
    descriptor = frame[4]
    size_flag, single_segment = descriptor >> 6, (descriptor >> 5) & 1
    at = 5 + (0 if single_segment else 1) + (0, 1, 2, 4)[descriptor & 3]  # window, dictionary id
    width = (1 if single_segment else 0, 2, 4, 8)[size_flag]
    if width == 0:
        return None
    size = int.from_bytes(frame[at : at + width], "little")
    return size + 256 if width == 2 else size


def unpack(key: str, body: bytes) -> bytes:
    """An object's content: .gz and .zst objects decompressed (stdlib zlib, pyarrow's
    zstd), each checked to be one gzip member, or one zstd frame whose header records the
    size of all of the content; other objects as they are."""
    if key.endswith(".gz"):
        import zlib

        inflater = zlib.decompressobj(wbits=31)  # gzip
        content = inflater.decompress(body)
        assert inflater.eof and not inflater.unused_data, f"{key}: not exactly one gzip member"
        return content
    if key.endswith(".zst"):
        import pyarrow as pa

        content = pa.CompressedInputStream(pa.BufferReader(body), "zstd").read()
        assert zstd_content_size(body) == len(content), f"{key}: not one frame with its content size"
        return content
    return body


def keys(s3, bucket: str, prefix: str = "") -> list[str]:
    resp = s3.list_objects_v2(Bucket=bucket, Prefix=prefix)
    return [o["Key"] for o in resp.get("Contents", [])]


def run() -> None:
    pw.run(monitoring_level=pw.MonitoringLevel.NONE)


def table_rows(table: pw.Table, columns: list[str] | None = None) -> list[tuple]:
    """The rows of a table (static run), sorted, as tuples in column order."""
    keys_, cols = pw.debug.table_to_dicts(table)
    names = columns or list(table.schema.column_names())
    return sorted((tuple(cols[c][k] for c in names) for k in keys_), key=repr)


def read_back(
    path: str,
    settings,
    fmt: str,
    schema: type[pw.Schema],
    *,
    reader: str = "minio",
) -> list[tuple]:
    """Reads objects back with pw.io.minio.read / pw.io.s3.read (static) and returns the
    sorted rows. Pathway's graph is cleared before and after."""
    from pathway.internals.parse_graph import G

    G.clear()
    if reader == "minio":
        t = pw.io.minio.read(path, settings, fmt, schema=schema, mode="static")
    else:
        aws = settings.create_aws_settings() if hasattr(settings, "create_aws_settings") else settings
        t = pw.io.s3.read(path, fmt, aws_s3_settings=aws, schema=schema, mode="static")
    rows = table_rows(t)
    G.clear()
    return rows


class ScriptedSubject(pw.io.python.ConnectorSubject):
    """Emits rows by a plan of ("row", dict), ("sleep", seconds), ("commit",) and
    ("mark", name) steps, recording the monotonic time of every mark and row."""

    def __init__(self, plan: list[tuple]) -> None:
        super().__init__()
        self.plan = plan
        self.marks: dict[str, float] = {}
        self.row_times: list[float] = []

    def run(self) -> None:
        for step in self.plan:
            kind = step[0]
            if kind == "row":
                self.next(**step[1])
                self.row_times.append(time.monotonic())
            elif kind == "sleep":
                time.sleep(step[1])
            elif kind == "commit":
                self.commit()
            elif kind == "mark":
                self.marks[step[1]] = time.monotonic()
            else:
                raise ValueError(step)


class ObjectWatcher:
    """Polls a bucket in a thread and records when each key first appeared."""

    def __init__(self, client, bucket: str, prefix: str = "", period: float = 0.05) -> None:
        self.client = client
        self.bucket = bucket
        self.prefix = prefix
        self.period = period
        self.first_seen: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self.errors: list[BaseException] = []

    def _scan(self) -> None:
        try:
            for k in keys(self.client, self.bucket, self.prefix):
                self.first_seen.setdefault(k, time.monotonic())
        except Exception as e:  # noqa: BLE001
            self.errors.append(e)

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._scan()
            self._stop.wait(self.period)

    def __enter__(self) -> "ObjectWatcher":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self._scan()  # what the end of the run uploaded

    def times(self) -> list[float]:
        return sorted(self.first_seen.values())


def free_port_range(n: int = 8) -> int:
    """A first port such that a few ports from it are probably free (pathway spawn)."""
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            base = s.getsockname()[1]
        if base + n >= 65535:
            continue
        ok = True
        for p in range(base, base + n):
            with socket.socket() as s:
                try:
                    s.bind(("127.0.0.1", p))
                except OSError:
                    ok = False
                    break
        if ok:
            return base
    raise RuntimeError("no free port range")


def python_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(extra)
    return env


def spawn(
    script: Path | str,
    args: list[str],
    *,
    threads: int = 1,
    processes: int = 1,
    timeout: float = 180,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess:
    """Runs a script with `pathway spawn -t threads -n processes`."""
    cmd = [
        sys.executable,
        "-m",
        "pathway",
        "spawn",
        "-t",
        str(threads),
        "-n",
        str(processes),
        "--first-port",
        str(free_port_range(processes * threads + 4)),
        sys.executable,
        str(script),
        *args,
    ]
    return subprocess.run(
        cmd, capture_output=True, text=True, timeout=timeout, env=env or python_env()
    )


# --- fault tests -------------------------------------------------------------------------


def minio_binary() -> str:
    """The MinIO server binary (`make deps-minio` builds it)."""
    found = os.environ.get("MINIO_BIN")
    if not found:
        found = subprocess.run(
            ["make", "-s", "print-minio-bin"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
    return found


class MinioServer:
    """A MinIO of its own on a free loopback port, which a test may kill and start again
    (same port, same data). `env` adds to its environment (MINIO_REGION, MINIO_DOMAIN,
    ...); with `certs_dir` (holding public.crt and private.key) it serves HTTPS."""

    def __init__(self, data_dir: Path, access_key: str, secret_key: str,
                 env: dict[str, str] | None = None, certs_dir: Path | None = None) -> None:
        self.data_dir = data_dir
        self.access_key, self.secret_key = access_key, secret_key
        self.env = dict(env or {})
        self.certs_dir = certs_dir
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.endpoint = f"{'https' if certs_dir else 'http'}://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 30) -> None:
        env = dict(os.environ, MINIO_ROOT_USER=self.access_key, MINIO_ROOT_PASSWORD=self.secret_key,
                   MINIO_BROWSER="off", MINIO_UPDATE="off", **self.env)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            console = s.getsockname()[1]
        certs = ["--certs-dir", str(self.certs_dir)] if self.certs_dir else []
        self.proc = subprocess.Popen(
            [minio_binary(), "server", "--quiet", "--address", f"127.0.0.1:{self.port}",
             "--console-address", f"127.0.0.1:{console}", *certs, str(self.data_dir)],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        import ssl
        import urllib.request

        context = ssl.create_default_context(cafile=str(self.certs_dir / "public.crt")) if self.certs_dir else None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(self.endpoint + "/minio/health/ready", timeout=1, context=context)
                return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("MinIO did not start")

    def kill(self) -> None:
        if self.proc:
            self.proc.kill()
            self.proc.wait()
            self.proc = None

    def client(self, region: str = "us-east-1"):
        import boto3
        from botocore.config import Config

        return boto3.client("s3", endpoint_url=self.endpoint, aws_access_key_id=self.access_key,
                            aws_secret_access_key=self.secret_key, region_name=region,
                            verify=str(self.certs_dir / "public.crt") if self.certs_dir else None,
                            config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 10}))

    def __enter__(self) -> "MinioServer":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.kill()


def count_ids(s3, bucket: str, prefix: str = "", keep=lambda key: True) -> dict[int, list[int]]:
    """Every row of the JSON Lines objects under prefix (whose key `keep` accepts;
    compressed ones decompressed): id -> the times it came with."""
    import json

    found: dict[int, list[int]] = {}
    for key, body in objects(s3, bucket, prefix):
        if not keep(key):
            continue
        for line in unpack(key, body).decode().splitlines():
            row = json.loads(line)
            found.setdefault(row["id"], []).append(row["time"])
    return found


def count_rows(s3, bucket: str, prefix: str = "") -> "Counter[tuple[int, int, int]]":
    """Every row of the JSON Lines objects under prefix (compressed ones decompressed):
    (id, time, diff) -> how many times it is stored."""
    from collections import Counter

    return Counter((row["id"], row["time"], row["diff"]) for key, body in objects(s3, bucket, prefix)
                   for row in map(json.loads, unpack(key, body).decode().splitlines()))


def loss_report(found: dict[int, list[int]], expected: set[int],
                stored: "Counter[tuple[int, int, int]] | None" = None,
                delivered: "Counter[tuple[int, int, int]] | None" = None) -> dict[str, int]:
    """lost: expected ids not in the bucket; duplicated: rows stored twice (same id and
    time: the sink's doing); redelivered: ids Pathway delivered again at another time
    (its at-least-once replay after a restart).

    With `stored` (count_rows) and `delivered` (each (id, time, diff) -> how many times
    Pathway gave it to the writer), duplicated counts only the rows stored more often
    than Pathway delivered them, and resent the rows stored twice with the same id and
    time because Pathway delivered them so (e.g. an input file it read, retracted and read
    again within one minibatch: the same id, time and values with diff +1, -1, +1)."""
    report = {
        "expected": len(expected),
        "lost": len(expected - set(found)),
        "duplicated": sum(len(t) - len(set(t)) for t in found.values()),
        "redelivered": sum(1 for t in found.values() if len(set(t)) > 1),
    }
    if stored is not None and delivered is not None:
        twice = report["duplicated"]
        report["duplicated"] = sum(max(0, n - delivered[k]) for k, n in stored.items())
        report["resent"] = max(0, twice - report["duplicated"])
    return report


class AckRecorder:
    """Records the ids of every minibatch whose on_time_end returned: what the writer
    acknowledged to Pathway (its rows arrive through on_change or on_engine_change)."""

    def __init__(self) -> None:
        from s3sink import _pathway

        self._cls = _pathway._S3Observer
        self._orig = (self._cls.on_change, self._cls.on_engine_change, self._cls.on_time_end)
        self.pending: dict[int, list[int]] = {}
        self.acked: set[int] = set()
        change, engine_change, time_end = self._orig
        recorder = self

        def on_change(obs, key, row, time, is_addition):
            change(obs, key, row, time, is_addition)
            recorder.pending.setdefault(time, []).append(row["id"])

        def on_engine_change(obs, key, values, time, diff):
            engine_change(obs, key, values, time, diff)
            recorder.pending.setdefault(time, []).append(values[[c[0] for c in obs.columns].index("id")])

        def on_time_end(obs, time):
            time_end(obs, time)
            recorder.acked.update(recorder.pending.pop(time, []))

        self._cls.on_change, self._cls.on_engine_change, self._cls.on_time_end = (
            on_change, on_engine_change, on_time_end)

    def __enter__(self) -> "AckRecorder":
        return self

    def __exit__(self, *exc) -> None:
        self._cls.on_change, self._cls.on_engine_change, self._cls.on_time_end = self._orig
