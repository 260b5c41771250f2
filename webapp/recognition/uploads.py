"""Checks made on an upload before it becomes a job, PDF pages rendered to images, and a
multi-page TIFF's pages taken apart.

Only headers are read here (Pillow, pypdfium2): the web side never decodes a
whole image, except a PDF's or a multi-page TIFF's pages, each checked against
MAX_IMAGE_PIXELS first, and never imports the recognition pipeline. Each limit is named in its error.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import io
import warnings
from dataclasses import dataclass

from django.conf import settings
from PIL import Image
from rest_framework import status

from webapp.recognition.errors import ApiError, ErrorCode

IMAGE_FORMATS = {"PNG": ".png", "JPEG": ".jpg", "MPO": ".jpg", "WEBP": ".webp", "TIFF": ".tif"}


@dataclass(frozen=True)
class Page:
    """One image that becomes one job."""

    name: str
    data: bytes
    extension: str

    def __post_init__(self):
        # A file name is shown and stored: no control characters (PostgreSQL refuses NUL).
        object.__setattr__(self, "name", "".join(c for c in self.name if c.isprintable())[:255] or "upload")

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


def too_large(what: str, size: int, limit: int, setting: str) -> ApiError:
    return ApiError(
        ErrorCode.FILE_TOO_LARGE, f"{what} is {size:,} bytes; the limit {setting} is {limit:,}",
        status.HTTP_413_REQUEST_ENTITY_TOO_LARGE, limit=setting, limit_value=limit,
    )


def check_image(name: str, data: bytes) -> Page:
    """A Page for an image upload, or a typed 4xx naming the rule it breaks."""
    if len(data) > settings.MAX_IMAGE_BYTES:
        raise too_large(f"'{name}'", len(data), settings.MAX_IMAGE_BYTES, "MAX_IMAGE_BYTES")
    if not data:
        raise ApiError(ErrorCode.MISSING_IMAGE, f"'{name}' is empty")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            width, height = image.size
            fmt = image.format
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise _too_many_pixels(name, None)
    except Exception:  # Pillow's plugins raise many types for a file they cannot read (NotImplementedError for a DDS, say)
        raise ApiError(ErrorCode.UNSUPPORTED_FILE_TYPE, f"'{name}' is not a PNG, JPEG, WebP or TIFF image, nor a PDF") from None
    if fmt not in IMAGE_FORMATS:
        raise ApiError(ErrorCode.UNSUPPORTED_FILE_TYPE, f"'{name}' is a {fmt} image; send PNG, JPEG, WebP or TIFF")
    if (pages := tiff_page_count(name, data)) > 1:
        raise ApiError(ErrorCode.UNSUPPORTED_FILE_TYPE, f"'{name}' is a TIFF of {pages} pages; a job takes one image: send it to /api/v1/batches/")
    if width * height > settings.MAX_IMAGE_PIXELS:
        raise _too_many_pixels(name, width * height)
    if max(width, height) > settings.MAX_IMAGE_SIDE:
        raise ApiError(
            ErrorCode.TOO_MANY_PIXELS, f"'{name}' is {width:,}×{height:,} pixels; MAX_IMAGE_SIDE is {settings.MAX_IMAGE_SIDE:,}",
            status.HTTP_413_REQUEST_ENTITY_TOO_LARGE, limit="MAX_IMAGE_SIDE", limit_value=settings.MAX_IMAGE_SIDE,
        )
    if min(width, height) < settings.MIN_IMAGE_SIDE:
        raise ApiError(
            ErrorCode.IMAGE_TOO_SMALL, f"'{name}' is {width}×{height} pixels; MIN_IMAGE_SIDE is {settings.MIN_IMAGE_SIDE}",
            limit="MIN_IMAGE_SIDE", limit_value=settings.MIN_IMAGE_SIDE,
        )
    _check_integrity(name, data)
    return Page(name, data, IMAGE_FORMATS[fmt])


def _check_integrity(name: str, data: bytes) -> None:
    """Pillow's verify(): chunk checksums and structure, without decoding the pixels."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            Image.open(io.BytesIO(data)).verify()
    except Exception as error:  # Pillow raises many types for damaged data
        raise ApiError(ErrorCode.CORRUPT_IMAGE, f"'{name}' is damaged or incomplete: {error}") from None


def _too_many_pixels(name: str, pixels: int | None) -> ApiError:
    size = f"{pixels:,} pixels" if pixels else "too many pixels"
    return ApiError(
        ErrorCode.TOO_MANY_PIXELS, f"'{name}' has {size}; the limit MAX_IMAGE_PIXELS is {settings.MAX_IMAGE_PIXELS:,}",
        status.HTTP_413_REQUEST_ENTITY_TOO_LARGE, limit="MAX_IMAGE_PIXELS", limit_value=settings.MAX_IMAGE_PIXELS,
    )


def tiff_page_count(name: str, data: bytes) -> int:
    """The pages of a TIFF, from its directory chain (no pixel decoded); 1 for any other file.
    A scanner's multi-page TIFF is a stack of pages, like a PDF's."""
    if data[:4] not in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):  # TIFF and BigTIFF
        return 1
    try:
        with Image.open(io.BytesIO(data)) as image:
            return int(getattr(image, "n_frames", 1))
    except Image.DecompressionBombError:
        raise _too_many_pixels(name, None)
    except Exception as error:  # Pillow raises many types for a damaged directory
        raise ApiError(ErrorCode.CORRUPT_IMAGE, f"'{name}' is damaged or incomplete: {error}") from None


