"""The cost per row of the ways out of a Pathway pipeline, s3sink's two among them.

Times ``pw.run()`` alone for N rows x 4 columns (int, float, str, bool) read from a
static CSV (generated in a temporary folder) through each output, every run in a process
of its own, and prints the median of the runs and the cost per row above
``pw.io.null.write``:

    null            pw.io.null.write
    python_noop     a no-op pw.io.python.write observer
    fs_csv          pw.io.fs.write(..., "csv")
    s3sink_fast     pw.io.minio.write through the engine's callback sink
    s3sink_fallback pw.io.minio.write through pw.io.python.write (S3SINK_PATHWAY_FAST_PATH=0)
    s3sink_compare  pw.io.minio.write of the s3sink build in --compare-dir (e.g. an older one)

The runs are interleaved (one of each variant, then again) so that a change of the
machine's load spreads over all of them; the median and the minimum wall time of pw.run()
and the median CPU time of the process during it (all its threads) are reported.

The s3sink variants need a MinIO: run under tools/with-minio, which exports
S3SINK_TEST_ENDPOINT, S3SINK_TEST_ACCESS_KEY and S3SINK_TEST_SECRET_KEY. Their time
includes the upload of the one object at the end of the stream.

    tools/with-minio python bench/pathway_paths.py [--rows N] [--repeat 3]
        [--variants null,fs_csv,...] [--compare-dir DIR] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
VARIANTS = ("null", "python_noop", "fs_csv", "s3sink_fast", "s3sink_fallback")


def make_csv(path: Path, rows: int) -> None:
    with open(path, "w") as f:
        f.write("i,x,s,b\n")
        for n in range(rows):
            f.write(f"{n},{n * 0.37:.6g},name-{n % 9973},{'true' if n % 3 else 'false'}\n")


def child(variant: str, csv_path: str, out_dir: str) -> tuple[float, float]:
    """One run in this process: the wall and CPU seconds pw.run() took."""
    import pathway as pw

    class Row(pw.Schema):
        i: int
        x: float
        s: str
        b: bool

    table = pw.io.csv.read(csv_path, schema=Row, mode="static")
    if variant == "null":
        pw.io.null.write(table)
    elif variant == "python_noop":

        class Noop(pw.io.python.ConnectorObserver):
            def on_change(self, key: Any, row: dict[str, Any], time: int, is_addition: bool) -> None:
                pass

        pw.io.python.write(table, Noop())
    elif variant == "fs_csv":
        pw.io.fs.write(table, os.path.join(out_dir, "out.csv"), "csv")
    elif variant.startswith("s3sink"):
        import s3sink  # noqa: F401  (adds pw.io.minio.write)

        settings = pw.io.minio.MinIOSettings(
            endpoint=os.environ["S3SINK_TEST_ENDPOINT"],
            bucket_name="bench-pathway-paths",
            access_key=os.environ["S3SINK_TEST_ACCESS_KEY"],
            secret_access_key=os.environ["S3SINK_TEST_SECRET_KEY"],
            region="us-east-1",
        )
        pw.io.minio.write(table, f"run-{uuid.uuid4().hex[:12]}", "csv", minio_settings=settings,
                          write_interval_ms=600_000, create_bucket=True)
    else:
        raise SystemExit(f"unknown variant {variant!r}")
    t0, c0 = time.perf_counter(), time.process_time()
    pw.run(monitoring_level=pw.MonitoringLevel.NONE)
    return time.perf_counter() - t0, time.process_time() - c0


def run_variant(variant: str, csv_path: Path, out_dir: Path, compare_dir: str | None) -> tuple[float, float]:
    env = dict(os.environ)
    path = [compare_dir if variant == "s3sink_compare" and compare_dir else str(ROOT / "bindings" / "python")]
    env["PYTHONPATH"] = os.pathsep.join(path + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    env["S3SINK_PATHWAY_FAST_PATH"] = "0" if variant == "s3sink_fallback" else "1"
    res = subprocess.run(
        [sys.executable, __file__, "--child", variant, str(csv_path), str(out_dir)],
        env=env, capture_output=True, text=True, check=False,
    )
    if res.returncode != 0:
        raise SystemExit(f"{variant} failed:\n{res.stderr[-3000:]}")
    wall, cpu = res.stdout.strip().splitlines()[-1].split()
    return float(wall), float(cpu)


def main() -> None:
    if len(sys.argv) == 5 and sys.argv[1] == "--child":
        print(*child(sys.argv[2], sys.argv[3], sys.argv[4]))
        return
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--compare-dir", help="the s3sink_compare variant imports s3sink from this folder")
    ap.add_argument("--json", help="also write the results to this file")
    args = ap.parse_args()
    variants = [v for v in args.variants.split(",") if v]
    if "null" not in variants:
        variants.insert(0, "null")
    if args.compare_dir and "s3sink_compare" not in variants:
        variants.append("s3sink_compare")
    runs: dict[str, list[tuple[float, float]]] = {v: [] for v in variants}
    with tempfile.TemporaryDirectory(prefix="s3sink-bench-") as tmp:
        csv_path = Path(tmp) / "in.csv"
        make_csv(csv_path, args.rows)
        for rep in range(args.repeat):
            for variant in variants:
                out = Path(tmp) / f"out-{variant}-{rep}"
                out.mkdir()
                runs[variant].append(run_variant(variant, csv_path, out, args.compare_dir))
    results: dict[str, dict[str, Any]] = {}
    for v, rs in runs.items():
        results[v] = {
            "wall_s": statistics.median(w for w, _ in rs),
            "wall_min_s": min(w for w, _ in rs),  # the least disturbed by other load
            "cpu_s": statistics.median(c for _, c in rs),
            "runs": rs,
        }
    null = results["null"]
    print(f"{'variant':<18} {'wall s':>8} {'cpu s':>8} {'wall us/row':>12} {'min us/row':>11} "
          f"{'cpu us/row':>11}  (per row: above null)")
    for name, r in results.items():
        r["wall_us_per_row_above_null"] = (r["wall_s"] - null["wall_s"]) / args.rows * 1e6
        r["wall_min_us_per_row_above_null"] = (r["wall_min_s"] - null["wall_min_s"]) / args.rows * 1e6
        r["cpu_us_per_row_above_null"] = (r["cpu_s"] - null["cpu_s"]) / args.rows * 1e6
        print(f"{name:<18} {r['wall_s']:>8.3f} {r['cpu_s']:>8.3f} {r['wall_us_per_row_above_null']:>12.3f} "
              f"{r['wall_min_us_per_row_above_null']:>11.3f} {r['cpu_us_per_row_above_null']:>11.3f}")
    if args.json:
        Path(args.json).write_text(json.dumps({"rows": args.rows, "results": results}, indent=2))


if __name__ == "__main__":
    main()
