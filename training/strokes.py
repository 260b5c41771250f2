"""A stroke generator for handwritten symbols: handwriting, not fonts.

No public package ships handwritten operators, and MNIST's digits are mostly in
US styles, so this module draws symbols the way a pen does. Every symbol has
several *styles*, each a list of strokes given by key points in a unit box.
A sample is made by:

1. picking a style (for example a ``1`` with a flag and a base, a crossed ``7``,
   an open ``4``, an ``×`` cross or a ``*`` star, a ``(`` of some curvature);
2. a random affine transform: slant, rotation, aspect and size;
3. independent jitter of every key point, then smoothing each stroke as a
   Catmull-Rom spline, whose segments are cubic Bézier curves;
4. drawing with a random pen width, anti-aliased;
5. an elastic distortion (Simard et al., 2003);
6. sometimes scan-like ink: a thin pen, blur, JPEG compression and noise,
   binarised the way a page is.

The output is an ink-bright uint8 image of the symbol, ready for
:func:`workers.pipeline.preprocess.crop_to_input`.
"""
from __future__ import annotations

import math
from typing import Callable

import cv2
import numpy as np

Stroke = np.ndarray  # shape [K, 2], key points (x, y) in the unit box, y downwards
StyleFn = Callable[[np.random.Generator], list[tuple[Stroke, bool]]]
"""A style returns strokes as (key points, smooth?) pairs; a sharp corner is two strokes."""


def _pts(*points: tuple[float, float]) -> Stroke:
    return np.asarray(points, dtype=np.float64)


def _arc(cx: float, cy: float, rx: float, ry: float, start_deg: float, sweep_deg: float, n: int = 9) -> Stroke:
    """Key points along an ellipse arc; angles in degrees, 0 = right, 90 = down."""
    angles = np.radians(start_deg + np.linspace(0.0, sweep_deg, n))
    return np.stack([cx + rx * np.cos(angles), cy + ry * np.sin(angles)], axis=1)


def _line(rng: np.random.Generator, p0, p1, bow: float = 0.03) -> tuple[Stroke, bool]:
    """A hand-drawn straight stroke: three key points with a slight random bow."""
    p0, p1 = np.asarray(p0, float), np.asarray(p1, float)
    direction = p1 - p0
    normal = np.array([-direction[1], direction[0]])
    middle = (p0 + p1) / 2 + normal * rng.uniform(-bow, bow)
    return np.stack([p0, middle, p1]), True


def _u(rng: np.random.Generator, low: float, high: float) -> float:
    return float(rng.uniform(low, high))


# --- digits: width about 0.6, height 1 ----------------------------------------------------


def _zero(rng):
    return [(_arc(0.3, 0.5, _u(rng, 0.2, 0.32), 0.5, _u(rng, -120, -60), _u(rng, 330, 390), 11), True)]


def _one_plain(rng):
    return [_line(rng, (0.3 + _u(rng, -0.05, 0.05), 0), (0.3, 1), bow=0.02)]


def _one_flag(rng):
    top = (0.32, 0.0)
    if rng.random() < 0.5:  # a long, steep flag, nearly as long as the stem (a flat one would be a 7)
        reach = _u(rng, 0.25, 0.6)
        flag = (0.32 - reach, min(0.85, reach * _u(rng, 0.9, 1.6)))
    else:
        x = _u(rng, -0.25, 0.2)
        # Never flatter than about 30 degrees: a long flat flag is the bar of a 7.
        flag = (x, max(_u(rng, 0.08, 0.55), 0.6 * (0.32 - x)))
    # Flags are often bowed, like the first stroke of a 9 without its loop.
    stroke = _line(rng, flag, top, _u(rng, 0.03, 0.2))
    if rng.random() < 0.25:  # the pen dips just after it lands, then rises to the top
        start = (flag[0] - _u(rng, 0.0, 0.06), flag[1] - _u(rng, 0.04, 0.12))
        stroke = (_pts(start, flag, ((flag[0] + top[0]) / 2 + 0.02, (flag[1] + top[1]) / 2 + 0.03), top), True)
    strokes = [stroke, _line(rng, top, (0.32 + _u(rng, -0.08, 0.05), 1.0), 0.03)]
    return strokes + _one_foot(rng, strokes[-1][0][-1])


