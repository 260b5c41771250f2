"""Clean up a page: flatten uneven lighting, binarise, deskew, remove ruling lines.

Input and output images are ink-bright. Scans arrive at 150–300 dpi, up to ±5°
skewed, on plain, ruled or squared paper; canvases arrive clean. Each step is
cheap on a clean canvas, so one path serves both.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np
from scipy import ndimage

from workers.pipeline.imaging import border_pixels
from workers.pipeline.quantiles import median, percentile

MIN_CONTRAST = 40
"""Below this ink contrast (0-255) an image is treated as blank."""
PAGE_MIN_SIDE = 600
"""An image whose SHORTER side is below this is a canvas or a line crop, not a scanned
page: it gets no flattening, deskew or ruling removal (nor does a larger one whose writing
is large against it, :func:`written_large`)."""
MAX_SKEW_DEGREES = 5.0
SKEW_WORK_SIZE = 800
"""The skew search runs on a copy this long: 0.1° is still more than a pixel across it."""


@dataclass
class CleanPage:
    binary: np.ndarray  # uint8 0/255, ink 255, deskewed, rulings removed
    skew_degrees: float
    rulings_removed: int  # pixels of ruling lines taken out
    padded: int = 0  # rows added above and below before a drawing's line was levelled
    scale: float = 1.0  # a drawing too small to read is enlarged first
    # ``components(binary)``, when the clean-up labelled the final binary image already (a line
    # crop, measured for its slope at full size): segmentation starts from it instead of again.
    labelled: tuple[int, np.ndarray, np.ndarray] | None = field(default=None, repr=False)

    def frame(self, image: np.ndarray) -> np.ndarray:
        """``image`` (the input, same size) in the frame of ``binary``: enlarged, padded and
        turned alike. Symbol and line boxes are in this frame, as the step pictures are."""
        if self.scale != 1.0:
            image = _enlarged(image, self.scale)
        return _padded_and_turned(image, self.padded, self.skew_degrees)

    def to_source(self, box, source_shape: tuple[int, int]) -> tuple[int, int, int, int]:
        """A box (x, y, w, h) of this frame in the pixels of the image it was cleaned from (of
        ``source_shape``): the smallest box around it turned back, unpadded and shrunk, within
        the image. What a client overlays on its own upload (or canvas)."""
        x, y, w, h = box
        corners = np.array([[x, y], [x + w, y], [x, y + h], [x + w, y + h]], np.float64)
        if self.skew_degrees:
            height, width = self.binary.shape  # turned about its centre, keeping its size
            back = cv2.invertAffineTransform(cv2.getRotationMatrix2D((width / 2, height / 2), self.skew_degrees, 1.0))
            corners = corners @ back[:, :2].T + back[:, 2]
        corners[:, 1] -= self.padded
        corners /= self.scale
        height, width = source_shape[:2]
        left, top = np.clip(np.floor(corners.min(axis=0)), 0, [width, height]).astype(int)
        right, bottom = np.clip(np.ceil(corners.max(axis=0)), 0, [width, height]).astype(int)
        return int(left), int(top), int(right - left), int(bottom - top)


def _padded_and_turned(image: np.ndarray, padded: int, angle: float) -> np.ndarray:
    if padded:
        image = cv2.copyMakeBorder(image, padded, padded, 0, 0, cv2.BORDER_CONSTANT, value=0)
    return rotate(image, angle) if angle else image


def components(binary: np.ndarray) -> tuple[int, np.ndarray, np.ndarray]:
    """8-connected components: (count with the background, labels, stats).

    Labels are 16-bit when the image cannot hold more components than that (two components
    never touch, so each takes a 2×2 cell at least): a canvas line's labelling with stats then
    takes a third of the time of 32-bit labels, the same labels and stats.
    """
    height, width = binary.shape
    label_type = cv2.CV_16U if ((height + 1) // 2) * ((width + 1) // 2) < 65535 else cv2.CV_32S
    count, labels, stats, _ = cv2.connectedComponentsWithStats(binary, connectivity=8, ltype=label_type)
    return count, labels, stats


def flatten(ink: np.ndarray) -> np.ndarray:
    """Remove slowly varying background (uneven lighting, shadows) by a white top-hat.

    The background is estimated on a reduced copy with a window wider than any
    pen stroke, so the cost stays small on a 300 dpi page.
    """
    return _flatten(ink)[0]


def _flatten(ink: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The flattened image, and the same at the reduced size its background is estimated on."""
    height, width = ink.shape
    factor = max(1, min(height, width) // 200)
    small = cv2.resize(ink, (max(1, width // factor), max(1, height // factor)), interpolation=cv2.INTER_AREA)
    window = max(3, (min(small.shape) // 6) | 1)
    background = cv2.morphologyEx(small, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_RECT, (window, window)))
    background = cv2.blur(background, (window, window))
    small_flat = cv2.subtract(small, background)
    background = cv2.resize(background, (width, height), interpolation=cv2.INTER_LINEAR)
    return cv2.subtract(ink, background), small_flat


def binarise(flat: np.ndarray) -> np.ndarray:
    """Otsu on the flattened image; a blank image gives an empty mask."""
    return _binarise(flat)[0]


def _binarise(flat: np.ndarray, ridge_share: float = 0.0) -> tuple[np.ndarray, float]:
    """Otsu's threshold; with ``ridge_share``, a pixel is ink only if it also reaches that share
    of the brightest pixel near it (within BLUR_REACH_PX): the blur beside a stroke is cut away,
    whatever the stroke's own level, so a faint stroke is kept as well as a dark one."""
    if int(flat.max()) < MIN_CONTRAST:
        return np.zeros_like(flat), float(MIN_CONTRAST)
    threshold, binary = cv2.threshold(flat, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    if threshold < MIN_CONTRAST / 2:  # Otsu split paper noise from paper noise
        threshold, binary = cv2.threshold(flat, MIN_CONTRAST, 255, cv2.THRESH_BINARY)
    if ridge_share:
        nearby_peak = cv2.dilate(flat, _BLUR_REACH)
        binary[flat.astype(np.float32) < ridge_share * nearby_peak] = 0
    return binary, float(threshold)


FAINT_LOW, FAINT_PEAK, FAINT_MIN_AREA, FAINT_FOUND_AT_MOST = 0.35, 0.75, 15, 0.2
"""A faint stroke: pixels above FAINT_LOW of the page's threshold, peaking above FAINT_PEAK
of it, at least FAINT_MIN_AREA pixels together (paper noise never is), of which at most
FAINT_FOUND_AT_MOST were found by the threshold already."""


def add_faint_strokes(flat: np.ndarray, binary: np.ndarray, threshold: float, grain_floor: float = 0.0) -> np.ndarray:
    """Add strokes a little too light for the page's threshold, apart from the ink found.


    A thin pencil minus on a 150 dpi scan blurs to just under the threshold that the
    digits set, and a lost minus changes the value. Its pixels still stand well above
    the paper: a lower threshold finds them, and only what touches no ink found
    already is added, so no other symbol gets thicker or joins its neighbour. On grainy
    paper a faint stroke must also stand above ``grain_floor`` (:data:`FAINT_ABOVE_GRAIN`).
    """
    if not binary.any():
        return binary  # nothing found: the threshold says nothing of what is faint (a blank image's noise)
    low = (flat >= max(threshold * FAINT_LOW, grain_floor)).astype(np.uint8)
    # A faint stroke dips under even the lower threshold here and there: bridge gaps of a
    # pixel or two, or its pieces would each be too small to be kept as a symbol.
    low = cv2.morphologyEx(low, cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_RECT, (5, 3)))
    # Without stats: OpenCV's stats pass costs ten times the labelling, and this runs on
    # every canvas. Areas come from a bincount, boxes only for the few bars that need one.
    count, labels = cv2.connectedComponents(low, connectivity=8)
    if count <= 1:
        return binary
    areas = np.bincount(labels.ravel(), minlength=count)
    peaks = np.bincount(labels[flat >= threshold * FAINT_PEAK], minlength=count)
    keep = (peaks > 0) & (areas >= FAINT_MIN_AREA)
    keep[0] = False  # the background
    # Mostly ink found already (a symbol and its halo): leave it as it is. A speck of a faint
    # stroke that reached the threshold does not stop the rest of the stroke from being added.
    ink = binary > 0
    found_labels = labels[ink]
    found = np.bincount(found_labels, minlength=count)
    added = found < FAINT_FOUND_AT_MOST * areas
    candidates = np.nonzero(keep & ~added & (_found_pieces(ink, found_labels, count) >= 2))[0]
    if candidates.size:
        # Their boxes in one pass (a crowded page holds hundreds of '=', each a candidate);
        # each is then looked at within its box only.
        boxes = ndimage.find_objects(labels)
        for index in candidates:
            rows, columns = boxes[index - 1]
            added[index] = _is_broken_bar(binary[rows, columns] > 0, labels[rows, columns] == index)
    keep &= added
    if not keep.any():
        return binary
    return np.where(keep[labels], np.uint8(255), binary)


FAINT_ABOVE_GRAIN = 5.0
"""A faint stroke stands at least this many times the paper's grain (:func:`paper_noise`) above
black. On grainy paper the lower threshold otherwise falls into the grain, and the closing joins
its pixels into blobs the size of a symbol: four rendered 20-line pages (150-300 dpi) with grain of
σ 10 grey levels found 24, 22, 20 and 20 lines and read 34 of 80 right; with this, 20 lines each
and 71 (72 without grain). On clean paper (σ up to about 5, a scanner's) the floor stays under
the faint threshold, and nothing changes."""

NOISY_PAGE, VERY_NOISY_PAGE = 12.0, 20.0
"""A page whose flattened paper has this much grain (:func:`paper_noise`) gets a 3×3 median
before it is thresholded, and a 5×5 from VERY_NOISY_PAGE. The same four pages, lines read of 80
(with the grain floor above; 72 without grain): σ 15, 20 → 70; σ 20, 0 → 56; σ 25, 0 → 53;
σ 30, 0 → 30 (a 3×3 throughout read 65 at σ 20 but 27 at σ 25). A scanner's own grain is about 4."""


def _found_pieces(ink: np.ndarray, found_labels: np.ndarray, count: int) -> np.ndarray:
    """How many pieces of the ink found lie in each faint component (each piece lies in
    one: the ink found is within the faint mask). ``found_labels``: the faint component
    of each ink pixel, in the order of ``ink``'s nonzero pixels."""
    piece_count, pieces = cv2.connectedComponents(ink.view(np.uint8), connectivity=8)
    owner = np.zeros(piece_count, dtype=np.int64)
    owner[pieces[ink]] = found_labels
    return np.bincount(owner[1:], minlength=count)


def _is_broken_bar(ink: np.ndarray, component: np.ndarray) -> bool:
    """A flat faint stroke of which the threshold kept pieces side by side: a minus (or half
    an ``=``) that as pieces would be dropped as specks, so all of it is added. It cannot join
    two symbols: it is flat. Kept whole already, it needs nothing. Pieces one above the other
    are the two bars of a tight ``=`` that the closing joined: filled in, they would read as
    one thick minus. Both masks are cut to the component's box."""
    height, width = component.shape
    if width < 3 * height:
        return False
    rows = np.nonzero((component & ink).any(axis=1))[0]
    return rows[-1] - rows[0] + 1 == rows.size


def estimate_skew(binary: np.ndarray) -> float:
    """The rotation (degrees) that makes text lines horizontal, within ±5°.

    Projection-profile search: text rows give the sharpest horizontal profile
    when they are level. Done on a reduced copy, coarse then fine.
    """
    height, width = binary.shape
    scale = min(1.0, SKEW_WORK_SIZE / max(height, width))
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
    on_ruling = rulings >= MIN_CONTRAST // 2
    removed = int(np.count_nonzero(on_ruling))
    if removed == 0:
        return flat, 0
    stroke_on_top = cv2.subtract(flat, rulings) >= MIN_CONTRAST
    # The opening follows the dimmest stretch of a ruling, so its brighter stretches pass the
    # test above too. A stroke that crosses a ruling has ink just off it; those stretches do not.
    off_ruling = (stroke_on_top & ~on_ruling).astype(np.uint8)
    near_a_stroke = cv2.dilate(off_ruling, cv2.getStructuringElement(cv2.MORPH_RECT, (7, 7))) > 0
    stroke_on_top &= near_a_stroke | ~on_ruling
    # Ruling pixels with no stroke on top go to background, not to what is left of them after
    # the subtraction: that residue would come back as faint strokes.
    cleaned = np.where(stroke_on_top, flat, np.where(on_ruling, 0, cv2.subtract(flat, rulings))).astype(np.uint8)
    return cleaned, removed


def clean_page(ink: np.ndarray) -> CleanPage:
    # Canvases and single-line crops are evenly lit, and their strokes may be as wide
    # as any background window: flattening would hollow them out. Pages get it all.
    if min(ink.shape) < PAGE_MIN_SIDE:
        return _clean_drawing(ink)
    flat, small_flat = _flatten(ink)
    if written_large(small_flat):
        return _clean_drawing(ink)
    grain = paper_noise(flat)
    if grain >= NOISY_PAGE:
        flat = cv2.medianBlur(flat, 3 if grain < VERY_NOISY_PAGE else 5)
    binary = binarise(flat)
    skew = estimate_skew(binary) if binary.any() else 0.0
    if abs(skew) < 0.2:
        skew = 0.0  # not worth a rotation; recorded as 0 so the pictures draw on the same frame
    else:
        flat = rotate(flat, skew, cv2.INTER_LINEAR)
    flat, removed = remove_rulings(flat)
    return CleanPage(_binary_with_faint_strokes(flat), skew, removed)


LARGE_WRITING = 1 / 12
"""Symbols this tall against the image (median) make it a drawing, not a page of lines."""


def written_large(flat: np.ndarray) -> bool:
    """Whether the writing is large against the (flattened) image: a canvas drawn on a
    high-density screen (two or three times the pixels of its size on screen), or one line
    scanned big. Any size of the image will do: a reduced copy is enough to judge.

    Ruling removal takes any straight run an eighth of the image long for a ruling, which is
    safe on a page of many small lines and nowhere else: on a 1400×600 canvas the stem of a
    `1` is a third of the height, and its removal cut every symbol into pieces (the tune half's
    canvas expressions, drawn at twice the size: 89 of 96 read became 1). Components that
    span half the image (rulings, a squared grid) and specks do not count; with none left the
    image is a page.
    """
    height, width = flat.shape
    _, _, stats = components((flat >= MIN_CONTRAST).astype(np.uint8))
    heights, widths = stats[1:, cv2.CC_STAT_HEIGHT], stats[1:, cv2.CC_STAT_WIDTH]
    symbols = (heights >= max(3, height // 100)) & (heights < height // 2) & (widths < width // 2)
    return bool(symbols.any()) and median(heights[symbols]) >= height * LARGE_WRITING


MIN_LINE_SLOPE_DEGREES = 3.0
"""A drawing's line sloping less than this is left as it is."""
MAX_LINE_SLOPE_DEGREES = 15.0
MIN_SLOPE_SYMBOLS = 3
"""The tall symbols a drawing's slope is measured from, at least (three pairs of them). It was
five until session 20, and short lines such as ``1+1=2`` written at a slant were read tilted
(their ``+`` as ``×``). With three, the CROHME tune half turned 4° / −4° / 8° reads (tablet /
canvas, of 96) 88/88/86 and 87/88/86, against 87/88/82 and 85/88/83 with five; as drawn
91 / 89 either way. Report half, of 205: as drawn 184 / 179 (180 with five), 4° 177 / 173
(175 / 171), −4° 181 / 174 (180 / 175), 8° 172 / 172 (171 / 172)."""


def line_slope(binary: np.ndarray, labelled: tuple[int, np.ndarray, np.ndarray] | None = None) -> float:
    """The slope (degrees, y down) of a drawing's line of writing, from its tall symbols.

    A page is levelled by its rows of text (:func:`estimate_skew`); on one line that search
    also answers for a tall symbol or a raised answer, and turned lines written level (on the
    CROHME tune half, 89 → 86 of 96 canvas expressions). Here, instead, the median slope
    between the centres of the symbols at least 0.7 times as tall as the tall half (a raised,
    small ``=4`` is not among them), for pairs at least a symbol apart; steep pairs, between
    two lines, are left out. Fewer than MIN_SLOPE_SYMBOLS such symbols: 0. Judged on a copy about 100 px
    high (a canvas's components cost a third of a line's reading at full size). ``labelled``:
    ``components(binary)``, if the caller has it (it is used when no reduced copy is needed).
    """
    factor = _slope_reduction(binary)
    if factor > 1:
        binary = (cv2.resize(binary, (binary.shape[1] // factor, binary.shape[0] // factor), interpolation=cv2.INTER_AREA) > 0).astype(np.uint8)
    _, _, stats = labelled if labelled is not None and factor == 1 else components(binary)
    heights = stats[1:, cv2.CC_STAT_HEIGHT]
    if heights.size < MIN_SLOPE_SYMBOLS:
        return 0.0
    tall = heights >= 0.7 * _tall_height(heights)
    if np.count_nonzero(tall) < MIN_SLOPE_SYMBOLS:
        return 0.0
    tall_stats = stats[1:][tall][:400]
    xs = tall_stats[:, cv2.CC_STAT_LEFT] + tall_stats[:, cv2.CC_STAT_WIDTH] / 2.0
    ys = tall_stats[:, cv2.CC_STAT_TOP] + tall_stats[:, cv2.CC_STAT_HEIGHT] / 2.0
    dx, dy = xs[None, :] - xs[:, None], ys[None, :] - ys[:, None]
    apart = np.triu(np.abs(dx) >= median(tall_stats[:, cv2.CC_STAT_HEIGHT]), 1)
    slopes = dy[apart] / dx[apart]
    slopes = slopes[np.abs(slopes) < np.tan(np.radians(MAX_LINE_SLOPE_DEGREES))]
    return float(np.degrees(np.arctan(median(slopes)))) if slopes.size >= 3 else 0.0


def _slope_reduction(binary: np.ndarray) -> int:
    """The factor by which :func:`line_slope` reduces a drawing: to about 100 px on its short side."""
    return max(1, min(binary.shape) // 100)


def _clean_drawing(ink: np.ndarray) -> CleanPage:
    """A canvas or a line crop: evenly lit and unruled, so only binarised, and its line levelled
    if it slopes (a line written off level costs 3 to 7 points of exact match, README)."""
    # Its paper is even but not always black in ink-bright terms (a grey or coloured
    # background): the faint-stroke search measures from black, and took such paper for a stroke.
    paper = int(median(border_pixels(ink)))
    if paper:
        ink = cv2.subtract(ink, paper)
    if paper_noise(ink) >= NOISY_PAPER:
        # Grainy paper (a phone photo of a line, a noisy scan): thresholded, its grain gives
        # specks read as symbols and breaks thin strokes. A 3×3 median keeps 3 px strokes.
        ink = cv2.medianBlur(ink, 3)
    # A blurred drawing (an out-of-focus photo): Otsu's threshold falls in the blur around the
    # strokes, which then close their holes and join their neighbours; cut nearer each ridge.
    ridge_share = BLURRED_RIDGE_SHARE if edge_sharpness(ink) < BLURRED_EDGES else 0.0
    binary = _binary_with_faint_strokes(ink, ridge_share)
    scale = _enlargement(binary)
    if scale != 1.0:
        binary = _binary_with_faint_strokes(_enlarged(ink, scale), ridge_share)
    # A line crop is measured at full size: its labelling then serves segmentation too, if the line stays as it is.
    labelled = components(binary) if _slope_reduction(binary) == 1 else None
    angle = line_slope(binary, labelled)
    if abs(angle) < MIN_LINE_SLOPE_DEGREES:
        return CleanPage(binary, 0.0, 0, scale=scale, labelled=labelled)
    # Turned about its centre, a long line's ends would leave the image: room above and below.
    padded = int(np.ceil(abs(np.sin(np.radians(angle))) * binary.shape[1] / 2)) + 2
    return CleanPage(_padded_and_turned(binary, padded, angle), angle, 0, padded, scale)


NOISY_PAPER = 18.0
"""A drawing whose paper noise (:func:`paper_noise`) reaches this many grey levels is smoothed
before it is thresholded. Chosen on the CROHME tune half with Gaussian noise added (tablet /
canvas expressions read, of 96; 91 / 89 as drawn):

| σ | 10 | 15 | 20 | 22 | 25 | 30 | 40 |
|---|---|---|---|---|---|---|---|
| as it is | 90 / 91 | 91 / 90 | 91 / 90 | 87 / 90 | 48 / 81 | 21 / 0 | 1 / 0 |
| smoothed | 91 / 90 | 90 / 90 | 89 / 90 | 89 / 90 | 89 / 90 | 88 / 90 | 90 / 91 |

Past about 20 the grain reaches the threshold and reading collapses; below it the median costs a
thin stroke a little. Report half at σ 25: 144 / 157 of 205 → 178 / 176. A canvas or a clean
scan has no grain, and is read exactly as before."""


BLURRED_EDGES, BLURRED_RIDGE_SHARE = 0.4, 0.6
"""A drawing whose :func:`edge_sharpness` is under BLURRED_EDGES (blurred by about 1 px or more;
a sharp drawing measures 0.75-0.87, the rendered sets' blurred scan styles 0.45 and up) keeps
as ink only pixels at BLURRED_RIDGE_SHARE of the brightest within BLUR_REACH_PX (:func:`_binarise`).
Chosen on the CROHME tune half blurred by a Gaussian of σ 1 / 1.5 / 2.5 px (tablet, canvas; of
96): 85/84/69 and 88/87/81 before, 92/88/79 and 90/91/87 after. Report half, of 205: see the
README. A global threshold at 0.6 of the ink's peak read CROHME's pen strokes a little better
still, but broke MNIST's strokes, whose level varies along them (20 blurred rendered lines: 14/11/6
read before, 13/7/2 with it, 14/12/9 with this); applied to every drawing it read the clean
report half worse. Sharp drawings keep Otsu's threshold alone, and read exactly as before."""
BLUR_REACH_PX = 9
SHARPNESS_ROWS = 32
_BLUR_REACH = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (BLUR_REACH_PX, BLUR_REACH_PX))


def edge_sharpness(ink: np.ndarray) -> float:
    """How sharp a drawing's stroke edges are: the 95th percentile of the steps between
    neighbouring pixels along rows (those over 5% of the ink's peak level, its p99: the stroke
    edges), over that peak. About 0.8 for a drawing whatever its pen width, 0.5 blurred by
    σ 0.7 px, 0.35 by 1 px, 0.16 by 2.5 px. Taken on SHARPNESS_ROWS of its rows, evenly spaced
    (70 µs on a canvas line); 1.0 for an image without ink."""
    rows = ink[:: -(-ink.shape[0] // SHARPNESS_ROWS)]
    values = rows[rows > 0]
    if values.size == 0:
        return 1.0
    peak = percentile(values, 99)
    steps = np.abs(np.diff(rows.astype(np.int16), axis=1))
    steps = steps[steps > 0.05 * peak]
    return percentile(steps, 95) / peak if steps.size else 1.0


def paper_noise(ink: np.ndarray) -> float:
    """The grey-level noise of a drawing's paper (ink-bright, paper near 0), as the σ of a normal
    noise: from the border's 90th percentile over its median (1.28 σ for a normal, also when the
    noise is clipped at black on one side, where the median absolute deviation would be 0)."""
    border = border_pixels(ink)
    return (percentile(border, 90) - median(border)) / 1.2816


SMALL_SYMBOL_PX, READ_SYMBOL_PX = 32, 48
"""A drawing whose tall symbols are under SMALL_SYMBOL_PX high is enlarged to make them about
READ_SYMBOL_PX (at most four times) before it is thresholded."""


def _enlargement(binary: np.ndarray) -> float:
    """How much to enlarge a small drawing (a thumbnail, a line cut from a 100 dpi scan): at
    half the size the tune half's tablet expressions read 85 of 96, at a third 70 (91 as
    drawn), because strokes a pixel apart merge when thresholded and touching symbols appear
    that the cuts miss. Enlarged in grey first, they read 89 and 83."""
    if min(binary.shape) >= 2 * READ_SYMBOL_PX + 4:
        return 1.0  # room for symbols of a readable size: not measured (a line's usual case)
    _, _, stats = components(binary)
    heights = stats[1:, cv2.CC_STAT_HEIGHT]
    if heights.size == 0:
        return 1.0
    tall = _tall_height(heights)
    return min(4.0, READ_SYMBOL_PX / max(tall, 1.0)) if tall < SMALL_SYMBOL_PX else 1.0


def _tall_height(heights: np.ndarray) -> float:
    """The median height of the taller half of a drawing's components: its symbols' height,
    whatever its minus signs, dots and specks."""
    return median(heights[heights >= median(heights)])


def _enlarged(image: np.ndarray, scale: float) -> np.ndarray:
    return cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)


def _binary_with_faint_strokes(flat: np.ndarray, ridge_share: float = 0.0) -> np.ndarray:
    """The final binary image: the threshold's ink (see :func:`_binarise` for ``ridge_share``),
    and the faint strokes beside it."""
    binary, threshold = _binarise(flat, ridge_share)
    return add_faint_strokes(flat, binary, threshold, FAINT_ABOVE_GRAIN * paper_noise(flat))
