"""`make bench`: s3sink's benchmark (not a test: nothing here passes or fails on speed).

Runs under tools/with-minio (one MinIO for the whole run) with the virtual environment's
Python, and writes docs/benchmarks.md and docs/benchmarks.png. Sections:

  e2e      end to end through Pathway, static CSV input, one process per variant and run
  stream   a rate-limited stream: objects, PUTs counted by a proxy, emission-to-listable latency
  core     build/core_bench: the runtime's per-row path alone (no uploads)
  upload   MiB/s of one object of each size: s3sink's forced flush vs boto3 put_object
  memory   RSS over time while streaming many rows through s3sink

Sizes and repetitions are environment variables (see PARAMS); the defaults fit a 2-core
machine in well under 20 minutes.
"""

from __future__ import annotations

import csv
import datetime
import glob
import importlib.metadata
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE))
import report  # noqa: E402
import workers  # noqa: E402
from putcount import CountingProxy  # noqa: E402

# name -> (default, meaning); every one can be overridden from the environment
PARAMS: dict[str, tuple[str, str]] = {
    "BENCH_SECTIONS": ("e2e,stream,core,upload,memory", "sections to run"),
    "BENCH_REPS": ("3", "interleaved repetitions of each end-to-end variant"),
    "BENCH_NARROW_ROWS": ("1000000", "rows of the narrow table (4 columns)"),
    "BENCH_WIDE_ROWS": ("250000", "rows of the wide table"),
    "BENCH_WIDE_COLS": ("32", "columns of the wide table"),
    "BENCH_INTERVAL_MS": ("1000", "write_interval_ms of the end-to-end and memory runs"),
    "BENCH_STREAM_RATE": ("2000", "rows per second of the streaming run"),
    "BENCH_STREAM_SECONDS": ("8", "seconds of the streaming run"),
    "BENCH_STREAM_INTERVAL_MS": ("1000", "write_interval_ms of the streaming run"),
    "BENCH_UPLOAD_MIB": ("1,16,128", "object sizes of the upload section, MiB"),
    "BENCH_UPLOAD_REPS": ("3", "repetitions of each upload"),
    "BENCH_MEMORY_ROWS": ("20000000", "rows streamed in the memory section"),
    "BENCH_MEMORY_BUDGET_MIB": ("64", "max_buffer_bytes of the memory section, MiB"),
    "BENCH_FALLBACK_ENV": ("S3SINK_PATHWAY_FAST_PATH=0", "NAME=VALUE forcing s3sink's pw.io.python.write path"),
    "BENCH_TIMEOUT_S": ("600", "timeout of one measurement process"),
    "BENCH_OUT": ("docs", "folder of benchmarks.md and benchmarks.png"),
}


def param(name: str) -> str:
    return os.environ.get(name) or PARAMS[name][0]


def int_param(name: str) -> int:
    return int(param(name))


BUCKET = "bench"


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def run_worker(kind: str, args: dict[str, Any], env: dict[str, str] | None = None) -> dict[str, Any]:
    """Runs one measurement in a fresh interpreter; its last stdout line is the result."""
    proc = subprocess.run(
        [sys.executable, str(HERE / "workers.py"), kind, json.dumps(args)],
        capture_output=True, text=True, timeout=int_param("BENCH_TIMEOUT_S"),
        env={**os.environ, **(env or {})},
    )
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        tail = "\n".join(proc.stderr.strip().splitlines()[-15:])
        raise RuntimeError(f"{kind} {args.get('variant', '')} failed (exit {proc.returncode}):\n{tail}")
    return json.loads(lines[-1])


_prefix_counter = 0


def fresh_prefix(label: str) -> str:
    """A prefix no earlier measurement used, so each one writes to an empty place."""
    global _prefix_counter
    _prefix_counter += 1
    return f"{label}/{_prefix_counter:04d}/"


# ---------------------------------------------------------------------------------------
# Section 1: end to end


