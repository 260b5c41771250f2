"""Clean up a page: flatten uneven lighting, binarise, deskew, remove ruling lines.

Input and output images are ink-bright. Scans arrive at 150–300 dpi, up to ±5°
skewed, on plain, ruled or squared paper; canvases arrive clean. Each step is
cheap on a clean canvas, so one path serves both.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

MIN_CONTRAST = 40
"""Below this ink contrast (0-255) an image is treated as blank."""
PAGE_MIN_SIDE = 600
"""An image whose SHORTER side is below this is a canvas or a line crop, not a scanned
page: it gets no flattening, deskew or ruling removal."""
MAX_SKEW_DEGREES = 5.0


@dataclass
class CleanPage:
    binary: np.ndarray  # uint8 0/255, ink 255, deskewed, rulings removed
    skew_degrees: float
    rulings_removed: int  # pixels of ruling lines taken out


def flatten(ink: np.ndarray) -> np.ndarray:
    """Remove slowly varying background (uneven lighting, shadows) by a white top-hat.

    The background is estimated on a reduced copy with a window wider than any
    pen stroke, so the cost stays small on a 300 dpi page.
    """
    height, width = ink.shape
    factor = max(1, min(height, width) // 200)
    small = cv2.resize(ink, (max(1, width // factor), max(1, height // factor)), interpolation=cv2.INTER_AREA)
    window = max(3, (min(small.shape) // 6) | 1)
    background = cv2.morphologyEx(small, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_RECT, (window, window)))
    background = cv2.blur(background, (window, window))
    background = cv2.resize(background, (width, height), interpolation=cv2.INTER_LINEAR)
    return cv2.subtract(ink, background)


def binarise(flat: np.ndarray) -> np.ndarray:
    """Otsu on the flattened image; a blank image gives an empty mask."""
    if int(flat.max()) < MIN_CONTRAST:
        return np.zeros_like(flat)
    threshold, binary = cv2.threshold(flat, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    if threshold < MIN_CONTRAST / 2:  # Otsu split paper noise from paper noise
        _, binary = cv2.threshold(flat, MIN_CONTRAST, 255, cv2.THRESH_BINARY)
    return binary


def estimate_skew(binary: np.ndarray) -> float:
    """The rotation (degrees) that makes text lines horizontal, within ±5°.

    Projection-profile search: text rows give the sharpest horizontal profile
    when they are level. Done on a reduced copy, coarse then fine.
    """
    height, width = binary.shape
    scale = min(1.0, 1200 / max(height, width))
    small = cv2.resize(binary, (max(1, int(width * scale)), max(1, int(height * scale))), interpolation=cv2.INTER_AREA)
    centre = (small.shape[1] / 2, small.shape[0] / 2)

    def sharpness(angle: float) -> float:
        matrix = cv2.getRotationMatrix2D(centre, angle, 1.0)
        rotated = cv2.warpAffine(small, matrix, (small.shape[1], small.shape[0]), flags=cv2.INTER_LINEAR)
        profile = rotated.sum(axis=1, dtype=np.float64)
        # Level lines give the steepest jumps between ink rows and gaps.
        return float(np.square(np.diff(profile)).sum())

    coarse = max(np.arange(-MAX_SKEW_DEGREES, MAX_SKEW_DEGREES + 0.01, 0.5), key=sharpness)
    fine = max(np.arange(coarse - 0.5, coarse + 0.51, 0.1), key=sharpness)
    return float(np.clip(fine, -MAX_SKEW_DEGREES, MAX_SKEW_DEGREES))


def rotate(image: np.ndarray, angle: float, interpolation: int = cv2.INTER_NEAREST) -> np.ndarray:
    """Rotate about the centre by ``angle`` degrees, keeping the size; the border is background."""
    height, width = image.shape
    matrix = cv2.getRotationMatrix2D((width / 2, height / 2), angle, 1.0)
    return cv2.warpAffine(image, matrix, (width, height), flags=interpolation, borderValue=0)


def remove_rulings(flat: np.ndarray) -> tuple[np.ndarray, int]:
    """Take out long straight horizontal and vertical lines (ruled or squared paper).

    Works on the flattened grayscale page, before thresholding, so a faint ruling
    cannot break into dashes that would read as minus signs. A ruling spans a good
    part of the page: a grey opening with a kernel an eighth of the page long keeps
    it and nothing a person writes (only pages, not canvases, get here). Where a
    stroke crosses a ruling the stroke is brighter than the ruling and is kept.
    """
    height, width = flat.shape
    horizontal = cv2.morphologyEx(flat, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_RECT, (max(40, width // 8), 1)))
    vertical = cv2.morphologyEx(flat, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_RECT, (1, max(40, height // 8))))
    rulings = cv2.max(horizontal, vertical)
    # Rulings are a pixel or two thick but anti-aliased: widen the estimate a little.
    rulings = cv2.dilate(rulings, cv2.getStructuringElement(cv2.MORPH_RECT, (3, 3)))
    removed = int(np.count_nonzero(rulings >= MIN_CONTRAST // 2))
    if removed == 0:
        return flat, 0
    stroke_on_top = cv2.subtract(flat, rulings) >= MIN_CONTRAST
    cleaned = np.where(stroke_on_top, flat, cv2.subtract(flat, rulings)).astype(np.uint8)
    return cleaned, removed


def clean_page(ink: np.ndarray) -> CleanPage:
    # Canvases and single-line crops are evenly lit, and their strokes may be as wide
    # as any background window: flattening would hollow them out. Pages get it all.
    if min(ink.shape) < PAGE_MIN_SIDE:
        return CleanPage(binarise(ink), 0.0, 0)
    flat = flatten(ink)
    binary = binarise(flat)
    skew = estimate_skew(binary) if binary.any() else 0.0
    if abs(skew) >= 0.2:
        flat = rotate(flat, skew, cv2.INTER_LINEAR)
    flat, removed = remove_rulings(flat)
    return CleanPage(binarise(flat), skew, removed)
