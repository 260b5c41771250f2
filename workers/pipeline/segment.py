"""Find the symbols of a cleaned page and group them into lines in reading order.

1. Connected components; noise specks are dropped by a size test relative to
   the page's symbol size that a short minus always passes (it is wide).
2. Lines: the row profile of the kept ink splits the page into bands; each
   component joins the band holding its centre. Thin bands (a lone bar) join
   their nearest neighbour.
3. Parts of one symbol are merged: components stacked one above the other
   (the bars of ``=``, the flag of a broken ``5``), small fragments beside a
   symbol, a broken-off tail low against a digit, a bar broken by a pen lift.
4. A group too wide for one symbol gets split proposals at column-profile
   minima; the grammar decoder chooses between whole and split. A group not
   quite that wide gets them too once the classifier has doubted it is one
   symbol (:func:`split_doubted`, called by the recogniser).
"""
from __future__ import annotations

import bisect
from dataclasses import dataclass, field

import cv2
import numpy as np

from workers.pipeline.errors import RecognitionError
from workers.pipeline.page import components
from workers.pipeline.quantiles import median, percentile

MAX_SYMBOLS_PER_PAGE = 2000
MAX_SYMBOLS_PER_LINE = 200


@dataclass
class Piece:
    """One candidate symbol: its box (x, y, w, h) on the clean page and its ink."""

    box: tuple[int, int, int, int]
    mask: np.ndarray  # uint8 0/255, the crop of the box holding only this piece's ink


@dataclass
class Group:
    """Ink read as one symbol by default, with alternative ways to split it."""

    whole: Piece
    splits: list[list[Piece]] = field(default_factory=list)  # each: 2 or 3 pieces, left to right
    split_prior: float = 0.0  # how likely, from its shape alone, the group holds several symbols
    width_ratio: float = 0.0  # its width over a digit's height; 0 for a group less tall than a digit


@dataclass
class Line:
    box: tuple[int, int, int, int]
    groups: list[Group]
    joins: dict[int, Piece] = field(default_factory=dict)  # index i: groups i and i + 1 as one piece


def _union(boxes: list[tuple[int, int, int, int]]) -> tuple[int, int, int, int]:
    x0 = min(b[0] for b in boxes)
    y0 = min(b[1] for b in boxes)
    x1 = max(b[0] + b[2] for b in boxes)
    y1 = max(b[1] + b[3] for b in boxes)
    return (x0, y0, x1 - x0, y1 - y0)


Box = tuple[int, int, int, int]
Boxes = dict[int, Box]
"""The kept components' boxes, by component index."""


def _group_box(members: list[int], boxes: Boxes) -> Box:
    """The box around a group of components."""
    if len(members) == 1:  # most groups; merging asks for their boxes over and over
        return boxes[members[0]]
    return _union([boxes[i] for i in members])


def _overlap(a0: int, a1: int, b0: int, b1: int) -> int:
    return max(0, min(a1, b1) - max(a0, b0))


def _horizontal_gap(a: Box, b: Box) -> int:
    """Columns between two boxes (0 when they overlap across)."""
    return max(0, max(a[0], b[0]) - min(a[0] + a[2], b[0] + b[2]))