@dataclass
class Shape:
    name: str
    rows: int
    ncols: int
    path: str = ""


def write_input(shape: Shape, folder: str) -> None:
    """The static CSV every variant reads (generated once per run)."""
    shape.path = os.path.join(folder, f"{shape.name}.csv")
    columns = workers.shape_columns(shape.ncols)
    kinds = list(columns.values())
    with open(shape.path, "w", newline="") as f:
        out = csv.writer(f, lineterminator="\n")
        out.writerow(columns)
        for i in range(shape.rows):
            row: list[Any] = []
            for c, kind in enumerate(kinds):
                if kind is int:
                    row.append(i * 7 + c)
                elif kind is float:
                    row.append(i * 0.5 + c / 8)
                elif kind is str:
                    row.append(f"user-{(i + c) % 10007}")
                else:
                    row.append("true" if (i + c) % 3 == 0 else "false")
            out.writerow(row)


def fallback_switch() -> dict[str, str] | None:
    """The environment forcing s3sink's previous Pathway path (the pw.io.python.write
    observer), if this checkout has such a switch: its name appears in the Python
    package's sources. Without one there is only that path, and nothing to compare."""
    name, _, value = param("BENCH_FALLBACK_ENV").partition("=")
    sources = glob.glob(str(ROOT / "bindings/python/s3sink/*.py")) + glob.glob(str(ROOT / "bindings/python/src/*.c"))
    return {name: value} if any(name in Path(p).read_text() for p in sources) else None


@dataclass
class E2EResult:
    shape: str
    rows: int
    ncols: int
    variant: str
    format: str
    seconds: list[float] = field(default_factory=list)
    out_bytes: int = 0
    early_bytes: int = 0  # of s3sink's object, sent while Pathway still wrote it
    error: str | None = None


def section_e2e(tmp: str, notes: list[str]) -> list[E2EResult]:
    shapes = [Shape("narrow", int_param("BENCH_NARROW_ROWS"), 4),
              Shape("wide", int_param("BENCH_WIDE_ROWS"), int_param("BENCH_WIDE_COLS"))]
    for shape in shapes:
        log(f"generating {shape.name} input: {shape.rows} rows x {shape.ncols} columns")
        write_input(shape, tmp)
    switch = fallback_switch()
    variants: list[tuple[str, list[str]]] = [("null", ["-"]), ("noop", ["-"]), ("fs", ["csv", "json"]),
                                             ("python", ["csv", "json"]), ("s3sink", ["csv", "json"])]
    if switch:
        variants.append(("s3sink-fallback", ["csv", "json"]))
    else:
        notes.append(f"s3sink-fallback skipped: no `{param('BENCH_FALLBACK_ENV')}` switch in this checkout's "
                     "Python package: s3sink has only its pw.io.python.write path here.")
    results: dict[tuple[str, str, str], E2EResult] = {}
    for shape in shapes:
        for variant, formats in variants:
            for fmt in formats:
                results[(shape.name, variant, fmt)] = E2EResult(shape.name, shape.rows, shape.ncols, variant, fmt)
    reps = int_param("BENCH_REPS")
    for rep in range(reps):  # interleaved: a slow moment of the machine hits every variant alike
        for shape in shapes:
            for variant, formats in variants:
                for fmt in formats:
                    result = results[(shape.name, variant, fmt)]
                    if result.error:
                        continue
                    outdir = tempfile.mkdtemp(dir=tmp)
                    args = {"variant": variant, "format": fmt if fmt != "-" else "csv", "input": shape.path,
                            "ncols": shape.ncols, "bucket": BUCKET, "prefix": fresh_prefix(f"e2e-{variant}"),
                            "outdir": outdir, "interval_ms": int_param("BENCH_INTERVAL_MS")}
                    env = switch if variant == "s3sink-fallback" else None
                    try:
                        measured = run_worker("e2e", args, env)
                    except Exception as e:  # noqa: BLE001 - reported in the table, the run goes on
                        result.error = str(e).splitlines()[0]
                        log(f"  {e}")
                        continue
                    finally:
                        subprocess.run(["rm", "-rf", outdir], check=False)
                    result.seconds.append(measured["seconds"])
                    result.out_bytes = measured["out_bytes"]
                    result.early_bytes = measured.get("early_bytes", 0)
                    log(f"rep {rep + 1}/{reps} {shape.name} {variant} {fmt}: {measured['seconds']:.2f} s")
    return list(results.values())


