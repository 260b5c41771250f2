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


def rotate(image: np.ndarray, angle: float) -> np.ndarray:
    height, width = image.shape
    matrix = cv2.getRotationMatrix2D((width / 2, height / 2), angle, 1.0)
    return cv2.warpAffine(image, matrix, (width, height), flags=cv2.INTER_NEAREST, borderValue=0)


def remove_rulings(binary: np.ndarray) -> tuple[np.ndarray, int]:
    """Take out long straight horizontal and vertical lines (ruled or squared paper).

    A ruling line spans a good part of the page, far longer than any symbol, so
    an opening with a kernel an eighth of the page long finds it and never a
    minus or a tall ``1`` (only pages, not canvases, get here). Strokes that crossed a ruling are
    reconnected by a short closing across the removed band.
    """
    height, width = binary.shape
    # Faint rulings binarise as dotted runs: join the dots first, along the line only.
    joined_h = cv2.morphologyEx(binary, cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_RECT, (9, 1)))
    joined_v = cv2.morphologyEx(binary, cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_RECT, (1, 9)))
    horizontal = cv2.morphologyEx(joined_h, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_RECT, (max(40, width // 8), 1)))
    vertical = cv2.morphologyEx(joined_v, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_RECT, (1, max(40, height // 8))))
    rulings = cv2.bitwise_or(horizontal, vertical)
    removed = int(np.count_nonzero(rulings))
    if removed == 0:
        return binary, 0
    # Thicken the ruling mask a little so anti-aliased fringes go too.
    rulings = cv2.dilate(rulings, np.ones((3, 3), np.uint8))
    cleaned = cv2.bitwise_and(binary, cv2.bitwise_not(rulings))
    # Rejoin strokes cut by a ruling: close short gaps across the removed bands only.
    across_horizontal = cv2.morphologyEx(cleaned, cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_RECT, (1, 7)))
    across_vertical = cv2.morphologyEx(cleaned, cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_RECT, (7, 1)))
    bridges = cv2.bitwise_or(
        cv2.bitwise_and(across_horizontal, cv2.dilate(horizontal, np.ones((5, 5), np.uint8))),
        cv2.bitwise_and(across_vertical, cv2.dilate(vertical, np.ones((5, 5), np.uint8))),
    )
    return cv2.bitwise_or(cleaned, bridges), removed


def clean_page(ink: np.ndarray) -> CleanPage:
    is_page = min(ink.shape) >= PAGE_MIN_SIDE
    # Canvases and single-line crops are evenly lit, and their strokes may be as wide
    # as any background window: flattening would hollow them out. Pages get it all.
    binary = binarise(flatten(ink) if is_page else ink)
    skew, removed = 0.0, 0
    if is_page and binary.any():
        skew = estimate_skew(binary)
        if abs(skew) >= 0.2:
            binary = rotate(binary, skew)
        binary, removed = remove_rulings(binary)
    return CleanPage(binary, skew, removed)