def _one_foot(rng, bottom) -> list[tuple[Stroke, bool]]:
    """What many writers outside the US put under a 1: a base, a tick to the left, or nothing."""
    bx, by = bottom
    roll = rng.random()
    if roll < 0.45:  # a base
        half = _u(rng, 0.15, 0.3)
        return [_line(rng, (bx - half, by), (bx + half, by), 0.02)]
    if roll < 0.65:  # a short tick out to the left, often turning up at its end
        length = _u(rng, 0.1, 0.25)
        return [(_pts((bx, by), (bx - length * 0.6, by + _u(rng, -0.03, 0.03)), (bx - length, by - _u(rng, 0.0, 0.12))), True)]
    return []


def _one_base(rng):
    half = _u(rng, 0.15, 0.3)
    return [_line(rng, (0.32, 0), (0.32, 1), 0.02), _line(rng, (0.32 - half, 1.0), (0.32 + half, 1.0), 0.02)]


def _two(rng):
    curve = _pts((0.03, 0.25), (0.15, 0.05), (0.33, 0.0), (0.53, 0.13), (0.5, 0.38), (0.28, 0.68), (0.02, 1.0))
    base_end = (_u(rng, 0.45, 0.65), _u(rng, 0.93, 1.02))
    strokes = [(curve, True), _line(rng, (0.02, 1.0), base_end, 0.03)]
    if rng.random() < 0.45:  # a loop at the bottom left
        size = _u(rng, 0.05, 0.15)
        loop = _pts((0.3, 0.72), (0.06, 0.95 - size), (0.08 - size / 2, 1.0), (0.2 + size, 0.88 - size), (0.25, 0.98), (0.6, 0.98))
        strokes = [(curve[:-1], True), (loop, True)]
    return strokes


def _three(rng):
    waist = (_u(rng, 0.2, 0.32), _u(rng, 0.42, 0.52))
    lower = _pts(waist, (0.5, 0.6), (0.56, 0.8), (0.33, 1.0), (0.02, 0.9))
    if rng.random() < 0.4:  # flat-topped 3
        return [_line(rng, (0.05, 0), (0.55, 0)), _line(rng, (0.55, 0), waist), (lower, True)]
    upper = _pts((0.04, 0.12), (0.28, 0.0), (0.52, 0.13), (0.45, 0.36), waist)
    return [(upper, True), (lower, True)]


def _four_cursive(rng):
    bar_y = _u(rng, 0.45, 0.65)
    stem_x = _u(rng, 0.4, 0.52)
    cup = _pts((_u(rng, 0.05, 0.25), 0.0), (_u(rng, 0.0, 0.08), bar_y * 0.7), (0.15, bar_y + 0.05), (stem_x + 0.2, bar_y))
    return [(cup, True), _line(rng, (stem_x + _u(rng, 0.0, 0.08), _u(rng, 0.0, 0.25)), (stem_x, 1.0), 0.04)]


def _four_closed(rng):
    bar_y = _u(rng, 0.55, 0.72)
    stem_x = _u(rng, 0.36, 0.48)
    return [
        _line(rng, (stem_x + 0.05, 0.0), (0.0, bar_y)),
        _line(rng, (0.0, bar_y), (0.62, bar_y)),
        _line(rng, (stem_x + _u(rng, -0.02, 0.05), _u(rng, 0.0, 0.3)), (stem_x, 1.0)),
    ]


def _four_u(rng):
    """A 4 in one stroke, like the Cyrillic Ч: down the left, round the bottom of the cup,
    up the right side, then back down the stem. Common outside the US, and most often with
    the stem starting well below the top of the left arm; without this style such a 4
    reads as a 6."""
    bar_y = _u(rng, 0.42, 0.65)
    stem_x = _u(rng, 0.45, 0.62)
    left_x = _u(rng, 0.0, 0.12)
    stem_top_y = _u(rng, 0.12, bar_y - 0.08) if rng.random() < 0.7 else _u(rng, -0.1, 0.12)
    stem_top = (stem_x + _u(rng, -0.03, 0.05), stem_top_y)
    cup = _pts(
        (left_x + _u(rng, 0.0, 0.1), _u(rng, 0.0, 0.1)),
        (left_x, bar_y * 0.75),
        (left_x + 0.12, bar_y + _u(rng, 0.0, 0.08)),
        (stem_x - 0.06, bar_y + _u(rng, -0.04, 0.04)),
        stem_top,
    )
    return [(cup, True), _line(rng, stem_top, (stem_x + _u(rng, -0.06, 0.02), 1.0), 0.03)]