# ---------------------------------------------------------------------------------------
# Section 2: streaming


def section_stream() -> dict[str, Any]:
    client = workers.boto_client()
    prefix = fresh_prefix("stream")
    seen: dict[str, float] = {}  # key -> wall time it was first listed
    stop = threading.Event()

    def poll() -> None:
        # straight to MinIO, not through the proxy: listing is not what is counted
        while True:
            now = time.time()
            for o in workers.list_prefix(client, BUCKET, prefix):
                seen.setdefault(o["Key"], now)
            if stop.is_set():
                return
            time.sleep(0.05)

    args = {"bucket": BUCKET, "prefix": prefix, "rate": int_param("BENCH_STREAM_RATE"),
            "seconds": int_param("BENCH_STREAM_SECONDS"), "interval_ms": int_param("BENCH_STREAM_INTERVAL_MS"),
            "payload_bytes": 64}
    with CountingProxy(workers.endpoint()) as proxy:
        poller = threading.Thread(target=poll, daemon=True)
        poller.start()
        args["endpoint"] = proxy.endpoint
        measured = run_worker("stream", args)
        time.sleep(0.2)
        stop.set()
        poller.join()
        puts = proxy.counter.count(f"/{BUCKET}/{prefix}")

    latencies: list[float] = []
    sequences: set[int] = set()
    for key, listed_at in seen.items():
        body = client.get_object(Bucket=BUCKET, Key=key)["Body"].read().decode()
        for row in csv.DictReader(body.splitlines()):
            sequences.add(int(row["seq"]))
            latencies.append(listed_at - float(row["emitted"]))
    latencies.sort()

    def pct(q: float) -> float:
        return latencies[min(len(latencies) - 1, int(q * len(latencies)))] if latencies else float("nan")

    return {**args, "rows_emitted": measured["rows"], "rows_read_back": len(sequences),
            "objects": len(seen), "puts": puts, "p50_s": pct(0.50), "p95_s": pct(0.95),
            "max_s": latencies[-1] if latencies else float("nan"), "run_seconds": measured["seconds"]}


# ---------------------------------------------------------------------------------------
# Section 3: the runtime alone


