"""docs/benchmarks.md and docs/benchmarks.png from one run's measurements."""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

VARIANT_TEXT = {
    "null": "`pw.io.null.write` (engine floor)",
    "noop": "no-op `pw.io.python.write` observer",
    "fs": "`pw.io.fs.write` (local file)",
    "python": "plain Python observer + boto3",
    "s3sink": "s3sink `pw.io.minio.write`",
    "s3sink-fallback": "s3sink via `pw.io.python.write` (fallback)",
}


@dataclass
class Report:
    machine: dict[str, str]
    params: dict[str, str]
    e2e: list[Any] = field(default_factory=list)
    stream: dict[str, Any] | None = None
    core: str | None = None
    upload: list[dict[str, Any]] = field(default_factory=list)
    memory: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)
    total_seconds: float = 0.0


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def _e2e_lookup(data: Report) -> dict[tuple[str, str, str], Any]:
    return {(r.shape, r.variant, r.format): r for r in data.e2e}


def _seconds_of(lookup: dict[tuple[str, str, str], Any], shape: str, variant: str, fmt: str) -> float:
    # null and noop do not format: one measurement serves both formats
    r = lookup.get((shape, variant, fmt)) or lookup.get((shape, variant, "-"))
    return _median(r.seconds) if r and r.seconds else float("nan")


def _e2e_markdown(data: Report) -> list[str]:
    out = ["## 1. End to end through Pathway", ""]
    out.append(
        f"Static CSV input generated once; every variant in its own process, `pw.run()` timed alone; "
        f"{data.params['BENCH_REPS']} interleaved repetitions; `write_interval_ms={data.params['BENCH_INTERVAL_MS']}` "
        "for s3sink and the plain-Python observer. Seconds are median (min–max); rows/s from the median. "
        "\"Sent while written\": how much of s3sink's object went up (early upload) before Pathway's "
        "last row, from the last repetition."
    )
    out.append("")
    for shape in dict.fromkeys(r.shape for r in data.e2e):
        rs = [r for r in data.e2e if r.shape == shape]
        out.append(f"**{shape}**: {rs[0].rows:,} rows × {rs[0].ncols} columns (int, float, str, bool)")
        out.append("")
        rows = []
        for r in rs:
            if r.error or not r.seconds:
                rows.append([VARIANT_TEXT[r.variant], r.format, f"failed: {r.error}", "", "", ""])
                continue
            med = _median(r.seconds)
            rows.append([
                VARIANT_TEXT[r.variant], r.format,
                f"{med:.2f} ({min(r.seconds):.2f}–{max(r.seconds):.2f})",
                f"{r.rows / med:,.0f}",
                f"{r.out_bytes / 1e6:.1f}" if r.out_bytes else "",
                f"{r.early_bytes / 1e6:.1f}" if r.variant.startswith("s3sink") else "",
            ])
        out.append(_table(["variant", "format", "seconds", "rows/s", "output MB",
                           "sent while written (MB)"], rows))
        out.append("")
    lookup = _e2e_lookup(data)
    ratio_rows = []
    for shape in dict.fromkeys(r.shape for r in data.e2e):
        for fmt in ("csv", "json"):
            secs = {v: _seconds_of(lookup, shape, v, fmt) for v in ("s3sink", "noop", "fs", "python", "s3sink-fallback")}
            pairs = [("s3sink", other) for other in ("noop", "fs", "python", "s3sink-fallback")]
            pairs.append(("s3sink-fallback", "noop"))
            # nan (a variant not run) is the one value not equal to itself
            ratio_rows.append([shape, fmt, *(f"{secs[a] / secs[b]:.2f}" if secs[a] == secs[a] and secs[b] == secs[b]
                                             else "–" for a, b in pairs)])
    out.append("Ratios of median seconds (below 1: s3sink is faster; the last column compares s3sink's "
               "fallback path, `pw.io.python.write`, with the no-op observer on that same path):")
    out.append("")
    out.append(_table(["table", "format", "s3sink / no-op observer", "s3sink / fs.write",
                       "s3sink / plain Python", "s3sink / its fallback path", "fallback / no-op observer"],
                      ratio_rows))
    out.append("")
    return out


