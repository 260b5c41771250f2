"""Decode uploaded bytes into an ink-bright grayscale image, refusing bad input with typed errors.

Accepts PNG, JPEG, WebP and TIFF (and anything else Pillow reads), canvas PNGs
with transparency, EXIF-rotated photos, and both ink polarities (dark ink on
paper, light ink on a dark canvas). The pixel count is checked from the header
before any pixel is decoded, so a decompression bomb costs nothing.
"""
from __future__ import annotations

import io
import warnings

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from workers.pipeline.errors import RecognitionError

MAX_PIXELS = 40_000_000
"""About an A4 page at 600 dpi; larger images are refused before decoding."""


def decode_image(data: bytes, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Return a uint8 image with the ink bright on a dark background."""
    if not data:
        raise RecognitionError("not_an_image", "the upload is empty")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        raise RecognitionError("too_many_pixels", f"the image header claims too many pixels; the limit is {max_pixels:,}") from error
    except (UnidentifiedImageError, ValueError) as error:
        raise RecognitionError("not_an_image", "the file is not an image in a known format (PNG, JPEG, WebP, TIFF)") from error
    width, height = image.size
    if width == 0 or height == 0:
        raise RecognitionError("empty_image", f"the image is {width}×{height} pixels")
    if width * height > max_pixels:
        raise RecognitionError(
            "too_many_pixels", f"the image has {width * height:,} pixels; the limit is {max_pixels:,}"
        )
    try:
        image.load()
        image = ImageOps.exif_transpose(image)
    except (OSError, SyntaxError, ValueError) as error:
        raise RecognitionError("truncated_image", f"the image data is incomplete or corrupt: {error}") from error
    return to_ink(image)


def to_ink(image: Image.Image) -> np.ndarray:
    """Ink-bright grayscale, whatever the polarity or transparency of the source."""
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        alpha = np.asarray(rgba.getchannel("A"))
        if alpha.min() < 250:
            # A canvas drawn on a transparent background: where the pen went is the
            # ink, whatever its colour.
            return np.ascontiguousarray(alpha)
    gray = np.asarray(image.convert("L"))
    if _background_is_light(gray):
        gray = 255 - gray
    return np.ascontiguousarray(gray)


def _background_is_light(gray: np.ndarray) -> bool:
    """The border of a page or canvas is mostly background: judge polarity from it."""
    border = np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]])
    return float(np.median(border)) > 127
