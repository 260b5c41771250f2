"""Measure the model on REAL handwriting it never trained on (CROHME, validation only).

``../shared/data/crohme-validation/symbols`` holds ~14.6k single symbols from
many writers. Its licence is non-commercial, so it is never used for training
and none of its pixels enter the repository; it is read from where it lies.

Writers are split into two fixed halves by a hash of their name: decisions are
tuned on the ``tune`` half, figures are reported on the ``report`` half.

    python -m training.validate_real [--version V] [--data DIR]
"""
from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from models import registry
from workers.pipeline.preprocess import crops_to_batch, stroke_method_of
from workers.pipeline.symbols import CLASSES, CLASS_INDEX, DIGITS, FOLDER_NAMES, NOT_ONE_SYMBOL_INDEX, OPERATORS, symbol_columns

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA = Path(os.environ.get("CROHME_VALIDATION_DIR", REPO_ROOT.parent / "shared" / "data" / "crohme-validation"))

FLOORS = registry.PROMOTION_FLOORS
"""Acceptance floors on the report half (issue 2); promotion checks the same ones."""
meets_floors = registry.floor_misses


def writer_half(writer: str) -> str:
    """A fixed, content-independent split of writers into 'tune' and 'report'."""
    return "tune" if hashlib.sha256(writer.encode()).digest()[0] % 2 == 0 else "report"


@dataclass
class RealSymbols:
    crops: list[np.ndarray]
    labels: np.ndarray
    writers: np.ndarray
    halves: np.ndarray


def load_symbols(data_dir: Path = DEFAULT_DATA) -> RealSymbols:
    """Read every symbol PNG (black ink on white) as an ink-bright crop."""
    manifest = data_dir / "symbols" / "manifest.csv"
    crops, labels, writers = [], [], []
    with open(manifest, newline="") as handle:
        for row in csv.DictReader(handle):
            image = np.asarray(Image.open(data_dir / row["file"]).convert("L"))
            crops.append(255 - image)
            labels.append(CLASS_INDEX[FOLDER_NAMES[row["cls"]]])
            writers.append(row["writer"])
    writers_array = np.asarray(writers)
    halves = np.asarray([writer_half(w) for w in writers])
    return RealSymbols(crops, np.asarray(labels), writers_array, halves)


def accuracy_report(labels: np.ndarray, predicted: np.ndarray) -> dict:
    """Per-class accuracy, digit mean, operator minimum and overall accuracy."""
    per_class = {}
    for index, symbol in enumerate(CLASSES):
        mask = labels == index
        if mask.any():
            per_class[symbol] = float((predicted[mask] == index).mean())
    digits = [per_class[d] for d in DIGITS if d in per_class]
    operators = [per_class[o] for o in OPERATORS if o in per_class]
    return {
        "n": int(len(labels)),
        "all": float((predicted == labels).mean()) if len(labels) else float("nan"),
        "digits_mean": float(np.mean(digits)) if digits else float("nan"),
        "operator_min": float(np.min(operators)) if operators else float("nan"),
        "per_class": per_class,
    }


def evaluate(predict_probabilities, data: RealSymbols, stroke_method: str, batch_size: int = 1024) -> dict:
    """Run the model over the real symbols, preprocessed with the model's ``stroke_method``;
    report per half, with the confusion pairs."""
    batch = crops_to_batch(data.crops, stroke_method)
    probabilities = np.concatenate(
        [predict_probabilities(batch[i : i + batch_size]) for i in range(0, len(batch), batch_size)]
    )
    # Each crop is one symbol: scored by its best symbol class, as the pipeline reads a group
    # that has no cut. A model with a not-one-symbol output also says how often it doubts that.
    predicted = symbol_columns(probabilities).argmax(axis=1)
    result = {}
    for half in ("tune", "report"):
        mask = data.halves == half
        report = accuracy_report(data.labels[mask], predicted[mask])
        report["writers"] = int(len(set(data.writers[mask])))
        if probabilities.shape[1] > NOT_ONE_SYMBOL_INDEX:
            report["called_not_one_symbol"] = float((probabilities[mask].argmax(axis=1) == NOT_ONE_SYMBOL_INDEX).mean())
        pairs = {}
        for truth, guess in zip(data.labels[mask], predicted[mask]):
            if truth != guess:
                key = f"{CLASSES[truth]}->{CLASSES[guess]}"
                pairs[key] = pairs.get(key, 0) + 1
        report["top_confusions"] = dict(sorted(pairs.items(), key=lambda kv: -kv[1])[:12])
        result[half] = report
    return result