def _stream_markdown(s: dict[str, Any]) -> list[str]:
    match = "equal" if s["puts"] == s["objects"] else "**differ**"
    return [
        "## 2. Streaming", "",
        f"A `ConnectorSubject` emitting {s['rate']:,} rows/s for {s['seconds']} s (3 columns: int, float, "
        f"64-byte str), `write_interval_ms={s['interval_ms']}`, CSV. PUTs are counted by a proxy in front of "
        "MinIO; latency is from a row's emission to the first listing (polled every 50 ms) that shows its "
        "object.", "",
        _table(["rows emitted", "rows read back", "objects", "PUTs (proxy)", "latency p50", "latency p95",
                "latency max"],
               [[f"{s['rows_emitted']:,}", f"{s['rows_read_back']:,}", str(s["objects"]), f"{s['puts']} ({match})",
                 f"{s['p50_s']:.2f} s", f"{s['p95_s']:.2f} s", f"{s['max_s']:.2f} s"]]),
        "",
    ]


def _upload_markdown(data: Report) -> list[str]:
    by = {(u["mib"], u["tool"]): _median(u["seconds"]) for u in data.upload}
    rows = []
    for mib in dict.fromkeys(u["mib"] for u in data.upload):
        s3, bt = by[(mib, "s3sink")], by[(mib, "boto3")]
        rows.append([f"{mib} MiB", f"{mib / s3:.0f}", f"{mib / bt:.0f}", f"{bt / s3:.2f}"])
    return [
        "## 4. Uploads", "",
        f"One object of each size; s3sink: a `Writer` with a large interval, the body written as 1 MiB rows "
        f"through a pass-through format script, then one forced `flush()` timed; boto3: `put_object` of the "
        f"same bytes. Median of {data.params['BENCH_UPLOAD_REPS']}, each in its own process.", "",
        _table(["object", "s3sink MiB/s", "boto3 MiB/s", "s3sink speed / boto3"], rows), "",
    ]


def _memory_markdown(m: dict[str, Any]) -> list[str]:
    samples = m["samples"]
    quartiles = []
    for q in (0.25, 0.5, 0.75, 1.0):
        if samples:
            t, kib = samples[min(len(samples) - 1, int(q * len(samples)) - (1 if q == 1.0 else 0))]
            quartiles.append(f"{kib / 1024:.0f} MiB at {t:.0f} s")
    floor = m.get("floor")
    runs = ([("`pw.io.null.write` (Pathway alone)", floor)] if floor else []) + [("s3sink `pw.io.minio.write`", m)]
    rows = [[name, f"{r['rows']:,}", f"{r['seconds']:.1f}", f"{r['rows'] / r['seconds']:,.0f}",
             str(r["objects"]) if r is m else "", f"{r['baseline_kib'] / 1024:.0f} MiB",
             f"{r['hwm_kib'] / 1024:.0f} MiB", f"{(r['hwm_kib'] - r['baseline_kib']) / 1024:.0f} MiB"]
            for name, r in runs]
    own = []
    if floor:
        share = ((m["hwm_kib"] - m["baseline_kib"]) - (floor["hwm_kib"] - floor["baseline_kib"])) / 1024
        own = [f"s3sink's own share of the peak (its peak − before, less Pathway's alone): {share:.0f} MiB, "
               f"budget {m['budget_bytes'] >> 20} MiB.", ""]
    return [
        "## 5. Memory", "",
        f"{m['rows']:,} narrow rows streamed as fast as a `ConnectorSubject` emits them (backlog capped) "
        f"through s3sink, `write_interval_ms={m['interval_ms']}`, `max_buffer_bytes` = "
        f"{m['budget_bytes'] >> 20} MiB, and the same stream into `pw.io.null.write` for what Pathway "
        "itself takes; RSS sampled every 0.25 s (`BENCH_MEMORY_ROWS`).", "",
        _table(["pipeline", "rows", "seconds", "rows/s", "objects", "RSS before run", "peak RSS (VmHWM)",
                "peak − before"], rows),
        "",
        *own,
        "s3sink's RSS over the run: " + ", ".join(quartiles) + ".",
        "",
    ]


