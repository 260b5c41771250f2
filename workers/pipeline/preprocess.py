"""The one function that turns a symbol crop into the model's 28×28 input.

Training and inference both call :func:`crop_to_input`; a mismatch between the
two is the classic bug of this field, so there is no second implementation.

It follows MNIST's convention (fit the symbol in 20×20, centre it by centre of
mass in 28×28) and also normalises the stroke width: the symbol is thinned to
its skeleton and redrawn with one fixed pen. A 1 px scanned stroke, a 3 px
tablet stroke and a 10 px canvas stroke therefore give the same input.
"""
from __future__ import annotations

import cv2
import numpy as np
from skimage.morphology import skeletonize

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

PREPROCESS_CONFIG = {
    "function": "workers.pipeline.preprocess.crop_to_input",
    "input_size": INPUT_SIZE,
    "fit_size": FIT_SIZE,
    "work_size": WORK_SIZE,
    "work_pen": WORK_PEN,
    "ink": "bright on dark, scaled to [0, 1]",
    "centring": "centre of mass",
    "stroke_width": "skeletonize then redraw with a fixed pen",
}
"""Recorded in every model version, so that a model and its preprocessing travel together."""


def ink_mask(crop: np.ndarray) -> np.ndarray:
    """Boolean ink mask of a crop whose ink is bright: half of its brightest value."""
    crop = np.asarray(crop)
    if crop.ndim != 2:
        raise ValueError(f"a crop is a 2-D array, got shape {crop.shape}")
    peak = float(crop.max()) if crop.size else 0.0
    if peak <= 0:
        return np.zeros(crop.shape, dtype=bool)
    return crop >= peak * 0.5


def crop_to_input(crop: np.ndarray) -> np.ndarray:
    """Return the 28×28 float32 model input (ink 1.0 on 0.0) for one symbol crop.

    ``crop`` is a 2-D array of any numeric dtype with the ink bright (a binary
    mask is fine). An empty crop gives an all-zero input.
    """
    mask = ink_mask(crop)
    ys, xs = np.nonzero(mask)
    if ys.size == 0:
        return np.zeros((INPUT_SIZE, INPUT_SIZE), dtype=np.float32)
    tight = mask[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1].astype(np.uint8) * 255

    # 1. Scale to the working size and thin the strokes to one pixel.
    height, width = tight.shape
    scale = (WORK_SIZE - 2 * _WORK_MARGIN) / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    work = cv2.resize(tight, size, interpolation=interpolation)
    work = cv2.copyMakeBorder(work, _WORK_MARGIN, _WORK_MARGIN, _WORK_MARGIN, _WORK_MARGIN, cv2.BORDER_CONSTANT)
    skeleton = skeletonize(work >= 128)
    if not skeleton.any():  # a speck too small to survive resizing: keep its centre
        skeleton[work.shape[0] // 2, work.shape[1] // 2] = True

    # 2. Redraw with the fixed pen and fit the longest side in FIT_SIZE.
    redrawn = cv2.dilate(skeleton.astype(np.uint8) * 255, _PEN)
    ys, xs = np.nonzero(redrawn)
    redrawn = redrawn[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]
    height, width = redrawn.shape
    scale = FIT_SIZE / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    small = cv2.resize(redrawn, size, interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0

    # 3. Centre by centre of mass in 28×28, as MNIST does.
    total = small.sum()
    rows, cols = np.indices(small.shape)
    centre_y = (rows * small).sum() / total
    centre_x = (cols * small).sum() / total
    top = int(round(INPUT_SIZE / 2 - centre_y))
    left = int(round(INPUT_SIZE / 2 - centre_x))
    # Keep the whole symbol inside the frame even when its mass is lopsided.
    top = min(max(top, 0), INPUT_SIZE - small.shape[0])
    left = min(max(left, 0), INPUT_SIZE - small.shape[1])
    out = np.zeros((INPUT_SIZE, INPUT_SIZE), dtype=np.float32)
    out[top : top + small.shape[0], left : left + small.shape[1]] = small
    return out


def crops_to_batch(crops: list[np.ndarray]) -> np.ndarray:
    """Stack crops into one model batch of shape [N, 28, 28, 1]."""
    batch = np.zeros((len(crops), INPUT_SIZE, INPUT_SIZE, 1), dtype=np.float32)
    for index, crop in enumerate(crops):
        batch[index, :, :, 0] = crop_to_input(crop)
    return batch