def section_core() -> str:
    """build/core_bench's output."""
    subprocess.run(["make", "-s", "core-bench"], cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    out = ""
    # the bundled formats (native row encoders), then the CSV format with a Lua row(), then
    # a Lua row() that does nothing (the cost of entering Lua once per row)
    for args in ([], *(["64", shape, script] for script in ("bench/lua_csv.lua", "bench/lua_call.lua")
                       for shape in ("narrow", "wide"))):
        proc = subprocess.run([str(ROOT / "build/core_bench"), *args], cwd=ROOT, capture_output=True,
                              text=True, timeout=int_param("BENCH_TIMEOUT_S"), check=True)
        out += proc.stdout
    return out


# ---------------------------------------------------------------------------------------
# Section 4: uploads


def section_upload(tmp: str) -> list[dict[str, Any]]:
    sizes = [int(s) for s in param("BENCH_UPLOAD_MIB").split(",") if s.strip()]
    tools = ("s3sink", "boto3")
    seconds: dict[tuple[int, str], list[float]] = {(s, t): [] for s in sizes for t in tools}
    reps = int_param("BENCH_UPLOAD_REPS")
    for rep in range(reps):
        for size in sizes:
            for tool in tools:
                args = {"tool": tool, "bytes": size << 20, "bucket": BUCKET,
                        "prefix": fresh_prefix(f"upload-{tool}"), "tmpdir": tmp}
                measured = run_worker("upload", args)
                seconds[(size, tool)].append(measured["seconds"])
                log(f"rep {rep + 1}/{reps} upload {size} MiB {tool}: {measured['seconds']:.3f} s")
    return [{"mib": size, "tool": tool, "seconds": seconds[(size, tool)]} for size in sizes for tool in tools]


# ---------------------------------------------------------------------------------------
# Section 5: memory


def section_memory() -> dict[str, Any]:
    budget = int_param("BENCH_MEMORY_BUDGET_MIB") << 20
    args = {"rows": int_param("BENCH_MEMORY_ROWS"), "budget_bytes": budget, "bucket": BUCKET,
            "prefix": fresh_prefix("memory"), "interval_ms": int_param("BENCH_INTERVAL_MS"),
            "backlog": 10_000, "sample_s": 0.25}
    floor = run_worker("memory", {**args, "variant": "null"})
    return {**run_worker("memory", {**args, "variant": "s3sink"}), "floor": floor, "budget_bytes": budget,
            "interval_ms": args["interval_ms"]}


# ---------------------------------------------------------------------------------------


def machine() -> dict[str, str]:
    model = platform.processor() or "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            model = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), model)
    except OSError:
        pass
    import s3sink

    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                            text=True).stdout.strip()
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cores": str(os.cpu_count()),
        "cpu": model,
        "python": platform.python_version(),
        "pathway": importlib.metadata.version("pathway"),
        "s3sink": f"{s3sink.__version__} (commit {commit})" if commit else s3sink.__version__,
        "boto3": importlib.metadata.version("boto3"),
        "load": load_average(),
    }


def load_average() -> str:
    """The 1-minute load average: other work on the machine shows in the spread of the runs."""
    return f"{os.getloadavg()[0]:.2f}"


def main() -> int:
    started = time.perf_counter()
    sections = {s.strip() for s in param("BENCH_SECTIONS").split(",")}
    os.environ["S3SINK_NO_INSTALL"] = "1"  # the orchestrator itself never needs Pathway
    data = report.Report(machine=machine(), params={k: param(k) for k in PARAMS})
    client = workers.boto_client()
    if BUCKET not in {b["Name"] for b in client.list_buckets().get("Buckets", [])}:
        client.create_bucket(Bucket=BUCKET)
    del os.environ["S3SINK_NO_INSTALL"]

    def guarded(name: str, fn: Any, *args: Any) -> Any:
        if name not in sections:
            return None
        log(f"section {name}")
        try:
            return fn(*args)
        except Exception as e:  # noqa: BLE001 - one failed section must not lose the others
            traceback.print_exc()
            data.errors[name] = str(e)
            return None

    with tempfile.TemporaryDirectory(prefix="s3sink-bench.") as tmp:
        data.e2e = guarded("e2e", section_e2e, tmp, data.notes) or []
        data.stream = guarded("stream", section_stream)
        data.core = guarded("core", section_core)
        data.upload = guarded("upload", section_upload, tmp) or []
        data.memory = guarded("memory", section_memory)
    data.total_seconds = time.perf_counter() - started
    data.machine["load"] += f" at the start, {load_average()} at the end"

    out = ROOT / param("BENCH_OUT")
    out.mkdir(parents=True, exist_ok=True)
    chart = report.write_chart(data, out / "benchmarks.png")
    if chart is None:
        data.notes.append("No chart: matplotlib is not installed (`make bench` installs it).")
    text = report.markdown(data, chart_name="benchmarks.png" if chart else None)
    (out / "benchmarks.md").write_text(text)
    print(text)
    log(f"wrote {out / 'benchmarks.md'} in {data.total_seconds:.0f} s")
    return 1 if data.errors else 0


if __name__ == "__main__":
    sys.exit(main())