def split_tiff(name: str, data: bytes) -> list[Page]:
    """One single-page TIFF per page, lossless (deflate), each page's size checked before it is decoded."""
    pages = []
    with Image.open(io.BytesIO(data)) as image:
        for index in range(image.n_frames):
            page_name = f"{name}#page={index + 1}"
            try:
                image.seek(index)
            except Exception as error:  # noqa: BLE001 - a damaged directory entry
                raise ApiError(ErrorCode.CORRUPT_IMAGE, f"'{page_name}' is damaged or incomplete: {error}") from None
            width, height = image.size
            if width * height > settings.MAX_IMAGE_PIXELS:
                raise _too_many_pixels(page_name, width * height)
            buffer = io.BytesIO()
            try:
                image.save(buffer, format="TIFF", compression="tiff_deflate")
            except Exception as error:  # noqa: BLE001 - the page's pixels cannot be decoded
                raise ApiError(ErrorCode.CORRUPT_IMAGE, f"'{page_name}' is damaged or incomplete: {error}") from None
            pages.append(Page(page_name, buffer.getvalue(), ".tif"))
    return pages


def is_pdf(data: bytes) -> bool:
    return data[:1024].lstrip().startswith(b"%PDF-")


def count_pdf_pages(name: str, data: bytes) -> int:
    import pypdfium2

    if len(data) > settings.MAX_PDF_BYTES:
        raise too_large(f"'{name}'", len(data), settings.MAX_PDF_BYTES, "MAX_PDF_BYTES")
    try:
        document = pypdfium2.PdfDocument(data)
    except pypdfium2.PdfiumError as error:
        raise ApiError(ErrorCode.INVALID_PDF, f"'{name}' could not be opened as a PDF: {error}")
    try:
        pages = len(document)
    finally:
        document.close()
    if pages == 0:
        raise ApiError(ErrorCode.INVALID_PDF, f"'{name}' has no pages")
    return pages


def render_pdf(name: str, data: bytes) -> list[Page]:
    """One greyscale PNG per page at PDF_RENDER_DPI (lower for huge pages, to stay under PDF_MAX_PAGE_PIXELS)."""
    import pypdfium2

    try:
        document = pypdfium2.PdfDocument(data)
    except pypdfium2.PdfiumError as error:
        raise ApiError(ErrorCode.INVALID_PDF, f"'{name}' could not be opened as a PDF: {error}")
    pages = []
    try:
        for index in range(len(document)):
            page = document[index]
            width_pt, height_pt = page.get_size()
            scale = settings.PDF_RENDER_DPI / 72
            pixels = width_pt * height_pt * scale * scale
            most = min(settings.PDF_MAX_PAGE_PIXELS, settings.MAX_IMAGE_PIXELS)
            if pixels > most:
                scale *= (most / pixels) ** 0.5 * 0.99
            bitmap = page.render(scale=scale, grayscale=True)
            buffer = io.BytesIO()
            bitmap.to_pil().save(buffer, format="PNG")
            pages.append(Page(f"{name}#page={index + 1}", buffer.getvalue(), ".png"))
            page.close()
    except pypdfium2.PdfiumError as error:
        raise ApiError(ErrorCode.INVALID_PDF, f"'{name}' has a page that cannot be rendered: {error}")
    finally:
        document.close()
    return pages


def decode_base64_image(text: str) -> bytes:
    """The bytes of a canvas export: a ``data:image/png;base64,...`` URL or bare base64."""
    if text.startswith("data:"):
        _, _, text = text.partition(",")
    text = "".join(text.split())  # what `base64` prints is wrapped at 76 columns
    if len(text) > settings.MAX_IMAGE_BYTES * 4 // 3 + 8:
        raise too_large("image_base64", len(text) * 3 // 4, settings.MAX_IMAGE_BYTES, "MAX_IMAGE_BYTES")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ApiError(ErrorCode.INVALID_BASE64, "image_base64 is not valid base64")


def expand_uploads(files: list[tuple[str, bytes]], pages_already: int = 0) -> list[Page]:
    """Images stay one page each; PDFs and multi-page TIFFs become one page per page. Checks MAX_PAGES_PER_BATCH first."""
    counts = [count_pdf_pages(name, data) if is_pdf(data) else tiff_page_count(name, data) for name, data in files]
    total = pages_already + sum(counts)
    if total > settings.MAX_PAGES_PER_BATCH:
        raise ApiError(
            ErrorCode.TOO_MANY_PAGES, f"the batch would hold {total} pages; the limit MAX_PAGES_PER_BATCH is {settings.MAX_PAGES_PER_BATCH}",
            status.HTTP_413_REQUEST_ENTITY_TOO_LARGE, limit="MAX_PAGES_PER_BATCH", limit_value=settings.MAX_PAGES_PER_BATCH,
        )
    pages: list[Page] = []
    for (name, data), count in zip(files, counts):
        if is_pdf(data):
            pages.extend(check_image(page.name, page.data) for page in render_pdf(name, data))
        elif count > 1:
            pages.extend(check_image(page.name, page.data) for page in split_tiff(name, data))
        else:
            pages.append(check_image(name, data))
    return pages
