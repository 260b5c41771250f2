"""Test inputs rendered from held-out handwriting (MNIST test-split digits, generated operators).

The same text and seed always give the same image, so a test can assert what
the committed model reads from it.
"""
from __future__ import annotations

import io

import numpy as np
from PIL import Image

from training.compose import render_line, render_page


def png(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()


def line_png(text: str, seed: int) -> bytes:
    """A canvas-like line: dark ink on white."""
    ink, _ = render_line(text, np.random.default_rng(seed), height=64)
    return png(255 - ink)


def page_image(lines: list[str], seed: int, dpi: int = 150) -> np.ndarray:
    return render_page(lines, np.random.default_rng(seed), dpi=dpi, skew_degrees=1.0)


def worksheet_pdf(pages: list[list[str]], seed: int, dpi: int = 150) -> bytes:
    """A multi-page scanned-worksheet PDF, one rendered page per list of lines."""
    images = [Image.fromarray(page_image(lines, seed + index, dpi)) for index, lines in enumerate(pages)]
    buffer = io.BytesIO()
    images[0].save(buffer, format="PDF", save_all=True, append_images=images[1:], resolution=dpi)
    return buffer.getvalue()