def find_lines(binary: np.ndarray, labelled: tuple[int, np.ndarray, np.ndarray] | None = None) -> list[Line]:
    """Segment a clean binary page (ink 255) into lines of symbol groups. ``labelled``: the
    page's ``components(binary)``, when the clean-up has it already (``CleanPage.labelled``)."""
    count, labels, stats = labelled if labelled is not None else components((binary > 0).astype(np.uint8))
    if count <= 1:
        raise RecognitionError("no_symbols", "no symbols found: the image looks blank")
    boxes = stats[1:, :4]
    areas = stats[1:, cv2.CC_STAT_AREA]
    sizes = np.maximum(boxes[:, 2], boxes[:, 3])
    # The size of a typical symbol: a high percentile of the larger components, so
    # that hundreds of specks cannot drag it down.
    large = sizes[sizes >= max(3, sizes.max() * 0.1)]
    if large.size == 0:  # only marks of a pixel or two
        raise RecognitionError("no_symbols", "no symbols found: only specks of noise")
    reference = percentile(large, 75)
    keep = (sizes >= max(3.0, 0.18 * reference)) & (areas >= 3)
    # What is left of a ruling line is long and flat: far wider than any minus.
    keep &= ~((boxes[:, 2] > 4 * reference) & (boxes[:, 3] < 0.15 * boxes[:, 2]))
    # Counted before anything per mark is built: a small image can hold millions of dots.
    kept_indices = np.flatnonzero(keep)
    if kept_indices.size == 0:
        raise RecognitionError("no_symbols", "no symbols found: only specks of noise")
    if kept_indices.size > MAX_SYMBOLS_PER_PAGE:
        raise RecognitionError("too_many_symbols", f"found {kept_indices.size} marks; a page may hold at most {MAX_SYMBOLS_PER_PAGE}")
    kept = kept_indices.tolist()
    # From here on, plain tuples: the merging below reads boxes many times per symbol, and
    # numpy scalars made that most of a canvas line's segmentation time. Only the kept marks
    # are read, by their component index.
    boxes = {index: tuple(int(v) for v in boxes[index]) for index in kept}

    bands = _line_bands([boxes[i] for i in kept], binary.shape[0], reference)
    members: list[list[int]] = [[] for _ in bands]
    starts = [band[0] for band in bands]  # the bands are disjoint and in order down the page

    def distance(band: int, centre: float) -> float:
        return max(0.0, bands[band][0] - centre, centre - bands[band][1])

    for index in kept:
        x, y, w, h = boxes[index]
        centre = y + h / 2
        # The band holding the centre, or failing that the closest one: the band that starts
        # last at or above the centre, or the next one (a search, not a scan: a page may
        # hold 2,000 marks on as many lines).
        above = bisect.bisect_right(starts, centre) - 1
        candidates = [b for b in (above, above + 1) if 0 <= b < len(bands)]
        members[min(candidates, key=lambda b: distance(b, centre))].append(index)

    lines = []
    for band_members in members:
        if not band_members:
            continue
        groups = _merge_stacked(sorted(band_members, key=lambda i: boxes[i][0]), boxes)
        if len(groups) > MAX_SYMBOLS_PER_LINE:
            raise RecognitionError("too_many_symbols", f"a line holds {len(groups)} symbols; the limit is {MAX_SYMBOLS_PER_LINE}")
        # The height of a digit on this line: operators are shorter, so take a high percentile.
        line_height = percentile([_group_box(g, boxes)[3] for g in groups], 75)
        groups = _merge_fragments(groups, boxes, line_height)
        groups = _merge_bottom_hooks(groups, boxes, line_height)
        groups = _merge_touching_bars(groups, boxes, line_height)
        built = [_build_group(g, boxes, labels, line_height) for g in groups]
        lines.append(Line(_union([grp.whole.box for grp in built]), built, _joins(built, line_height)))
    lines.sort(key=lambda line: line.box[1])
    return lines


def _line_bands(boxes: list[Box], height: int, reference: float) -> list[tuple[float, float]]:
    """Vertical extents of text lines from the row profile of the kept components' boxes."""
    profile = np.zeros(height + 1, dtype=np.int32)
    for x, y, w, h in boxes:
        # Count the middle of each box only: tall parentheses and descenders that
        # reach towards a neighbouring line must not bridge the gap.
        top, bottom = y + h * 0.2, y + h * 0.8
        profile[int(top) : int(np.ceil(bottom)) + 1] += 1
    bands: list[list[float]] = []
    joins_within = max(2, 0.15 * reference)
    for row in np.flatnonzero(profile).tolist():  # plain ints: numpy scalars made this loop most of its time
        if bands and row - bands[-1][1] <= joins_within:
            bands[-1][1] = row
        else:
            bands.append([row, row])
    # A band much thinner than the rest is a lone bar (a minus or one half of '='):
    # it belongs to the nearest line.
    heights = [b[1] - b[0] for b in bands]
    typical = median(heights) if heights else 0
    merged: list[list[float]] = []
    for band in bands:
        if merged and (band[1] - band[0] < 0.35 * typical or merged[-1][1] - merged[-1][0] < 0.35 * typical) and band[0] - merged[-1][1] < 0.6 * reference:
            merged[-1][1] = band[1]
        else:
            merged.append(list(band))
    return [(b[0], b[1]) for b in merged]


