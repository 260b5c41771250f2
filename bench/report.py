"""Generate docs/benchmarks.md from bench/results/*.json (never edit the tables by hand)."""
from __future__ import annotations

import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench import host  # noqa: E402


def _target(what: str, measured: float, limit: float, unit: str) -> str:
    return f"| {what} ≤ {limit:g} {unit} | {measured:.1f} {unit} | {'yes' if measured <= limit else 'no'} |"


def _ms(value) -> str:
    return "—" if value is None else f"{value:.0f}"  # results recorded before the figure existed have none


def pipeline_section(data: dict) -> str:
    rows = data["rows"]
    lines = [
        "## Recognition pipeline (`bench/pipeline.py`)",
        "",
        f"Commit `{data['commit']}`, {data['date']}, CPU: {host.summary(data)}; {data['pinned']}; model {data['model_version']}.",
        "",
        "| case | p50 ms | p95 ms | runs |",
        "|---|---|---|---|",
    ]
    for name, row in rows.items():
        if isinstance(row, dict):
            lines.append(f"| {name.replace('_', ' ')} | {row['p50_ms']:.1f} | {row['p95_ms']:.1f} | {row['n']} |")
    lines += [
        "",
        f"Speed-up over the baseline (p50): single line **{rows['speedup_line_p50']:.1f}×**, "
        f"20-line page **{rows['speedup_page_p50']:.1f}×**.",
        "",
        "Baseline: Otsu threshold, external contours ordered by x, one `model.predict` per symbol, same model.",
        "On the scanned page it reads every speck of paper noise as a symbol, hence one run only.",
        "",
        "| target (issue 3) | measured | met |",
        "|---|---|---|",
        _target("single line, warm, p50", rows["ours_line"]["p50_ms"], 5.0, "ms"),
        _target("20-line A4 page at 300 dpi, p50", rows["ours_page_20_lines_300dpi"]["p50_ms"], 1000.0, "ms"),
        f"| at least 20× faster than the baseline (line) | {rows['speedup_line_p50']:.1f}× | {'yes' if rows['speedup_line_p50'] >= 20 else 'no'} |",
        "",
    ]
    return "\n".join(lines)


