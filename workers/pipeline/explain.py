"""Pictures of every step, as PNG bytes: binarised page, boxes and lines, crops with top-3, result.

These are what the web page shows under "how it was read"; they are drawn from
a :class:`~workers.pipeline.recognize.PageResult` and cost nothing unless asked for.
"""
from __future__ import annotations

import io
from functools import lru_cache

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from workers.pipeline.symbols import DISPLAY

LINE_COLOURS = [(0, 114, 178), (213, 94, 0), (0, 158, 115), (204, 121, 167), (230, 159, 0), (86, 180, 233)]
"""Okabe-Ito colours: distinguishable with colour-blindness."""
LOW_CONFIDENCE = 0.8


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    # Level 1: these pictures are written for every job and read once or twice; zlib's
    # default level takes twice the time for a few percent fewer bytes.
    image.save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


@lru_cache(maxsize=None)
def _font(size: int) -> ImageFont.ImageFont:  # loading the font costs more than drawing with it
    return ImageFont.load_default(size=size)


@lru_cache(maxsize=4096)
def _text_mask(text: str, size: int) -> Image.Image:
    """The text's coverage, as ImageDraw.text would draw it at (0, 0). Rendering glyphs is
    most of the cost of these pictures, and the same labels ("7  100.0%") come back job
    after job, so each is rendered once per process."""
    _, _, right, bottom = _font(size).getbbox(text)
    mask = Image.new("L", (max(1, right), max(1, bottom)))
    ImageDraw.Draw(mask).text((0, 0), text, fill=255, font=_font(size))
    return mask


def _text(image: Image.Image, xy: tuple[int, int], text: str, fill, size: int) -> None:
    image.paste(fill, (int(xy[0]), int(xy[1])), _text_mask(text, size))


def _shown(text: str) -> str:
    # The built-in font has no ×: the pictures use a plain x, the web page the real sign.
    return "".join(DISPLAY.get(c, c) for c in text).replace("×", "x")


def binarised(result) -> bytes:
    """The clean binary page, dark ink on white: a 1-bit PNG, half the time of a grey one to write."""
    return _png(Image.fromarray(result.page.binary == 0))


GREY_LEVELS = 16
"""The boxes picture is a palette image: the ink in this many greys, then the box colours.
One byte a pixel instead of three makes it three times cheaper to write, which matters
for a whole page at 200-300 dpi."""
_RED = (220, 0, 0)
_PALETTE = [v for i in range(GREY_LEVELS) for v in (i * 255 // (GREY_LEVELS - 1),) * 3] + [v for c in (*LINE_COLOURS, _RED) for v in c]
_COLOUR_INDEX = {colour: GREY_LEVELS + i for i, colour in enumerate((*LINE_COLOURS, _RED))}


def boxes(result) -> bytes:
    """The (deskewed) input with each line's box and each symbol's box and label."""
    ink = result.page.frame(result.ink)
    canvas = Image.fromarray(((255 - ink.astype(np.uint16)) * (GREY_LEVELS - 1) // 255).astype(np.uint8))
    canvas.putpalette(_PALETTE)  # an L image with a palette is a P image
    draw = ImageDraw.Draw(canvas)
    # Labels grow with the page, so they stay legible on a 300 dpi scan; but never past a
    # fraction of the short side (a long, low strip would get letters taller than itself).
    scale = max(1, min(max(canvas.size) // 600, min(canvas.size) // 60))
    for number, line in enumerate(result.lines):
        colour = _COLOUR_INDEX[LINE_COLOURS[number % len(LINE_COLOURS)]]
        x, y, w, h = line.box
        draw.rectangle([x - 4 * scale, y - 4 * scale, x + w + 4 * scale, y + h + 4 * scale], outline=colour, width=scale)
        _text(canvas, (x, max(0, y - 18 * scale)), f"line {number + 1}", colour, 12 * scale)
        for symbol in line.symbols:
            sx, sy, sw, sh = symbol.box
            weak = symbol.probability < LOW_CONFIDENCE
            draw.rectangle([sx, sy, sx + sw, sy + sh], outline=_COLOUR_INDEX[_RED] if weak else colour, width=2 * scale if weak else scale)
            _text(canvas, (sx, sy + sh + 2), _shown(symbol.symbol), colour, 12 * scale)
    return _png(canvas)


def crops(result, columns: int = 8) -> bytes:
    """Every symbol's 28×28 model input, enlarged, with its top-3 classes."""
    symbols = [symbol for line in result.lines for symbol in line.symbols]
    cell_w, cell_h, zoom = 120, 150, 3
    rows = max(1, (len(symbols) + columns - 1) // columns)
    # Grey levels only: a third of the bytes of RGB to compress, and this sheet is made for every job.
    sheet = Image.new("L", (cell_w * min(columns, max(1, len(symbols))), cell_h * rows), 255)
    for index, symbol in enumerate(symbols):
        left, top = (index % columns) * cell_w, (index // columns) * cell_h
        tile = (255 - np.clip(symbol.crop * 255, 0, 255).astype(np.uint8))
        tile = cv2.resize(tile, None, fx=zoom, fy=zoom, interpolation=cv2.INTER_NEAREST)
        sheet.paste(Image.fromarray(tile), (left + (cell_w - tile.shape[1]) // 2, top + 2))
        for rank, (label, probability) in enumerate(symbol.top3):
            colour = 0 if rank == 0 else 90
            _text(sheet, (left + 8, top + 88 + rank * 19), f"{_shown(label)}  {probability:6.1%}", colour, 13)
    return _png(sheet)


def summary(result) -> bytes:
    """The decoded expression of each line with its value and answer check."""
    font = _font(28)
    texts = []
    for number, line in enumerate(result.lines):
        if line.error is not None:
            seen = line.error.best_reading or line.expression or ""
            texts.append((f"{number + 1}.  {_shown(seen)}   ?  {line.error.message}", (180, 0, 0)))
            continue
        text = f"{number + 1}.  {_shown(line.expression)} = {line.value}"
        colour = (0, 0, 0)
        if line.answer is not None:
            # Words, not ✓/✗: the built-in font has no check marks.
            text += f"   written {_shown(line.answer_expression)}  {'right' if line.correct else 'wrong'}"
            colour = (0, 120, 60) if line.correct else (190, 0, 0)
        texts.append((text, colour))
    width = max(400, 20 + max((int(font.getlength(t)) for t, _ in texts), default=0))
    image = Image.new("RGB", (width, 20 + 44 * max(1, len(texts))), "white")
    draw = ImageDraw.Draw(image)
    for row, (text, colour) in enumerate(texts):
        draw.text((10, 10 + 44 * row), text, fill=colour, font=font)
    return _png(image)


def explain(result) -> dict[str, bytes]:
    """All step pictures, by name."""
    return {"binarised": binarised(result), "boxes": boxes(result), "crops": crops(result), "summary": summary(result)}


def symbol_sheet(result) -> bytes:
    """The model inputs as data, not a picture: row i holds line i's 28×28 crops left to right.

    Stored with each job so that a user's correction can keep the crops it labels.
    """
    size = 28
    widest = max((len(line.symbols) for line in result.lines), default=0)
    sheet = np.zeros((size * max(1, len(result.lines)), size * max(1, widest)), np.uint8)
    for row, line in enumerate(result.lines):
        for column, symbol in enumerate(line.symbols):
            sheet[row * size:(row + 1) * size, column * size:(column + 1) * size] = np.clip(symbol.crop * 255, 0, 255).astype(np.uint8)
    return _png(Image.fromarray(sheet))
