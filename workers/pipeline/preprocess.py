"""The one function that turns a symbol crop into the model's 28×28 input.

Training and inference both call :func:`crop_to_channels` (inference through
:func:`crops_to_batch`, and :func:`crop_to_input` is its one-channel case). A mismatch between training and inference is the
classic bug of this field, so there is no second implementation.

It follows MNIST's convention (fit the symbol in 20×20, centre it by centre of
mass in 28×28) and also normalises the stroke width, so that a 1 px scanned
stroke and a 10 px canvas stroke both come out within the range of MNIST's own
pens. Two ways of doing that exist, and every model version records which one
it was trained with (``stroke_method`` in its config):

- ``band`` (the default since v0015): keep the writer's own stroke width when it
  lies within MNIST's usual range, thicken a thinner one, and redraw a thicker one
  from its skeleton. Shapes keep their details, and the width varies as MNIST's do.
- ``skeleton`` (every version up to v0014): thin every stroke to its skeleton and
  redraw it with one fixed pen. It loses detail: a small CNN trained on MNIST's digits
  alone read MNIST's test digits 1.1 points worse through it than through a close variant
  of ``band``, and real tablet digits 2.6 points worse (means of four seeds; see the
  README, "How good is it").

A model may also read each crop both ways, one input channel per method: its stroke method is
then the methods joined by ``+`` (``skeleton+band``: an ensemble whose members were trained on
either), and :func:`crops_to_batch` gives it one channel per method, in that order.
"""
from __future__ import annotations

import cv2
import numpy as np
from skimage.morphology import skeletonize

from workers.pipeline.quantiles import median

INPUT_SIZE = 28
"""Side of the model input, as in MNIST."""
FIT_SIZE = 20
"""The symbol's longest side in the input, as in MNIST."""
WORK_SIZE = 64
"""Longest side at which the skeleton is taken and redrawn."""
WORK_PEN = 7
"""Pen diameter used to redraw the skeleton at WORK_SIZE: about 2.2 px at FIT_SIZE,
close to the strokes of MNIST."""
_WORK_MARGIN = WORK_PEN
_PEN = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (WORK_PEN, WORK_PEN))
BAND_HALF_WIDTH = (2.0, 5.5)
"""The ``band`` method's range of stroke half-widths at WORK_SIZE, in pixels. MNIST's digits
lie between 2.3 and 5.5 (5th and 95th percentiles), real tablet strokes near 1.9."""
STROKE_METHODS = ("band", "skeleton")
DEFAULT_STROKE_METHOD = "band"
UNRECORDED_STROKE_METHOD = "skeleton"
"""What a version that recorded no stroke method was trained with (every one up to v0014)."""

STROKE_WIDTH_DESCRIPTIONS = {
    "band": "thicken strokes thinner than the band, redraw thicker ones from their skeleton",
    "skeleton": "skeletonize then redraw with a fixed pen",
}


def preprocess_config(stroke_method: str = DEFAULT_STROKE_METHOD) -> dict:
    """What every model version records of its preprocessing, so that a model and its
    preprocessing travel together."""
    methods = stroke_channels(stroke_method)
    record = {
        "function": "workers.pipeline.preprocess." + ("crop_to_input" if len(methods) == 1 else "crop_to_channels"),
        "input_size": INPUT_SIZE,
        "fit_size": FIT_SIZE,
        "work_size": WORK_SIZE,
        "work_pen": WORK_PEN,
        "ink": "bright on dark, scaled to [0, 1]",
        "centring": "centre of mass",
        "stroke_method": stroke_method,
        "stroke_width": STROKE_WIDTH_DESCRIPTIONS[stroke_method] if len(methods) == 1
        else "; ".join(f"{method}: {STROKE_WIDTH_DESCRIPTIONS[method]}" for method in methods),
    }
    if "band" in methods:
        record["band_half_width"] = list(BAND_HALF_WIDTH)
    return record


