"""Decode uploaded bytes into an ink-bright grayscale image, refusing bad input with typed errors.

Accepts PNG, JPEG, WebP and TIFF (and anything else Pillow reads), canvas PNGs
with transparency, EXIF-rotated photos, and both ink polarities (dark ink on
paper, light ink on a dark canvas). The pixel count is checked from the header
before any pixel is decoded, so a decompression bomb costs nothing.
"""
from __future__ import annotations

import io
import struct
import warnings

import numpy as np
from PIL import Image, UnidentifiedImageError

from workers.pipeline.errors import RecognitionError
from workers.pipeline.quantiles import median

MAX_PIXELS = 40_000_000
"""About an A4 page at 600 dpi; larger images are refused before decoding."""
MAX_SIDE = 40_000
"""The longest side: an A3 page at 600 dpi is under 10,000, a line of 200 symbols drawn 64 px
high about 20,000. A strip of 40 million pixels by one, within MAX_PIXELS, took the page
clean-up minutes (labelling a one-pixel column grows faster than its pixels)."""


def decode_image(data: bytes, max_pixels: int = MAX_PIXELS, max_side: int = MAX_SIDE) -> np.ndarray:
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
    except (OSError, SyntaxError, struct.error) as error:  # a known format whose header is cut short or damaged
        raise RecognitionError("truncated_image", f"the image data is incomplete or corrupt: {error}") from error
    pages = _tiff_pages(image)
    if pages > 1:  # the first page alone would be read, and the others lost without a word
        raise RecognitionError(
            "multi_page_image", f"the TIFF holds {pages} pages and one image is read at a time: split it, or send it to the service as a batch (one job per page)"
        )
    width, height = image.size
    if width == 0 or height == 0:
        raise RecognitionError("empty_image", f"the image is {width}×{height} pixels")
    if width * height > max_pixels:
        raise RecognitionError(
            "too_many_pixels", f"the image has {width * height:,} pixels; the limit is {max_pixels:,}"
        )
    if max(width, height) > max_side:
        raise RecognitionError("too_many_pixels", f"the image is {width:,}×{height:,} pixels; a side may be at most {max_side:,}")
    try:
        image.load()
    except (OSError, SyntaxError, ValueError, struct.error) as error:
        raise RecognitionError("truncated_image", f"the image data is incomplete or corrupt: {error}") from error
    return to_ink(upright(image))


def _tiff_pages(image: Image.Image) -> int:
    """The pages of a TIFF (read from its directory chain, no pixel decoded); 1 for other formats.
    The frames of an animated WebP or GIF are not pages: its first frame is the drawing."""
    if image.format != "TIFF":
        return 1
    try:
        return int(getattr(image, "n_frames", 1))
    except (OSError, SyntaxError, ValueError, struct.error) as error:
        raise RecognitionError("truncated_image", f"the TIFF's page directory is damaged: {error}") from error


_ORIENTATION_TAG = 0x0112
_TRANSPOSE_FOR_ORIENTATION = {
    2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180, 4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE, 8: Image.Transpose.ROTATE_90,
}


def upright(image: Image.Image) -> Image.Image:
    """Apply the EXIF orientation of a photo. Only the orientation tag is read: Pillow's
    exif_transpose also rewrites the whole EXIF block and raises on a malformed tag
    elsewhere in it, which would refuse a photo whose pixels are fine."""
    try:
        orientation = image.getexif().get(_ORIENTATION_TAG)
    except Exception:  # noqa: BLE001 - unreadable EXIF: the pixels are still the picture
        return image
    method = _TRANSPOSE_FOR_ORIENTATION.get(orientation)
    return image if method is None else image.transpose(method)


def to_ink(image: Image.Image) -> np.ndarray:
    """Ink-bright grayscale, whatever the polarity, bit depth or transparency of the source."""
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        alpha = np.asarray(rgba.getchannel("A"))
        if border_pixels(alpha).mean() < 128:
            # A canvas drawn on a transparent background: where the pen went is the
            # ink, whatever its colour.
            return np.ascontiguousarray(alpha)
        # An opaque page with a few transparent pixels (a screenshot's rounded corners): as shown on white.
        image = Image.alpha_composite(Image.new("RGBA", rgba.size, "white"), rgba)
    gray = _gray(image)
    if _background_is_light(gray):
        gray = 255 - gray
    return np.ascontiguousarray(gray)


def _gray(image: Image.Image) -> np.ndarray:
    """8-bit grayscale. Deeper images (16-bit scans, 32-bit integer or float TIFFs) are
    stretched from their darkest to their brightest value: Pillow's conversion would clip
    a 16-bit page, paper and ink alike, to white."""
    if image.mode in ("I", "F") or image.mode.startswith("I;16"):
        values = np.asarray(image, dtype=np.float64)
        low, high = float(values.min()), float(values.max())
        if high <= low:
            return np.zeros(values.shape, np.uint8)
        return np.round((values - low) * (255.0 / (high - low))).astype(np.uint8)
    try:
        return np.asarray(image.convert("L"))
    except (ValueError, OSError) as error:  # LAB and other modes Pillow cannot turn into gray
        raise RecognitionError("unsupported_image_mode", f"images in Pillow's {image.mode} mode cannot be read; send RGB or grayscale") from error


def border_pixels(values: np.ndarray) -> np.ndarray:
    """The outermost rows and columns: mostly background on a page or a canvas."""
    return np.concatenate([values[0], values[-1], values[:, 0], values[:, -1]])


def _background_is_light(gray: np.ndarray) -> bool:
    """The border of a page or canvas is mostly background: judge polarity from it."""
    return median(border_pixels(gray)) > 127
