"""Benchmark the recognition pipeline against the field's usual approach, in the same run.

    make bench            # or: .venv/bin/python bench/pipeline.py

Pinned to one core (taskset -c 0) with TensorFlow on one thread. Rows:
- ours, single line: decode → value, warm (explain pictures excluded);
- ours, explain pictures for that line, on their own;
- ours, 20-line A4 page at 300 dpi;
- baseline, single line and page: Otsu threshold, external contours ordered by x,
  one `model.predict` per symbol, with the same model.
With ``--also-version V`` the single line is also timed with version V of the registry,
in the same run (rounds interleaved), to price a new model against the one before.
Writes bench/results/pipeline.json; bench/report.py turns results into docs/benchmarks.md.
"""
from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench import host  # noqa: E402
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _pin_to_one_core() -> None:
    if os.environ.get("BENCH_PINNED") != "1" and hasattr(os, "sched_setaffinity"):
        os.environ["BENCH_PINNED"] = "1"
        os.execvp("taskset", ["taskset", "-c", "0", sys.executable, *sys.argv])


def _samples(function, repeat: int, warmup: int = 3) -> list[float]:
    """Milliseconds of ``repeat`` calls, after ``warmup`` calls left untimed."""
    for _ in range(warmup):
        function()
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        function()
        samples.append((time.perf_counter() - start) * 1000)
    return samples


def _summary(samples: list[float]) -> dict:
    samples = sorted(samples)
    return {
        "n": len(samples),
        "p50_ms": statistics.median(samples),
        "p95_ms": samples[min(len(samples) - 1, int(0.95 * len(samples)))],
        "mean_ms": statistics.fmean(samples),
    }


def _timings(function, repeat: int, warmup: int = 3) -> dict:
    return _summary(_samples(function, repeat, warmup))


def baseline_reader(model, stroke_method: str):
    """The usual tutorial pipeline: Otsu, external contours by x, predict per symbol."""
    import cv2
    import numpy as np

    from workers.pipeline.imaging import decode_image
    from workers.pipeline.preprocess import crop_to_channels
    from workers.pipeline.symbols import CLASSES, symbol_columns

    def read(data: bytes) -> str:
        ink = decode_image(data)
        _, binary = cv2.threshold(ink, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
        contours, _ = cv2.findContours(binary, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        boxes = sorted((cv2.boundingRect(c) for c in contours), key=lambda b: b[0])
        text = []
        for x, y, w, h in boxes:
            if w * h < 20:
                continue
            crop = crop_to_channels(binary[y : y + h, x : x + w], stroke_method)
            probabilities = model.predict(crop[None], verbose=0)[0]
            text.append(CLASSES[int(np.argmax(symbol_columns(probabilities)))])
        return "".join(text)

    return read


def main() -> int:
    _pin_to_one_core()
    import argparse

    parser = argparse.ArgumentParser(description="time the pipeline against the usual approach")
    parser.add_argument("--also-version", help="also time the single line with this model version")
    args = parser.parse_args()
    import cv2
    import numpy as np

    from models import registry
    from training.compose import random_expression, render_line, render_page
    from workers.pipeline import explain
    from workers.pipeline.classify import SymbolClassifier
    from workers.pipeline.recognize import recognize

    classifier = SymbolClassifier(threads=1)
    model = registry.load_model(classifier.version)
    rng = np.random.default_rng(12345)
    line, _ = render_line("12+(3-1)*4", rng, height=64)
    line_png = cv2.imencode(".png", 255 - line)[1].tobytes()
    page_lines = [random_expression(rng) for _ in range(20)]
    page = render_page(page_lines, rng, dpi=300, skew_degrees=1.5, ruled=True, uneven=True)
    page_png = cv2.imencode(".png", page)[1].tobytes()
    baseline = baseline_reader(model, classifier.stroke_method)
    result = recognize(line_png, classifier)

    rows = {}
    for name, function, repeat, warmup in (
        ("ours_line", lambda: recognize(line_png, classifier), 200, 5),
        ("ours_line_explain_only", lambda: explain.explain(result), 50, 3),
        ("baseline_line", lambda: baseline(line_png), 20, 2),
        ("ours_page_20_lines_300dpi", lambda: recognize(page_png, classifier), 6, 1),
        # One run: the baseline reads every speck of a scanned page as a symbol.
        ("baseline_page_20_lines_300dpi", lambda: baseline(page_png), 1, 0),
    ):
        rows[name] = _timings(function, repeat, warmup)
        print(f"{name}: p50 {rows[name]['p50_ms']:.1f} ms", flush=True)
    if args.also_version:
        other = SymbolClassifier(args.also_version, threads=1)
        # Interleaved rounds, so that a busier moment of the host weighs on both models alike.
        readers = {"ours_line_interleaved": classifier, f"ours_line_model_{other.version}_interleaved": other}
        samples = {name: [] for name in readers}
        for _ in range(5):
            for name, reader in readers.items():
                samples[name] += _samples(lambda: recognize(line_png, reader), 40, 5)
        for name, values in samples.items():
            rows[name] = _summary(values)
            print(f"{name}: p50 {rows[name]['p50_ms']:.1f} ms", flush=True)
    rows["speedup_line_p50"] = rows["baseline_line"]["p50_ms"] / rows["ours_line"]["p50_ms"]
    rows["speedup_page_p50"] = rows["baseline_page_20_lines_300dpi"]["p50_ms"] / rows["ours_page_20_lines_300dpi"]["p50_ms"]
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout.strip()
    report = {
        "benchmark": "pipeline",
        "commit": commit,
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        **host.describe(),
        "pinned": "taskset -c 0, TF 1 thread",
        "model_version": classifier.version,
        "page_text": page_lines,
        "rows": rows,
    }
    out = REPO / "bench" / "results" / "pipeline.json"
    out.write_text(json.dumps(report, indent=2))
    print(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