def _is_top_bar(bar, body) -> bool:
    """A flat stroke over the top of a taller one: the flag of a broken ``5``.

    The flag may sit wholly above the body's top and start beyond its right edge, as MNIST
    writers drew it. A minus sits at mid height, so it never passes this test. A stroke
    beside the body rather than over it must be flat: a small ``+`` high beside a digit is not.
    """
    bx, by, bw, bh = bar
    x, y, w, h = body
    centre = by + bh / 2
    gap = _horizontal_gap(bar, body)
    over = _overlap(bx, bx + bw, x, x + w) >= 0.3 * bw
    beside = gap <= 0.25 * h and bh <= 0.6 * bw  # flattish: a short flag drawn thick is 2:1 at most
    return bh <= 0.45 * h and y - 0.35 * h <= centre <= y + 0.3 * h and (over or beside)


def _merge_stacked(order: list[int], boxes: Boxes) -> list[list[int]]:
    """Merge components that sit one above the other: they are parts of one symbol
    (the bars of ``=``, the flag and body of a broken ``5``)."""
    groups: list[list[int]] = []
    group_boxes: list[Box] = []  # kept beside the groups: recomputing them dominated
    for index in order:
        box = boxes[index]
        x, y, w, h = box
        for position in range(max(0, len(groups) - 3), len(groups)):
            group, other = groups[position], group_boxes[position]
            gx, gy, gw, gh = other
            x_overlap = _overlap(x, x + w, gx, gx + gw)
            y_overlap = _overlap(y, y + h, gy, gy + gh)
            stacked = x_overlap >= 0.5 * min(w, gw) and y_overlap <= 0.25 * min(h, gh)
            if stacked or _is_top_bar(box, other) or _is_top_bar(other, box):
                group.append(index)
                group_boxes[position] = _union([other, box])
                break
        else:
            groups.append([index])
            group_boxes.append(box)
    return _merge_offset_bars(groups, boxes)


def _is_flat(box: Box) -> bool:
    return box[3] <= 0.5 * box[2]


def _merge_offset_bars(groups: list[list[int]], boxes: Boxes) -> list[list[int]]:
    """Join two neighbouring lone flat bars whose columns overlap by a third and that lie no
    further apart than the longer one is wide: an ``=`` written on a slant, or one whose bars
    nearly meet, however close (boxes that overlapped by a few rows were read as two minus
    signs); at the same height, a bar drawn twice. Done after the stacking above, so that the
    detached top bar of a ``7`` or ``5`` has already joined its body and never pairs with a
    minus. Two minus signs side by side do not overlap in their columns."""
    merged: list[list[int]] = []
    for group in groups:
        if merged and len(merged[-1]) == 1 and len(group) == 1:
            a, b = boxes[merged[-1][0]], boxes[group[0]]
            x_overlap = _overlap(a[0], a[0] + a[2], b[0], b[0] + b[2])
            vertical_gap = max(a[1], b[1]) - min(a[1] + a[3], b[1] + b[3])
            if _is_flat(a) and _is_flat(b) and x_overlap >= 0.3 * min(a[2], b[2]) and vertical_gap <= max(a[2], b[2]):
                merged[-1] = merged[-1] + group
                continue
        merged.append(group)
    return merged