def _four_open(rng):
    bar_y = _u(rng, 0.45, 0.7)
    stem_x = _u(rng, 0.36, 0.52)
    top_x = _u(rng, 0.0, 0.22)
    bar_end = (_u(rng, 0.58, 0.75), bar_y + _u(rng, -0.08, 0.04))
    stem = _line(rng, (stem_x + _u(rng, -0.04, 0.06), _u(rng, -0.05, 0.25)), (stem_x, 1.0))
    if rng.random() < 0.4:  # left side and bar in one rounded stroke
        corner = _pts((top_x, 0.0), (0.03, bar_y - 0.1), (0.12, bar_y), bar_end)
        return [(corner, True), stem]
    return [_line(rng, (top_x, 0.0), (0.02, bar_y)), _line(rng, (0.02, bar_y), bar_end), stem]


def _four_c(rng):
    """An open 4 whose left arm bows out like a ``(`` and rounds into a low bar, with the
    stem starting well below the arm's top and crossing the bar: the 4 that a model
    trained on US digits reads as a 6 (seen on the CROHME tune half)."""
    bar_y = _u(rng, 0.55, 0.8)
    stem_x = _u(rng, 0.42, 0.58)
    top_x = _u(rng, 0.1, 0.28)
    arm = _pts(
        (top_x, 0.0),
        (_u(rng, -0.04, 0.05), bar_y * 0.55),
        (_u(rng, 0.04, 0.12), bar_y),
        (stem_x, bar_y + _u(rng, -0.05, 0.05)),
        (stem_x + _u(rng, 0.08, 0.25), bar_y + _u(rng, -0.1, 0.03)),
    )
    stem_top = (stem_x + _u(rng, -0.03, 0.06), _u(rng, 0.05, bar_y - 0.15))
    return [(arm, True), _line(rng, stem_top, (stem_x + _u(rng, -0.06, 0.03), 1.0), 0.04)]


def _five(rng):
    top = (0.12, 0.0)
    belly = _pts((0.08, 0.45), (0.35, 0.37), (0.56, 0.55), (0.55, 0.82), (0.3, 1.0), (0.02, 0.9))
    return [_line(rng, (_u(rng, 0.45, 0.62), 0.0), top), _line(rng, top, (0.08, 0.45)), (belly, True)]


def _six(rng):
    path = _pts((0.5, 0.0), (0.25, 0.15), (0.07, 0.5), (0.1, 0.85), (0.3, 1.0), (0.52, 0.86), (0.52, 0.64), (0.3, 0.52), (0.1, 0.66))
    return [(path, True)]


def _seven(rng):
    corner = (0.6, 0.0)
    foot = (_u(rng, 0.12, 0.32), 1.0)
    strokes = [_line(rng, (0.02, _u(rng, 0.0, 0.06)), corner), _line(rng, corner, foot, 0.06)]
    if rng.random() < 0.5:  # the crossed 7 of continental Europe
        mid = (np.array(corner) + np.array(foot)) / 2
        half = _u(rng, 0.15, 0.25)
        strokes.append(_line(rng, (mid[0] - half, mid[1]), (mid[0] + half, mid[1])))
    if rng.random() < 0.25:  # a serif at the top left
        strokes.append(_line(rng, (0.02, 0.0), (0.0, _u(rng, 0.1, 0.2))))
    return strokes


def _eight(rng):
    if rng.random() < 0.35:  # two stacked loops
        return [(_arc(0.3, 0.25, 0.2, 0.24, 0, 360, 10), True), (_arc(0.3, 0.73, 0.26, 0.27, 0, 360, 10), True)]
    path = _pts((0.5, 0.1), (0.3, 0.0), (0.1, 0.12), (0.15, 0.35), (0.45, 0.6), (0.55, 0.82), (0.3, 1.0), (0.05, 0.82), (0.15, 0.6), (0.45, 0.35), (0.5, 0.1))
    return [(path, True)]