EXPRESSION_FOLDERS = ("expressions", "expressions-canvas")
EXPRESSION_FLOOR = 0.90
"""Exact-match floor on whole expressions, report half, each folder (issue 3)."""


def reading_text(lines) -> str:
    """Lines as read, in the labels' notation: 'lhs', 'lhs=' or 'lhs=answer', joined by '|'."""
    parts = []
    for line in lines:
        text = line.expression or ""
        if line.has_equals:
            text += "=" + (line.answer_expression or "")
        parts.append(text)
    return "|".join(parts)


def drawn_otherwise(data: bytes, scale: float = 1.0, rotate_degrees: float = 0.0, noise_sigma: float = 0.0,
                    blur_sigma: float = 0.0, thicken_px: int = 0) -> bytes:
    """The same expression image at another size, turned as a line written off level is (the
    paper's background fills the corners), blurred by a Gaussian of ``blur_sigma`` px (out of
    focus), with Gaussian grey-level noise of ``noise_sigma`` (a phone photo of paper; seeded
    by the image, so a run repeats), or with its pen ``thicken_px`` wider (a marker): how robust
    the reading is."""
    import cv2

    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_GRAYSCALE)
    if scale != 1.0:
        image = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC)
    if rotate_degrees:
        background = int(np.median(image))
        pad = int(image.shape[1] * abs(np.sin(np.radians(rotate_degrees)))) // 2 + 10
        image = cv2.copyMakeBorder(image, pad, pad, 10, 10, cv2.BORDER_CONSTANT, value=background)
        height, width = image.shape
        matrix = cv2.getRotationMatrix2D((width / 2, height / 2), rotate_degrees, 1.0)
        image = cv2.warpAffine(image, matrix, (width, height), flags=cv2.INTER_LINEAR, borderValue=background)
    if thicken_px:
        pen = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (thicken_px + 1, thicken_px + 1))
        # The ink is the minority of pixels, dark on light paper or light on a dark canvas.
        image = cv2.erode(image, pen) if np.median(image) > 127 else cv2.dilate(image, pen)
    if blur_sigma:
        image = cv2.GaussianBlur(image, (0, 0), blur_sigma)
    if noise_sigma:
        rng = np.random.default_rng(int.from_bytes(hashlib.sha256(data).digest()[:8], "little"))
        image = np.clip(image + rng.normal(0.0, noise_sigma, image.shape), 0, 255).astype(np.uint8)
    return cv2.imencode(".png", image)[1].tobytes()