def _is_fragment(box, line_height: float) -> bool:
    """A small, not flat, piece of ink: a broken-off stroke of a neighbouring symbol.

    Small means under 0.3 of a digit's height: a small ``+`` written at half a
    digit's height is a symbol of its own (tuned on the CROHME tune half).

    Flat pieces are fragments only when tiny (a fifth of a digit), so a minus,
    even a short one, is never merged away.
    """
    _, _, w, h = box
    return max(w, h) < 0.3 * line_height and (h >= 0.7 * w or max(w, h) < 0.2 * line_height)


def _gap(a, b) -> float:
    """Distance between two boxes (0 when they overlap)."""
    dx = _horizontal_gap(a, b)
    dy = max(0, max(a[1], b[1]) - min(a[1] + a[3], b[1] + b[3]))
    return float(np.hypot(dx, dy))


def _merge_fragments(groups: list[list[int]], boxes: Boxes, line_height: float) -> list[list[int]]:
    """Join each fragment to the nearest whole symbol when it nearly touches it."""
    group_boxes = [_group_box(g, boxes) for g in groups]
    fragments = [i for i, b in enumerate(group_boxes) if _is_fragment(b, line_height)]
    wholes = [i for i in range(len(groups)) if i not in fragments]
    target_of = {}
    for f in fragments:
        if not wholes:
            break
        nearest = min(wholes, key=lambda w: _gap(group_boxes[f], group_boxes[w]))
        if _gap(group_boxes[f], group_boxes[nearest]) <= 0.2 * line_height:
            target_of[f] = nearest
    merged = []
    for index, group in enumerate(groups):
        if index in target_of:
            continue
        merged.append(group + [m for f, t in target_of.items() if t == index for m in groups[f]])
    return merged


def _is_bottom_hook(piece: Box, body: Box, line_height: float) -> bool:
    """The end of a symbol's lowest stroke, broken off by a faint stretch: the tail of a
    ``5`` that curls back left under its bowl (the rendered set read such 5s as ``25``
    or ``-5``). Smaller than half a digit, touching a digit-tall body, low against its
    base. A minus sits at mid height and a ``+`` or ``=`` across the middle: neither is
    this low."""
    px, py, pw, ph = piece
    x, y, w, h = body
    centre = (py + ph / 2 - y) / h
    return (
        max(pw, ph) < 0.45 * line_height
        and h >= 0.65 * line_height
        and _horizontal_gap(piece, body) <= max(2.0, 0.05 * line_height)
        and centre >= 0.75
        and py + ph <= y + h + 0.1 * h
    )


def _merge_bottom_hooks(groups: list[list[int]], boxes: Boxes, line_height: float) -> list[list[int]]:
    """Join a broken-off tail to the digit beside it (see :func:`_is_bottom_hook`); the digit
    it curls back from is usually the one after it."""
    return _join_to_a_neighbour(groups, boxes, lambda piece, body: _is_bottom_hook(piece, body, line_height), steps=(1, -1))


def _is_touching_bar(bar: Box, neighbour: Box, line_height: float) -> bool:
    """A flat stroke that touches a neighbour at its own height: a pen lift in the bar of a
    ``+`` or ``=``, or a minus broken in two. Should it really be a minus written too close,
    the merged group is wide and gets split proposals, so the decoder can still read it apart.
    A small ``+`` or ``=`` is short too, but not flat: it stays a symbol of its own."""
    _, y, _, h = bar
    if not (h < 0.35 * line_height and _is_flat(bar)):
        return False
    centre = y + h / 2
    _, ny, _, nh = neighbour
    at_its_height = ny + 0.2 * nh <= centre <= ny + 0.8 * nh
    # or the other half of one bar, broken by a faint pixel or two: level with it
    level_bar = _is_flat(neighbour) and abs(centre - (ny + nh / 2)) <= max(2.0, 0.05 * line_height)
    return _horizontal_gap(bar, neighbour) <= max(2.0, 0.05 * line_height) and (at_its_height or level_bar)