def ink_mask(crop: np.ndarray) -> np.ndarray:
    """Boolean ink mask of a crop whose ink is bright: half of its brightest value."""
    crop = np.asarray(crop)
    if crop.ndim != 2:
        raise ValueError(f"a crop is a 2-D array, got shape {crop.shape}")
    peak = float(crop.max()) if crop.size else 0.0
    if peak <= 0:
        return np.zeros(crop.shape, dtype=bool)
    return crop >= peak * 0.5


def stroke_method_of(config: dict) -> str:
    """The stroke method a model version was trained with, from its config.json.

    Versions that predate the choice recorded no ``stroke_method``: they used the skeleton.
    """
    return known_stroke_method((config.get("preprocess") or {}).get("stroke_method", UNRECORDED_STROKE_METHOD))


def known_stroke_method(method: str) -> str:
    """``method`` itself, if this code knows it (one method, or several joined by ``+``);
    otherwise a ValueError that names the known ones."""
    parts = method.split("+")
    if any(part not in STROKE_METHODS for part in parts) or len(set(parts)) != len(parts):
        raise ValueError(f"unknown stroke method {method!r}; this code knows {list(STROKE_METHODS)}, or several joined by '+'")
    return method


def stroke_channels(stroke_method: str) -> tuple[str, ...]:
    """The methods of a model's input channels, in order: ``skeleton+band`` -> (skeleton, band)."""
    return tuple(known_stroke_method(stroke_method).split("+"))


def joined_stroke_method(methods) -> str:
    """One stroke method for several, in the order first met: (skeleton, band, skeleton) -> skeleton+band."""
    return known_stroke_method("+".join(dict.fromkeys(methods)))


def _median_half_width(ink: np.ndarray) -> float:
    """Median half-width of the strokes of a binary image: the distance transform on its ridges."""
    distance = cv2.distanceTransform(ink.astype(np.uint8), cv2.DIST_L2, 3)
    ridge = (distance >= cv2.dilate(distance, np.ones((3, 3), np.uint8))) & ink
    if not ridge.any():
        return 0.0
    return median(distance[ridge])


def _skeleton_redrawn(ink: np.ndarray, pen: np.ndarray) -> np.ndarray:
    skeleton = skeletonize(ink)
    if not skeleton.any():  # a speck too small to survive resizing: keep its centre
        skeleton[ink.shape[0] // 2, ink.shape[1] // 2] = True
    return cv2.dilate(skeleton.astype(np.uint8) * 255, pen)


def _band_normalised(ink: np.ndarray) -> np.ndarray:
    """The ``band`` method on a binary image at WORK_SIZE (see the module's docstring)."""
    low, high = BAND_HALF_WIDTH
    half = _median_half_width(ink)
    if half > high:
        diameter = 2 * int(high) + 1
        return _skeleton_redrawn(ink, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (diameter, diameter)))
    grow = int(round(low - half))  # to the nearest pixel: a stroke of 1.9 stays as it is
    ink = ink.astype(np.uint8) * 255
    if grow > 0:
        ink = cv2.dilate(ink, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * grow + 1, 2 * grow + 1)))
    return ink


def crop_to_input(crop: np.ndarray, stroke_method: str = DEFAULT_STROKE_METHOD) -> np.ndarray:
    """Return the 28×28 float32 model input (ink 1.0 on 0.0) for one symbol crop.

    ``crop`` is a 2-D array of any numeric dtype with the ink bright (a binary
    mask is fine). An empty crop gives an all-zero input. ``stroke_method`` must be
    the one the model was trained with (see :func:`stroke_method_of`), and a single one
    (:func:`crop_to_channels` reads a crop several ways).
    """
    if len(stroke_channels(stroke_method)) != 1:
        raise ValueError(f"crop_to_input makes one channel; {stroke_method!r} needs crop_to_channels")
    return crop_to_channels(crop, stroke_method)[..., 0]