def evaluate_expressions(classifier, data_dir: Path = DEFAULT_DATA, folders=EXPRESSION_FOLDERS,
                         scale: float = 1.0, rotate_degrees: float = 0.0, noise_sigma: float = 0.0, blur_sigma: float = 0.0,
                         thicken_px: int = 0) -> dict:
    """Exact match of whole expressions per folder and writer half, with the misses
    (``scale``, ``rotate_degrees``, ``noise_sigma``, ``blur_sigma`` and ``thicken_px``: each image redrawn by
    :func:`drawn_otherwise` first)."""
    from workers.pipeline.errors import RecognitionError
    from workers.pipeline.recognize import recognize

    with open(data_dir / "expressions" / "labels.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    result = {}
    for folder in folders:
        per_half = {"tune": [0, 0], "report": [0, 0]}
        misses = []
        for row in rows:
            path = data_dir / folder / row["file"]
            if not path.exists():
                continue
            half = writer_half(row["writer"])
            data = path.read_bytes()
            if scale != 1.0 or rotate_degrees or noise_sigma or blur_sigma or thicken_px:
                data = drawn_otherwise(data, scale, rotate_degrees, noise_sigma, blur_sigma, thicken_px)
            try:
                got = reading_text(recognize(data, classifier).lines)
            except RecognitionError as error:
                got = f"error:{error.code}"
            per_half[half][1] += 1
            if got == row["expression"]:
                per_half[half][0] += 1
            else:
                misses.append({"file": row["file"], "half": half, "truth": row["expression"], "read": got})
        result[folder] = {
            half: {"exact": hits / total if total else float("nan"), "n": total} for half, (hits, total) in per_half.items()
        }
        result[folder]["misses"] = misses
    return result


def format_report(result: dict) -> str:
    lines = ["| class | tune half | report half |", "|---|---|---|"]
    for symbol in CLASSES:
        tune = result["tune"]["per_class"].get(symbol, float("nan"))
        report = result["report"]["per_class"].get(symbol, float("nan"))
        lines.append(f"| `{symbol}` | {tune:.2%} | {report:.2%} |")
    for key, label in (("digits_mean", "digits, mean"), ("operator_min", "operators, lowest"), ("all", "all symbols")):
        lines.append(f"| {label} | {result['tune'][key]:.2%} | {result['report'][key]:.2%} |")
    lines.append(f"| symbols / writers | {result['tune']['n']} / {result['tune']['writers']} | {result['report']['n']} / {result['report']['writers']} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.validate_real", description=__doc__.splitlines()[0])
    parser.add_argument("--version", help="model version (default: the ACTIVE one)")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--json", action="store_true", help="print the raw figures as JSON")
    parser.add_argument("--expressions", action="store_true", help="also read the whole expressions with the pipeline")
    parser.add_argument("--scale", type=float, default=1.0, help="with --expressions: read each image resized by this factor")
    parser.add_argument("--rotate", type=float, default=0.0, help="with --expressions: read each image turned by this many degrees")
    parser.add_argument("--noise", type=float, default=0.0, help="with --expressions: add Gaussian noise of this many grey levels (σ)")
    parser.add_argument("--blur", type=float, default=0.0, help="with --expressions: blur each image by a Gaussian of this σ, in px")
    parser.add_argument("--thicken", type=int, default=0, metavar="PX", help="with --expressions: draw each image with a pen this many px wider")
    args = parser.parse_args(argv)
    if not (args.data / "symbols" / "manifest.csv").exists():
        print(f"no validation data at {args.data}", file=sys.stderr)
        return 2
    from models import registry

    version = args.version or registry.active_version()
    model = registry.load_model(version)
    method = stroke_method_of(registry.load_config(version))
    result = evaluate(lambda batch: model(batch, training=False).numpy(), load_symbols(args.data), method)
    if args.expressions:
        from workers.pipeline.classify import SymbolClassifier

        result["expressions"] = evaluate_expressions(SymbolClassifier(version, threads=1), args.data, scale=args.scale,
                                                     rotate_degrees=args.rotate, noise_sigma=args.noise, blur_sigma=args.blur,
                                                     thicken_px=args.thicken)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"model {version} on real handwriting ({args.data}):\n")
        print(format_report(result))
        misses = meets_floors(result["report"])
        print("\nfloors on the report half: " + ("all met" if not misses else "MISSED: " + "; ".join(misses)))
        for folder, figures in result.get("expressions", {}).items():
            print(
                f"\n{folder}: exact match {figures['report']['exact']:.1%} on the report half "
                f"({figures['report']['n']} expressions), {figures['tune']['exact']:.1%} on the tune half"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