def _merge_touching_bars(groups: list[list[int]], boxes: Boxes, line_height: float) -> list[list[int]]:
    """Join each touching bar to its neighbour (see :func:`_is_touching_bar`)."""
    return _join_to_a_neighbour(groups, boxes, lambda bar, neighbour: _is_touching_bar(bar, neighbour, line_height), steps=(-1, 1))


def _join_to_a_neighbour(groups: list[list[int]], boxes: Boxes, joins, steps: tuple[int, int]) -> list[list[int]]:
    """Move each group into the first neighbour (tried at ``steps`` from it) for which
    ``joins(its box, the neighbour's box)`` holds; a neighbour that grew is looked at again."""
    merged = [list(g) for g in groups]
    index = 0
    while index < len(merged):
        box = _group_box(merged[index], boxes)
        for step in steps:
            neighbour = index + step
            if 0 <= neighbour < len(merged) and joins(box, _group_box(merged[neighbour], boxes)):
                merged[neighbour].extend(merged.pop(index))
                index -= 1
                break
        index += 1
    return merged


def _piece(mask: np.ndarray, origin: tuple[int, int]) -> Piece | None:
    ys, xs = np.nonzero(mask)
    if ys.size == 0:
        return None
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    return Piece((origin[0] + int(x0), origin[1] + int(y0), int(x1 - x0), int(y1 - y0)), mask[y0:y1, x0:x1])


def _build_group(members: list[int], boxes: Boxes, labels: np.ndarray, line_height: float) -> Group:
    x, y, w, h = _group_box(members, boxes)
    window = labels[y : y + h, x : x + w]
    if len(members) == 1:  # most groups: a plain comparison is far cheaper than isin
        mask = (window == members[0] + 1).astype(np.uint8) * 255
    else:
        mask = np.isin(window, np.asarray(members) + 1).astype(np.uint8) * 255
    group = Group(Piece((x, y, w, h), mask))
    # Too wide for one symbol, and as tall as a digit (so never a minus or an '='):
    # propose cuts. The wider it is, the likelier it holds touching symbols.
    width_ratio = w / max(h, 0.6 * line_height)
    group.width_ratio = width_ratio if h >= 0.65 * line_height else 0.0
    if group.width_ratio >= 1.15:
        group.splits = _cuts(group.whole)
        group.split_prior = float(np.clip((width_ratio - 1.0) / 0.8, 0.2, 0.85))
    return group


DOUBTED_MIN_WIDTH_RATIO = 0.9
"""A group the classifier doubts gets cuts only if it is at least this wide for its height (as
:func:`_build_group` measures it): a single digit the model doubts is narrower, and its
cuts read well (a ``4`` as ``11``). Chosen on the CROHME tune half: from 0.85 up no tune
expression changes; at 0.8 two are lost, and four of the rendered lines."""
DOUBTED_SPLIT_PRIOR = 0.5
"""The split prior of a doubted group's cuts: the model's doubt already lowers the whole's
own probability, so the prior takes no side."""


JOIN_MIN_OVERLAP = 0.1
"""Two neighbouring groups are also offered to the decoder as one symbol when their columns
overlap by at least this share of the narrower one's width (and together they are no wider
than :data:`JOIN_MAX_WIDTH`). Chosen on a rendered tune set (seed 777, not the tests' 20261125):
of its 360 lines, 316 read without joins; at this overlap 325, as with no overlap asked for, at
0.2 324, at 0.3 323, at 0.5 320 (the CROHME tune half reads 93 / 90 at each). Asking for no
overlap reads as many, but offers more pairs to classify."""
JOIN_MAX_WIDTH = 1.1
"""A joined pair is at most this wide for its height (or the line's digit height, if taller):
one symbol's box. At 0.9 and 1.3 the tune set read the same as at 1.1."""


