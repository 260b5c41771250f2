"""Compose handwritten lines and worksheet pages from held-out glyphs.

Digits are real MNIST digits from the TEST split (never trained on); operators,
parentheses and ``=`` come from the stroke generator with seeds the training
set never used. Used by tests and benchmarks to measure the whole pipeline on
images whose truth is known.
"""
from __future__ import annotations

import math

import cv2
import numpy as np

from training import dataset, mnist, strokes

HELD_OUT_SEED_OFFSET = 10**9
"""Generator seeds at or above this are never used to build training data."""

_digit_cache: dict[int, list[np.ndarray]] | None = None


def held_out_digits() -> dict[int, list[np.ndarray]]:
    """MNIST test-split digits by class (ink-bright 28×28): the official test set of the
    default source, whose writers no model trained on that source has seen."""
    global _digit_cache
    if _digit_cache is None:
        images, labels, official_test = mnist.load_digits_with_split()
        test = dataset.split_mnist(labels, dataset.DatasetConfig(), official_test)["test"]
        _digit_cache = {d: [images[i] for i in test if labels[i] == d] for d in range(10)}
    return _digit_cache


def _glyph(symbol: str, rng: np.random.Generator) -> np.ndarray:
    if symbol.isdigit():
        pool = held_out_digits()[int(symbol)]
        image = cv2.resize(pool[int(rng.integers(len(pool)))], (112, 112), interpolation=cv2.INTER_CUBIC)
        if symbol in "17" and rng.random() < 0.3:
            image = strokes.add_style_to_mnist(image, int(symbol), rng)
    else:
        image = strokes.render_symbol(symbol, rng, scan=False)
    ys, xs = np.nonzero(image > 60)
    return image[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]


_LAYOUT = strokes.LINE_LAYOUT


def render_line(text: str, rng: np.random.Generator, height: int = 60, pen_scale: float = 1.0) -> tuple[np.ndarray, list[tuple[int, int, int, int]]]:
    """An ink-bright image of ``text`` written by hand, with each symbol's box."""
    placed = []
    x = int(height * 0.5)
    for symbol in text:
        glyph = _glyph(symbol, rng)
        relative, centre = _LAYOUT.get(symbol, (1.0, 0.5))
        gh, gw = glyph.shape
        if symbol in "-=":
            target_w = int(height * relative * rng.uniform(0.8, 1.2))
            scale = target_w / gw
        else:
            scale = height * relative * rng.uniform(0.9, 1.08) / gh
        glyph = cv2.resize(glyph, (max(2, int(gw * scale)), max(2, int(gh * scale))), interpolation=cv2.INTER_AREA)
        if pen_scale != 1.0:
            size = max(1, int(round(abs(pen_scale - 1) * 3)))
            kernel = np.ones((size, size), np.uint8)
            glyph = cv2.dilate(glyph, kernel) if pen_scale > 1 else cv2.erode(glyph, kernel)
        top = int(height * 0.3 + height * centre - glyph.shape[0] / 2 + rng.normal(0, height * 0.03))
        placed.append((x, top, glyph))
        x += glyph.shape[1] + int(height * rng.uniform(0.18, 0.35))
    width = x + int(height * 0.5)
    canvas = np.zeros((int(height * 1.8), width), np.uint8)
    boxes = []
    for left, top, glyph in placed:
        top = int(np.clip(top, 0, canvas.shape[0] - glyph.shape[0]))
        region = canvas[top : top + glyph.shape[0], left : left + glyph.shape[1]]
        np.maximum(region, glyph, out=region)
        boxes.append((left, top, glyph.shape[1], glyph.shape[0]))
    return canvas, boxes


def random_expression(rng: np.random.Generator, min_symbols: int = 3, max_symbols: int = 15) -> str:
    """A valid line of 3 to 15 symbols, sometimes with parentheses and '= answer'."""
    from workers.pipeline.grammar import parse_line

    while True:
        parts = [str(int(rng.integers(0, 100)))]
        for _ in range(int(rng.integers(1, 4))):
            operator = str(rng.choice(["+", "-", "*"]))
            operand = str(int(rng.integers(0, 100)))
            if rng.random() < 0.3:
                operand = f"({operand}{rng.choice(['+', '-'])}{int(rng.integers(1, 10))})"
            parts.append(operator + operand)
        text = "".join(parts)
        if rng.random() < 0.4:
            value = parse_line(text).value
            text += "=" + str(value if rng.random() < 0.7 else value + int(rng.integers(1, 5)))
        if min_symbols <= len(text) <= max_symbols:
            return text


def render_page(lines: list[str], rng: np.random.Generator, dpi: int = 200, skew_degrees: float = 0.0, ruled: bool = True, uneven: bool = True, ruling_grey: int = 150) -> np.ndarray:
    """A scanned-looking worksheet page: dark ink on light paper, optionally ruled, skewed and unevenly lit."""
    width, height = int(8.27 * dpi), int(11.69 * dpi)
    line_pitch = int(height * 0.9 / max(len(lines), 1))
    digit_height = int(min(line_pitch * 0.45, dpi * 0.3))
    ink = np.zeros((height, width), np.uint8)
    for index, text in enumerate(lines):
        line, _ = render_line(text, rng, height=digit_height, pen_scale=1.0)
        top = int(height * 0.05) + index * line_pitch
        left = int(width * 0.08)
        line = line[:, : width - left - 10]
        region = ink[top : top + line.shape[0], left : left + line.shape[1]]
        np.maximum(region, line[: region.shape[0], : region.shape[1]], out=region)
    paper = np.full((height, width), 245, np.float32)
    if ruled:
        for index in range(len(lines) + 1):
            y = int(height * 0.05) + index * line_pitch + int(digit_height * 1.45)
            cv2.line(paper, (0, y), (width, y), ruling_grey, max(1, dpi // 100))
    paper -= ink.astype(np.float32) * (200 / 255)
    if uneven:
        ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
        paper *= 0.75 + 0.25 * np.cos(xs / width * math.pi * rng.uniform(0.5, 1.5)) * np.cos(ys / height * math.pi * rng.uniform(0.3, 1.0))
    paper += rng.normal(0, 4, paper.shape)
    paper = np.clip(paper, 0, 255).astype(np.uint8)
    if skew_degrees:
        matrix = cv2.getRotationMatrix2D((width / 2, height / 2), skew_degrees, 1.0)
        paper = cv2.warpAffine(paper, matrix, (width, height), borderValue=245)
    return paper


def write_examples(folder: str = "docs/examples", seed: int = 2026) -> None:
    """The example images `make run` reads: a canvas-like line and a small worksheet."""
    from pathlib import Path

    target = Path(folder)
    target.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    line, _ = render_line("12+(3-1)*4", rng, height=70)
    cv2.imwrite(str(target / "line.png"), 255 - line)
    page = render_page(["7*8=56", "12-5=7", "3*(4+2)=18", "9+8=16", "(6-2)*5=20"], rng, dpi=100, skew_degrees=2.0)
    cv2.imwrite(str(target / "worksheet.png"), page)


if __name__ == "__main__":
    write_examples()
