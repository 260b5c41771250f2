"""Draw a picture of the training data: generated symbols per style, MNIST with added styles,
and the not-one-symbol class (two symbols touching).

    python -m training.gallery docs/training-data.png

Each row shows raw generated ink (left) and the same samples as the model sees
them after the shared preprocessing (right).
"""
from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np

from training import dataset, strokes
from training.compose import held_out_digits
from workers.pipeline.preprocess import crop_to_input

SAMPLES = 10


def _tile(image: np.ndarray, size: int = 56) -> np.ndarray:
    ys, xs = np.nonzero(image > 60)
    if ys.size:
        image = image[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]
    scale = (size - 8) / max(image.shape)
    image = cv2.resize(image, (max(1, int(image.shape[1] * scale)), max(1, int(image.shape[0] * scale))), interpolation=cv2.INTER_AREA)
    tile = np.zeros((size, size), np.uint8)
    top, left = (size - image.shape[0]) // 2, (size - image.shape[1]) // 2
    tile[top : top + image.shape[0], left : left + image.shape[1]] = image
    return tile


def gallery(seed: int = 7) -> np.ndarray:
    rng = np.random.default_rng(seed)
    rows = []
    for symbol in strokes.STYLES:
        raw = [strokes.render_symbol(symbol, rng, scan=(i % 3 == 2)) for i in range(SAMPLES)]
        rows.append((raw, [crop_to_input(r) for r in raw]))
    digits = held_out_digits()
    for label in (1, 7):
        raw = [strokes.add_style_to_mnist(cv2.resize(digits[label][i], (84, 84)), label, rng) for i in range(SAMPLES)]
        rows.append((raw, [crop_to_input(r) for r in raw]))
    pool = {d: np.asarray(digits[d]) for d in range(10)}  # held-out digits: a picture, not training data
    for _ in range(2):
        raw = [dataset.touching_pair(rng, pool)[1] for _ in range(SAMPLES)]
        rows.append((raw, [crop_to_input(r) for r in raw]))
    lines = []
    for raw, model_inputs in rows:
        left = np.hstack([_tile(r) for r in raw])
        right = np.hstack([cv2.resize((m * 255).astype(np.uint8), (56, 56), interpolation=cv2.INTER_NEAREST) for m in model_inputs])
        lines.append(np.hstack([left, np.full((56, 16), 128, np.uint8), right]))
    return 255 - np.vstack(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    target = Path(argv[0] if argv else "docs/training-data.png")
    target.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(target), gallery())
    print(f"wrote {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