def markdown(data: Report, chart_name: str | None) -> str:
    m = data.machine
    out = [
        "# Benchmarks", "",
        "Generated by `make bench` (`tools/bench/bench.py`); do not edit by hand. A benchmark, not a test: "
        "numbers depend on the machine and its load.", "",
        f"- date: {m['date']}; total run time {data.total_seconds / 60:.1f} min",
        f"- machine: {m['cores']} cores, {m['cpu']}; 1-minute load average {m['load']}",
        f"- s3sink {m['s3sink']}, Pathway {m['pathway']}, boto3 {m['boto3']}, Python {m['python']}",
        "- MinIO on loopback (tools/with-minio), one server for the whole run", "",
    ]
    if chart_name:
        out += [f"![benchmarks]({chart_name})", ""]
    if data.e2e:
        out += _e2e_markdown(data)
    if data.stream:
        out += _stream_markdown(data.stream)
    if data.core:
        out += ["## 3. Core alone (`build/core_bench`)", "", "```", data.core.rstrip(), "```", ""]
    if data.upload:
        out += _upload_markdown(data)
    if data.memory:
        out += _memory_markdown(data.memory)
    if data.notes or data.errors:
        out += ["## Notes", ""]
        out += [f"- {n}" for n in data.notes]
        out += [f"- section {name} failed: {e.splitlines()[0] if e else e}" for name, e in data.errors.items()]
        out.append("")
    out += ["## Parameters", "", _table(["variable", "value"], [[f"`{k}`", f"`{v}`"] for k, v in data.params.items()]),
            ""]
    return "\n".join(out)


def write_chart(data: Report, path: Path) -> Path | None:
    """Three panels: end-to-end rows/s, upload MiB/s, RSS over time. None without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.8), gridspec_kw={"width_ratios": [2.2, 1, 1]})
    ax = axes[0]
    lookup = _e2e_lookup(data)
    groups = [(s, f) for s in dict.fromkeys(r.shape for r in data.e2e) for f in ("csv", "json")]
    variants = [v for v in VARIANT_TEXT if any(r.variant == v for r in data.e2e)]
    width = 0.8 / max(1, len(variants))
    for i, v in enumerate(variants):
        values = []
        for shape, fmt in groups:
            r = lookup.get((shape, v, fmt)) or lookup.get((shape, v, "-"))
            values.append(r.rows / _median(r.seconds) if r and r.seconds else 0)
        ax.bar([g + i * width for g in range(len(groups))], values, width, label=v)
    ax.set_xticks([g + 0.4 - width / 2 for g in range(len(groups))], [f"{s} {f}" for s, f in groups])
    ax.set_ylabel("rows/s (median)")
    ax.set_title("End to end through Pathway")
    ax.legend(fontsize=8)
    ax = axes[1]
    if data.upload:
        by = {(u["mib"], u["tool"]): _median(u["seconds"]) for u in data.upload}
        sizes = list(dict.fromkeys(u["mib"] for u in data.upload))
        for i, tool in enumerate(("s3sink", "boto3")):
            ax.bar([k + i * 0.4 for k in range(len(sizes))], [m / by[(m, tool)] for m in sizes], 0.4, label=tool)
        ax.set_xticks([k + 0.2 for k in range(len(sizes))], [f"{m} MiB" for m in sizes])
        ax.legend(fontsize=8)
    ax.set_ylabel("MiB/s (median)")
    ax.set_title("One object upload")
    ax = axes[2]
    if data.memory and data.memory["samples"]:
        ts, kib = zip(*data.memory["samples"])
        ax.plot(ts, [k / 1024 for k in kib], label="RSS, s3sink")
        floor = data.memory.get("floor")
        if floor and floor["samples"]:
            fts, fkib = zip(*floor["samples"])
            ax.plot(fts, [k / 1024 for k in fkib], label="RSS, pw.io.null.write")
        base = data.memory["baseline_kib"] / 1024
        ax.axhline(base + (data.memory["budget_bytes"] >> 20), linestyle="--", color="gray",
                   label="RSS before + max_buffer_bytes")
        ax.set_ylim(bottom=0)
        ax.legend(fontsize=8)
    ax.set_xlabel("seconds")
    ax.set_ylabel("MiB")
    ax.set_title("Memory while streaming")
    fig.suptitle(f"s3sink {data.machine['s3sink']}, {data.machine['cores']} cores, {data.machine['date']}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