def _working_ink(crop: np.ndarray) -> np.ndarray | None:
    """Step 1, shared by the methods: the crop's ink, tight, scaled to WORK_SIZE with a margin
    (a boolean image); None when the crop has no ink."""
    mask = ink_mask(crop).astype(np.uint8)
    x, y, width, height = cv2.boundingRect(mask)  # the ink's bounding box (all zero for no ink)
    if width == 0:
        return None
    tight = mask[y : y + height, x : x + width] * 255
    height, width = tight.shape
    scale = (WORK_SIZE - 2 * _WORK_MARGIN) / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    work = cv2.resize(tight, size, interpolation=interpolation)
    work = cv2.copyMakeBorder(work, _WORK_MARGIN, _WORK_MARGIN, _WORK_MARGIN, _WORK_MARGIN, cv2.BORDER_CONSTANT)
    ink = work >= 128
    if not ink.any():  # a speck too small to survive resizing: keep its centre
        ink[work.shape[0] // 2, work.shape[1] // 2] = True
    return ink


def _redrawn(ink: np.ndarray, stroke_method: str) -> np.ndarray:
    """The stroke width normalised at WORK_SIZE (``ink`` is left as it is, for another method)."""
    return _skeleton_redrawn(ink, _PEN) if stroke_method == "skeleton" else _band_normalised(ink)


def _fitted(redrawn: np.ndarray, out: np.ndarray) -> None:
    """Steps 2 and 3: the longest side fitted in FIT_SIZE, centred by centre of mass in 28×28,
    written into ``out`` (a zeroed 28×28 view: one channel of a batch)."""
    x, y, width, height = cv2.boundingRect(redrawn)
    redrawn = redrawn[y : y + height, x : x + width]
    height, width = redrawn.shape
    scale = FIT_SIZE / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    small = cv2.resize(redrawn, size, interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0

    # The centre of mass from the row and column sums (np.indices and two full products took a
    # third of this function's time; cv2.moments would take an N×2 image for N points).
    total = small.sum()
    centre_y = small.sum(axis=1, dtype=np.float64) @ np.arange(small.shape[0]) / total
    centre_x = small.sum(axis=0, dtype=np.float64) @ np.arange(small.shape[1]) / total
    top = int(round(INPUT_SIZE / 2 - centre_y))
    left = int(round(INPUT_SIZE / 2 - centre_x))
    # Keep the whole symbol inside the frame even when its mass is lopsided.
    top = min(max(top, 0), INPUT_SIZE - small.shape[0])
    left = min(max(left, 0), INPUT_SIZE - small.shape[1])
    out[top : top + small.shape[0], left : left + small.shape[1]] = small


def crop_to_channels(crop: np.ndarray, stroke_method: str = DEFAULT_STROKE_METHOD) -> np.ndarray:
    """The model input of shape [28, 28, C]: one channel per method of ``stroke_method``
    (the crop scaled to the working size once for all of them)."""
    methods = stroke_channels(stroke_method)
    channels = np.zeros((INPUT_SIZE, INPUT_SIZE, len(methods)), dtype=np.float32)
    _fill_channels(crop, methods, channels)
    return channels


def _fill_channels(crop: np.ndarray, methods: tuple[str, ...], channels: np.ndarray) -> None:
    """Write the crop's input into ``channels`` (zeroed, [28, 28, C]); an empty crop leaves it zero."""
    ink = _working_ink(crop)
    if ink is None:
        return
    for index, method in enumerate(methods):
        _fitted(_redrawn(ink, method), channels[..., index])


def crops_to_batch(crops: list[np.ndarray], stroke_method: str = DEFAULT_STROKE_METHOD) -> np.ndarray:
    """Stack crops into one model batch of shape [N, 28, 28, C], C the methods of ``stroke_method``."""
    methods = stroke_channels(stroke_method)
    batch = np.zeros((len(crops), INPUT_SIZE, INPUT_SIZE, len(methods)), dtype=np.float32)
    for index, crop in enumerate(crops):
        _fill_channels(crop, methods, batch[index])  # in place: no array per crop to stack and copy
    return batch