def _nine(rng):
    # The loop is often left open where the pen started, which is what tells it from a closed g.
    sweep = 360 if rng.random() < 0.5 else _u(rng, 290, 345)
    loop = _arc(0.3, 0.26, _u(rng, 0.2, 0.28), _u(rng, 0.2, 0.26), _u(rng, -30, 30), sweep, 11)
    start = (0.3 + 0.27, 0.26)
    kind = rng.random()
    if kind < 0.3:  # a tail that curves down
        tail = _pts(start, (0.55, 0.7), (0.45, 0.95), (0.25, 1.0))
    elif kind < 0.7:  # a tail that hooks back to the left, like a g, sometimes flat along the bottom
        end = (_u(rng, -0.05, 0.12), _u(rng, 0.82, 1.02))
        tail = _pts(start, (0.56, 0.65), (0.48, 0.92), (0.22, _u(rng, 0.97, 1.03)), end)
    else:
        return [(loop, True), _line(rng, start, (_u(rng, 0.35, 0.55), 1.0))]
    return [(loop, True), (tail, True)]


# --- operators: unit box ----------------------------------------------------------------


def _plus(rng):
    cx, cy = _u(rng, 0.4, 0.6), _u(rng, 0.4, 0.6)
    if rng.random() < 0.2:  # the bar high up, like a dagger: still a plus, not a 7
        cy = _u(rng, 0.2, 0.4)
    return [
        _line(rng, (_u(rng, 0.0, 0.15), cy), (_u(rng, 0.85, 1.0), cy)),
        _line(rng, (cx, _u(rng, 0.0, 0.15)), (cx, _u(rng, 0.85, 1.0))),
    ]


def _minus(rng):
    if rng.random() < 0.4:  # a tablet pen leaves small ticks where it lands and lifts
        start_tick = (_u(rng, -0.05, 0.1), 0.5 + _u(rng, -0.18, 0.18))
        end_tick = (_u(rng, 0.9, 1.05), 0.5 + _u(rng, -0.18, 0.18))
        return [(_pts(start_tick, (0.08, 0.5), (0.5, 0.5 + _u(rng, -0.03, 0.03)), (0.92, 0.5), end_tick), True)]
    return [_line(rng, (0.0, 0.5), (1.0, 0.5), bow=0.04)]


def _times_cross(rng):
    return [
        _line(rng, (_u(rng, 0.0, 0.1), 0.0), (_u(rng, 0.9, 1.0), 1.0), 0.05),
        _line(rng, (_u(rng, 0.9, 1.0), 0.0), (_u(rng, 0.0, 0.1), 1.0), 0.05),
    ]


def _times_letter_x(rng):
    """An × written like the letter x: two arcs back to back, or an arc and a line."""
    bulge = _u(rng, 0.12, 0.3)
    left = _pts((0.05, 0.02), (0.45 + bulge, 0.5), (0.05, 1.0))
    right = _pts((0.95, 0.02), (0.55 - bulge, 0.5), (0.95, 1.0))
    if rng.random() < 0.5:
        return [(left, True), (right, True)]
    return [(left, True), _line(rng, (0.95, 0.0), (0.05, 1.0))]


def _times_lopsided(rng):
    """An × whose second stroke is short or off-centre, as quick writers make it."""
    long_stroke = _line(rng, (0.0, 0.0), (1.0, 1.0), 0.05)
    along = _u(rng, 0.3, 0.7)
    reach = _u(rng, 0.25, 0.5)
    cx, cy = along, along
    short = _line(rng, (cx + reach, cy - reach * _u(rng, 0.6, 1.2)), (cx - reach * _u(rng, 0.6, 1.2), cy + reach), 0.05)
    return [long_stroke, short]


def _times_star(rng):
    arms = 3 if rng.random() < 0.7 else 4
    offset = _u(rng, 0, 180 / arms)
    strokes = []
    for k in range(arms):
        angle = math.radians(offset + k * 180 / arms)
        dx, dy = 0.5 * math.cos(angle), 0.5 * math.sin(angle)
        strokes.append(_line(rng, (0.5 - dx, 0.5 - dy), (0.5 + dx, 0.5 + dy), 0.03))
    return strokes


def _paren_left(rng):
    sweep = _u(rng, 60, 140)
    return [(_arc(1.0, 0.5, _u(rng, 0.5, 1.2), 0.5 / math.sin(math.radians(sweep / 2)), 180 - sweep / 2, sweep, 9), True)]