def load_section(data: dict) -> str:
    loads = data["loads"]
    lines = [
        "## The service under load (`bench/load.py`)",
        "",
        f"Commit `{data['commit']}`, {data['date']}, CPU: {host.summary(data)} ({data['cores']} cores). {data['setup']}.",
        f"A job counts as done only when {data.get('done_means', 'it succeeded and the client fetched its result and a step picture')}. "
        "Latency runs from when the job was due (open loop) until its result arrived, so above capacity it includes "
        "the wait for one of the client's threads.",
        "",
        "| offered jobs/s | submitted | done | throughput jobs/s | p50 ms | p95 ms | p99 ms | client wait p50 ms | queue p50 ms | processing p50 ms |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in loads:
        lines.append(
            f"| {row['offered_per_s']:g} | {row['submitted']} | {row['done']} | {row['throughput_per_s']:.1f} | {row['p50_ms']:.0f} | "
            f"{row['p95_ms']:.0f} | {row['p99_ms']:.0f} | {_ms(row.get('client_wait_p50_ms'))} | {row['queue_p50_ms']:.0f} | {row['processing_p50_ms']:.0f} |"
        )
    repeated = [row for row in loads if row.get("throughput_runs_per_s")]
    for row in repeated:
        lines += ["", f"At {row['offered_per_s']:g} jobs/s offered the load ran {len(row['throughput_runs_per_s'])} times, measuring "
                      f"{', '.join(f'{t:.1f}' for t in row['throughput_runs_per_s'])} jobs/s; the table shows the median run."]
    burst, floor, sheet = data["burst"], data["floor"], data["worksheet"]
    busiest = max(loads, key=lambda row: row["throughput_per_s"])
    best = busiest["throughput_per_s"]
    if "cpu_ms_per_job" in busiest:
        parts = sorted(busiest["cpu_ms_per_job"].items(), key=lambda kv: -kv[1])
        lines += [
            "",
            f"**CPU per finished job** at {busiest['offered_per_s']:g} jobs/s offered: {sum(v for _, v in parts):.1f} ms in all "
            f"({', '.join(f'{name} {ms:.1f}' for name, ms in parts)}); two cores give {2000 / max(0.1, sum(v for _, v in parts)):.0f} jobs/s at most.",
        ]
    at50 = next(row for row in loads if row["offered_per_s"] == 50)
    lines += [
        "",
        f"**Burst** of {burst['submitted']} jobs due at once ({data.get('client_threads', 64)} in flight, latency from the burst's start): {burst['done']} done, {burst['duplicates']} duplicates, "
        f"failed kinds {burst['failed'] or 'none'}, {burst['throughput_per_s']:.1f} jobs/s, p50 {burst['p50_ms']:.0f} ms, p99 {burst['p99_ms']:.0f} ms"
        + (f"; the database holds {burst['jobs_stored']} new jobs." if "jobs_stored" in burst else "."),
        "",
        f"**Floor**: a no-op task through the same broker and workers takes {floor['p50_ms']:.1f} ms p50 ({floor['p95_ms']:.1f} ms p95); "
        f"a canvas job at light load takes {loads[0]['p50_ms']:.0f} ms p50 end to end, {loads[0]['p50_ms'] / floor['p50_ms']:.1f}× the floor.",
        "",
        f"**Worksheet pages** (20 lines, {sheet['dpi']} dpi): processing p50 {sheet['processing_p50_ms']:.0f} ms, max {sheet['processing_max_ms']:.0f} ms per page on one worker process.",
        "",
        "![throughput against latency](load.png)",
        "",
        "| target (issue 7) | measured | met |",
        "|---|---|---|",
        f"| ≥ 80 jobs/s sustained (canvas lines) | {best:.1f} jobs/s | {'yes' if best >= 80 else 'no'} |",
        f"| p95 ≤ 250 ms at 50 jobs/s offered | {at50['p95_ms']:.0f} ms | {'yes' if at50['p95_ms'] <= 250 else 'no'} |",
        f"| 20-line page ≤ 1 s per worker process | {sheet['processing_p50_ms']:.0f} ms | {'yes' if sheet['processing_p50_ms'] <= 1000 else 'no'} |",
        f"| burst: submitted = finished, no duplicates | {burst['done']}/{burst['submitted']}, {burst['duplicates']} duplicates | "
        f"{'yes' if burst['done'] == burst['submitted'] and not burst['duplicates'] and burst.get('jobs_stored', burst['submitted']) == burst['submitted'] else 'no'} |",
        "",
    ]
    return "\n".join(lines)


def load_plot(data: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    loads = data["loads"]
    figure, axis = plt.subplots(figsize=(6, 4))
    for key, label in (("p50_ms", "p50"), ("p95_ms", "p95"), ("p99_ms", "p99")):
        axis.plot([r["throughput_per_s"] for r in loads], [r[key] for r in loads], marker="o", label=label)
    for row in loads:
        axis.annotate(f"{row['offered_per_s']:g}/s offered", (row["throughput_per_s"], row["p95_ms"]), fontsize=7)
    axis.set_xlabel("throughput (jobs/s done)")
    axis.set_ylabel("submit to result (ms)")
    axis.set_yscale("log")
    axis.set_title("Canvas jobs: throughput against latency")
    axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=110)


def main() -> None:
    sections = [
        "# Benchmarks", "", "Generated by `bench/report.py` from `bench/results/*.json`; run `make bench` to refresh.", "",
        "The machines differ from one day to the next, even under one CPU name, so each run records a yardstick "
        "(an empty 10^7-iteration Python loop, best of 5): absolute figures from two runs compare only "
        "next to their yardsticks, while the speed-ups over the baseline and the floor are measured within one run.", "",
    ]
    pipeline = REPO / "bench" / "results" / "pipeline.json"
    if pipeline.exists():
        sections.append(pipeline_section(json.loads(pipeline.read_text())))
    load = REPO / "bench" / "results" / "load.json"
    if load.exists():
        data = json.loads(load.read_text())
        sections.append(load_section(data))
        load_plot(data, REPO / "docs" / "load.png")
    (REPO / "docs" / "benchmarks.md").write_text("\n".join(sections))
    print("wrote docs/benchmarks.md")


if __name__ == "__main__":
    main()