def _may_be_one_symbol(a: Box, b: Box, line_height: float) -> bool:
    """Two neighbouring groups that overlap in their columns and together are as tall as a
    digit and no wider than one symbol: the parts of a digit broken where the pen thinned
    (the rendered set read a ``0`` as ``67``, a ``6`` as ``11``), or drawn in two strokes
    that do not meet. Only a hypothesis: the decoder weighs the joined crop against its parts."""
    overlap = _overlap(a[0], a[0] + a[2], b[0], b[0] + b[2])
    _, _, width, height = _union([a, b])
    return overlap >= JOIN_MIN_OVERLAP * min(a[2], b[2]) and height >= 0.65 * line_height and width <= JOIN_MAX_WIDTH * max(height, line_height)


def _joined(a: Piece, b: Piece) -> Piece:
    """One piece holding the ink of both."""
    box = _union([a.box, b.box])
    x, y, width, height = box
    mask = np.zeros((height, width), np.uint8)
    for piece in (a, b):
        px, py, pw, ph = piece.box
        window = mask[py - y : py - y + ph, px - x : px - x + pw]
        np.maximum(window, piece.mask, out=window)
    return Piece(box, mask)


def _joins(groups: list[Group], line_height: float) -> dict[int, Piece]:
    """The joined piece of each pair of neighbouring groups that may be one symbol, by the
    first one's index (see :func:`_may_be_one_symbol`)."""
    return {
        index: _joined(a.whole, b.whole)
        for index, (a, b) in enumerate(zip(groups, groups[1:]))
        if _may_be_one_symbol(a.whole.box, b.whole.box, line_height)
    }


def split_doubted(group: Group) -> bool:
    """Give cuts to a group whose shape asked for none, because the classifier doubted it is
    one symbol (two digits drawn into each other, narrower than two apart). True if it got
    any; the decoder then weighs the whole against each cut."""
    if group.splits or group.width_ratio < DOUBTED_MIN_WIDTH_RATIO:
        return False
    group.splits = _cuts(group.whole)
    group.split_prior = DOUBTED_SPLIT_PRIOR if group.splits else 0.0
    return bool(group.splits)


def _cuts(whole: Piece) -> list[list[Piece]]:
    """Split proposals for a group, less those that cut a bar off its top or bottom."""
    x, y, _, _ = whole.box
    return [pieces for pieces in _split_proposals(whole.mask, (x, y)) if not any(_is_cut_bar(p.box, whole.box) for p in pieces)]


def _is_cut_bar(piece, whole) -> bool:
    """A flat piece cut from the top or bottom of a group: the long top bar of a ``5`` or
    ``7``, or the base of a ``1``. Never a minus, which sits at mid height."""
    _, py, _, ph = piece
    _, y, _, h = whole
    centre = (py + ph / 2 - y) / h
    return ph < 0.35 * h and not 0.3 <= centre <= 0.7


def _split_proposals(mask: np.ndarray, origin: tuple[int, int]) -> list[list[Piece]]:
    columns = (mask > 0).sum(axis=0).astype(np.float32)
    width = len(columns)
    smooth = np.convolve(columns, np.ones(3) / 3, mode="same")

    def best_cut(low: float, high: float) -> int:
        start, stop = int(width * low), max(int(width * low) + 1, int(width * high))
        return start + int(np.argmin(smooth[start:stop]))

    proposals = []
    for cuts in ([best_cut(0.25, 0.75)], [best_cut(0.15, 0.48), best_cut(0.52, 0.85)]):
        edges = [0, *cuts, width]
        pieces = []
        for left, right in zip(edges, edges[1:]):
            part = np.zeros_like(mask)
            part[:, left:right] = mask[:, left:right]
            piece = _piece(part, origin)
            if piece is not None:
                pieces.append(piece)
        if len(pieces) == len(edges) - 1 and all(p.box[2] >= 2 for p in pieces):
            proposals.append(pieces)
    return proposals
