"""Decode, page clean-up and segmentation on real image bytes (no model involved)."""
import io

import cv2
import numpy as np
import pytest
from PIL import Image

from training.compose import render_line, render_page
from workers.pipeline.errors import RecognitionError
from workers.pipeline.imaging import decode_image
from workers.pipeline.page import clean_page, estimate_skew
from workers.pipeline.segment import find_lines


def _encode(array: np.ndarray, fmt: str = "PNG", **kwargs) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format=fmt, **kwargs)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def line():
    return render_line("12+(3-1)*4=20", np.random.default_rng(11))


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP", "TIFF"])
def test_formats_and_polarities_decode_to_the_same_ink(line, fmt):
    ink, _ = line
    for source in (255 - ink, ink):  # dark on paper, light on a dark canvas
        decoded = decode_image(_encode(source, fmt))
        assert decoded.shape == ink.shape
        assert np.abs(decoded.astype(int) - ink.astype(int)).mean() < 6


def test_transparent_canvas_png_reads_the_pen_strokes(line):
    ink, _ = line
    rgba = np.zeros(ink.shape + (4,), np.uint8)
    rgba[..., 3] = ink  # black strokes on a transparent canvas
    np.testing.assert_array_equal(decode_image(_encode(rgba)), ink)


def test_exif_rotation_is_applied(line):
    ink, _ = line
    image = Image.fromarray(255 - np.ascontiguousarray(np.rot90(ink)))
    exif = Image.Exif()
    exif[0x0112] = 8  # the camera was turned: rotate 90° clockwise to view
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", exif=exif.tobytes())
    assert decode_image(buffer.getvalue()).shape == ink.shape


@pytest.mark.parametrize(
    "data, code",
    [
        (b"", "not_an_image"),
        (b"hello, this is text", "not_an_image"),
        (_encode(np.random.default_rng(0).integers(0, 256, (80, 80), dtype=np.uint8))[:3000], "truncated_image"),
    ],
)
def test_bad_bytes_are_typed_errors(data, code):
    with pytest.raises(RecognitionError) as caught:
        decode_image(data)
    assert caught.value.code == code and caught.value.message


def test_pixel_bomb_is_refused_from_the_header():
    header_only = _encode(np.zeros((10, 10), np.uint8))
    # Patch the IHDR to claim 50,000 × 50,000 pixels: refused before decoding.
    import struct
    import zlib

    ihdr = struct.pack(">IIBBBBB", 50_000, 50_000, 8, 0, 0, 0, 0)
    chunk = struct.pack(">I", 13) + b"IHDR" + ihdr + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    forged = header_only[:8] + chunk + header_only[33:]
    with pytest.raises(RecognitionError) as caught:
        decode_image(forged)
    assert caught.value.code == "too_many_pixels"


def test_blank_canvas_has_no_symbols():
    page = clean_page(np.zeros((300, 700), np.uint8))
    with pytest.raises(RecognitionError) as caught:
        find_lines(page.binary)
    assert caught.value.code == "no_symbols"


def test_equals_bars_merge_and_a_short_minus_survives():
    ink, boxes = render_line("7-1=6", np.random.default_rng(5))
    lines = find_lines(clean_page(ink).binary)
    assert len(lines) == 1
    assert len(lines[0].groups) == 5  # 7, -, 1, = (two bars, one symbol), 6


def test_a_skewed_ruled_unevenly_lit_page_gives_one_line_per_written_line():
    rng = np.random.default_rng(3)
    texts = [f"{i}+{i * 3}={i * 4}" for i in range(1, 21)]
    paper = render_page(texts, rng, dpi=150, skew_degrees=4.0, ruled=True, uneven=True, ruling_grey=90)
    ink = decode_image(_encode(paper))
    page = clean_page(ink)
    assert abs(abs(page.skew_degrees) - 4.0) < 0.5
    assert page.rulings_removed > 0
    lines = find_lines(page.binary)
    assert len(lines) == 20
    # No ruling line survives as a wide flat "minus" spanning the page.
    for line in lines:
        for group in line.groups:
            assert group.whole.box[2] < paper.shape[1] * 0.2


def test_skew_estimate_is_level_for_a_straight_page():
    rng = np.random.default_rng(4)
    paper = render_page(["1+1=2"] * 12, rng, dpi=100, ruled=False, uneven=False)
    _, binary = cv2.threshold(255 - paper, 60, 255, cv2.THRESH_BINARY)
    assert abs(estimate_skew(binary)) <= 0.3