def _paren_hooked(rng):
    """A nearly straight stroke whose ends bend right: a ( drawn fast."""
    lean = _u(rng, -0.08, 0.08)
    hook = _u(rng, 0.08, 0.3)
    top_hook, bottom_hook = hook * _u(rng, 0.3, 1.2), hook * _u(rng, 0.3, 1.2)
    if rng.random() < 0.25:  # a foot that runs out to the right, like a rounded L
        bottom_hook = _u(rng, 0.3, 0.5)
    body = _pts(
        (0.1 + top_hook, 0.0), (0.1, _u(rng, 0.1, 0.22)), (0.1 + lean / 2, 0.5), (0.1 + lean, _u(rng, 0.78, 0.9)), (0.1 + lean + bottom_hook, 1.0)
    )
    return [(body, True)]


def _mirror(strokes):
    return [(np.stack([1.0 - s[:, 0], s[:, 1]], axis=1), smooth) for s, smooth in strokes]


def _paren_right_hooked(rng):
    return _mirror(_paren_hooked(rng))


def _paren_right(rng):
    return _mirror(_paren_left(rng))


def _equals(rng):
    gap = _u(rng, 0.18, 0.6)  # wide enough that a thick pen does not fuse the bars
    top = ((_u(rng, 0.0, 0.2), 0.0), (_u(rng, 0.8, 1.0), _u(rng, -0.05, 0.05)))
    bottom = ((_u(rng, 0.0, 0.2), gap), (_u(rng, 0.8, 1.0), gap + _u(rng, -0.05, 0.05)))
    if gap < 0.3 and rng.random() < 0.5:  # drawn in one go: the pen returns from the top bar's end
        return [(np.stack([top[0], top[1], bottom[0], bottom[1]]).astype(float), False)]
    return [_line(rng, *top, 0.04), _line(rng, *bottom, 0.04)]


STYLES: dict[str, list[StyleFn]] = {
    "0": [_zero],
    "1": [_one_plain, _one_flag, _one_flag, _one_base],
    "2": [_two],
    "3": [_three],
    "4": [_four_closed, _four_open, _four_open, _four_cursive, _four_u, _four_u, _four_c, _four_c],
    "5": [_five],
    "6": [_six],
    "7": [_seven],
    "8": [_eight],
    "9": [_nine],
    "+": [_plus],
    "-": [_minus],
    "*": [_times_cross, _times_cross, _times_letter_x, _times_lopsided, _times_star],
    "(": [_paren_left, _paren_left, _paren_hooked],
    ")": [_paren_right, _paren_right, _paren_right_hooked],
    "=": [_equals],
}
"""Styles per symbol; a style listed twice is drawn twice as often."""


# --- drawing ------------------------------------------------------------------------------


def catmull_rom(points: np.ndarray, samples_per_segment: int = 10) -> np.ndarray:
    """A smooth curve through the key points: each segment is the cubic Bézier
    with control points p1 + (p2 - p0)/6 and p2 - (p3 - p1)/6."""
    if len(points) < 3:
        return points
    padded = np.vstack([points[0], points, points[-1]])
    t = np.linspace(0.0, 1.0, samples_per_segment, endpoint=False)[:, None]
    curve = []
    for i in range(1, len(padded) - 2):
        p0, p1, p2, p3 = padded[i - 1], padded[i], padded[i + 1], padded[i + 2]
        c1, c2 = p1 + (p2 - p0) / 6.0, p2 - (p3 - p1) / 6.0
        curve.append((1 - t) ** 3 * p1 + 3 * (1 - t) ** 2 * t * c1 + 3 * (1 - t) * t**2 * c2 + t**3 * p2)
    curve.append(points[-1:])
    return np.vstack(curve)


def _random_affine(rng: np.random.Generator) -> np.ndarray:
    slant = _u(rng, -0.15, 0.4)  # most hands lean forward; few lean back
    rotation = math.radians(_u(rng, -8, 8))
    aspect = math.exp(_u(rng, -0.25, 0.25))
    cos, sin = math.cos(rotation), math.sin(rotation)
    rotate = np.array([[cos, -sin], [sin, cos]])
    shear = np.array([[1.0, -slant], [0.0, 1.0]])  # slant to the right as y grows downwards
    scale = np.diag([aspect, 1.0 / aspect])
    return rotate @ shear @ scale


def elastic(image: np.ndarray, rng: np.random.Generator, alpha: float, sigma: float) -> np.ndarray:
    """Simard's elastic distortion: a smoothed random displacement field."""
    height, width = image.shape
    dx = cv2.GaussianBlur(rng.uniform(-1, 1, (height, width)).astype(np.float32), (0, 0), sigma) * alpha
    dy = cv2.GaussianBlur(rng.uniform(-1, 1, (height, width)).astype(np.float32), (0, 0), sigma) * alpha
    grid_x, grid_y = np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32))
    return cv2.remap(image, grid_x + dx, grid_y + dy, cv2.INTER_LINEAR, borderValue=0)


def scan_like(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Degrade ink the way a scanner does, then binarise as a page would be."""
    paper = 255 - image
    paper = cv2.GaussianBlur(paper, (0, 0), _u(rng, 0.4, 1.2))
    quality = int(rng.integers(25, 80))
    ok, encoded = cv2.imencode(".jpg", paper, [cv2.IMWRITE_JPEG_QUALITY, quality])
    paper = cv2.imdecode(encoded, cv2.IMREAD_GRAYSCALE).astype(np.float32)
    paper += rng.normal(0, _u(rng, 2, 14), paper.shape)
    paper = np.clip(paper, 0, 255).astype(np.uint8)
    _, ink = cv2.threshold(paper, 0, 255, cv2.THRESH_BINARY_INV + cv2.THRESH_OTSU)
    return drop_specks(ink)


def drop_specks(ink: np.ndarray, fraction: float = 0.04) -> np.ndarray:
    """Remove connected components smaller than a fraction of the largest, as the segmenter does."""
    count, labels, stats, _ = cv2.connectedComponentsWithStats((ink > 0).astype(np.uint8), connectivity=8)
    if count <= 2:
        return ink
    areas = stats[1:, cv2.CC_STAT_AREA]
    keep = np.zeros(count, dtype=bool)
    keep[1:] = areas >= fraction * areas.max()
    return np.where(keep[labels], ink, 0).astype(np.uint8)


def render_strokes(strokes: list[tuple[Stroke, bool]], rng: np.random.Generator, scan: bool, relative_size: float = 1.0) -> np.ndarray:
    """Transform, jitter, smooth and draw strokes; returns an ink-bright uint8 image.

    ``relative_size`` is the symbol's size against a digit of the same line (LINE_LAYOUT):
    a third of the smaller symbols get a pen chosen against the digit's height, so that a
    minus drawn half a digit long with a digit's pen is as stubby as a writer's often is."""
    affine = _random_affine(rng)
    all_points = np.vstack([s for s, _ in strokes])
    centre = (all_points.min(axis=0) + all_points.max(axis=0)) / 2
    jitter = _u(rng, 0.01, 0.035)
    curves = []
    for points, smooth in strokes:
        moved = (points - centre) @ affine.T + rng.normal(0, jitter, points.shape)
        curves.append(catmull_rom(moved) if smooth else moved)
    stacked = np.vstack(curves)
    low, high = stacked.min(axis=0), stacked.max(axis=0)

    # Symbol height in pixels and pen width: small thin scans to large canvas strokes.
    if scan:
        size, pen = _u(rng, 18, 45), int(rng.integers(1, 3))
    else:
        size = _u(rng, 28, 110)
        fraction = _u(rng, 0.03, 0.12)
        if relative_size < 1.0 and rng.random() < 0.35:  # drawn at its size in a line
            fraction /= relative_size
        pen = max(1, int(round(size * fraction)))
    scale = size / max(high - low)
    margin = pen + 4
    width = int(math.ceil((high[0] - low[0]) * scale)) + 2 * margin
    height = int(math.ceil((high[1] - low[1]) * scale)) + 2 * margin
    canvas = np.zeros((height, width), dtype=np.uint8)
    shift = 4  # sub-pixel precision for cv2.polylines
    for curve in curves:
        pixels = ((curve - low) * scale + margin) * (1 << shift)
        cv2.polylines(canvas, [pixels.astype(np.int32)], False, 255, pen, cv2.LINE_AA, shift)

    canvas = elastic(canvas, rng, alpha=_u(rng, 0.0, 0.025) * size, sigma=max(2.0, size / 7))
    if scan:
        canvas = scan_like(canvas, rng)
    return canvas


def render_symbol(symbol: str, rng: np.random.Generator, scan: bool | None = None) -> np.ndarray:
    """Draw one handwritten ``symbol`` (a class of workers.pipeline.symbols.CLASSES)."""
    styles = STYLES[symbol]
    style = styles[int(rng.integers(len(styles)))]
    if scan is None:
        scan = bool(rng.random() < 0.3)
    return render_strokes(style(rng), rng, scan, LINE_LAYOUT.get(symbol, (1.0, 0.5))[0])


# --- styles added to real MNIST digits ----------------------------------------------------


def add_style_to_mnist(image: np.ndarray, label: int, rng: np.random.Generator) -> np.ndarray:
    """Give a real MNIST digit a style its (mostly US) writers rarely used.

    A ``1`` gets a flag and/or a base, a ``7`` a crossbar. ``image`` is ink-bright
    and may be upscaled; strokes are drawn with the digit's own stroke width.
    """
    ys, xs = np.nonzero(image > 127)
    if ys.size == 0 or label not in (1, 7):
        return image
    out = image.copy()
    height = ys.max() - ys.min() + 1
    pen = int(np.clip(round(height * 0.1), 1, 12))
    if label == 1:
        top_y, bottom_y = ys.min(), ys.max()
        top_x = int(np.mean(xs[ys <= top_y + 1]))
        bottom_x = int(np.mean(xs[ys >= bottom_y - 1]))
        if rng.random() < 0.8:  # a flag, often as long as half the stem
            reach = _u(rng, 0.2, 0.35) if rng.random() < 0.5 else _u(rng, 0.35, 0.6)
            flag = (int(top_x - height * reach), int(top_y + height * _u(rng, 0.15, 0.6)))
            cv2.line(out, flag, (top_x, int(top_y)), 255, pen, cv2.LINE_AA)
        foot = rng.random()
        if foot < 0.45:  # a base
            half = int(height * _u(rng, 0.15, 0.3))
            cv2.line(out, (bottom_x - half, int(bottom_y)), (bottom_x + half, int(bottom_y)), 255, pen, cv2.LINE_AA)
        elif foot < 0.65:  # a tick out to the left
            end = (int(bottom_x - height * _u(rng, 0.1, 0.25)), int(bottom_y - height * _u(rng, 0.0, 0.1)))
            cv2.line(out, (bottom_x, int(bottom_y)), end, 255, pen, cv2.LINE_AA)
    else:
        mid_y = int(ys.min() + height * _u(rng, 0.4, 0.6))
        row = xs[np.abs(ys - mid_y) <= 1]
        if row.size == 0:
            return image
        centre = int(np.mean(row))
        half = int(height * _u(rng, 0.15, 0.25))
        cv2.line(out, (centre - half, mid_y), (centre + half, mid_y), 255, pen, cv2.LINE_AA)
    return out


# --- whole lines as pen paths -------------------------------------------------------------

LINE_LAYOUT = {"+": (0.6, 0.55), "-": (0.5, 0.55), "*": (0.55, 0.55), "=": (0.55, 0.55), "(": (1.15, 0.5), ")": (1.15, 0.5)}
"""Size of each symbol relative to the line's digit height, and its vertical centre (0 top, 1 bottom)."""


def line_paths(text: str, rng: np.random.Generator, height: float = 80.0, left: float = 30.0, top: float = 30.0) -> list[list[tuple[float, float]]]:
    """``text`` as pen paths in pixels (y down), one per stroke, laid out left to right.

    What a person's pointer would trace on a canvas: a browser test replays them
    as pointer events, stroke by stroke.
    """
    paths: list[list[tuple[float, float]]] = []
    x = left
    for symbol in text:
        styles = STYLES[symbol]
        strokes = styles[int(rng.integers(len(styles)))](rng)
        affine = _random_affine(rng)
        curves = [catmull_rom(points @ affine.T) if smooth else points @ affine.T for points, smooth in strokes]
        stacked = np.vstack(curves)
        low, high = stacked.min(axis=0), stacked.max(axis=0)
        width, tall = np.maximum(high - low, 1e-6)
        relative, centre = LINE_LAYOUT.get(symbol, (1.0, 0.5))
        scale = height * relative / (width if symbol in "-=" else tall)
        y0 = top + height * centre - tall * scale / 2
        for curve in curves:
            paths.append([(float(x + (px - low[0]) * scale), float(y0 + (py - low[1]) * scale)) for px, py in curve])
        x += width * scale + height * _u(rng, 0.25, 0.4)
    return paths
