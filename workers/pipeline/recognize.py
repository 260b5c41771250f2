"""Read an image of handwritten arithmetic: decode, clean, segment, classify, decode, evaluate.

    result = recognize(image_bytes, classifier)            # a PageResult
    result.as_dict()                                        # the CLI / API schema

The classifier is called ONCE per page, on every candidate crop of every line
(whole symbols and split proposals alike); a second call, for the cuts of groups
it doubted were one symbol, is the rare exception. Each line is then decoded under
the grammar and evaluated exactly.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from workers.pipeline import decoder, grammar, symbol_prior
from workers.pipeline.errors import RecognitionError
from workers.pipeline.imaging import MAX_PIXELS, MAX_SIDE, decode_image
from workers.pipeline.page import CleanPage, clean_page
from workers.pipeline.preprocess import crops_to_batch
from workers.pipeline.segment import Line as SegmentedLine
from workers.pipeline.segment import Piece, find_lines, split_doubted
from workers.pipeline.symbols import CLASSES

TOP_K = 4
"""Classes per symbol the decoder may choose from."""
MAX_INK_FRACTION = 0.3
"""Handwriting covers a few percent of a page; a page over 30% ink after cleaning is noise
or a photograph, and reading digits into it would only invent an answer."""
INK_CHECK_MIN_PIXELS = 200 * 200
"""Below this a picture may be one tightly cropped symbol, which can be mostly ink."""
DOUBTED_ONE_SYMBOL = 0.5
"""A group whose symbol classes share less than this, the rest going to the model's
not-one-symbol class, is more likely two symbols than one: if it is wide enough it gets
cuts (:func:`~workers.pipeline.segment.split_doubted`) although its shape asked for none.
A model without that class never doubts: its rows sum to 1."""
MIN_ALTERNATIVE = 0.01
"""An alternative class below this probability is not a credible reading: when only
such readings would parse, the line is reported unparsable with what was seen."""


@dataclass
class SymbolResult:
    box: tuple[int, int, int, int]
    symbol: str
    probability: float
    top3: list[tuple[str, float]]
    crop: np.ndarray = field(repr=False)  # the 28×28 model input (its first channel), for the pictures


@dataclass
class LineResult:
    box: tuple[int, int, int, int]
    expression: str | None
    value: int | None
    answer: int | None
    has_equals: bool
    correct: bool | None
    confidence: float
    symbols: list[SymbolResult]
    error: RecognitionError | None = None
    answer_expression: str | None = None  # the right-hand side as written: '56', '28*9'

    def as_dict(self, to_source=None) -> dict:
        """The schema's record of the line. ``to_source`` maps a box of the step pictures' frame to
        the uploaded image's pixels (:meth:`CleanPage.to_source`); given, each box also gets its
        ``source_box``."""
        def boxes(box) -> dict:
            record = {"box": [int(v) for v in box]}
            if to_source is not None:
                record["source_box"] = list(to_source(box))
            return record

        return {
            "expression": self.expression,
            "value": self.value,
            "answer": self.answer,
            "answer_expression": self.answer_expression,
            "correct": self.correct,
            "confidence": round(self.confidence, 6),
            **boxes(self.box),
            "symbols": [
                {**boxes(s.box), "symbol": s.symbol, "top3": [[c, round(p, 6)] for c, p in s.top3]}
                for s in self.symbols
            ],
            "error": self.error.as_dict() if self.error else None,
        }


@dataclass
class PageResult:
    lines: list[LineResult]
    model_version: str | None
    ink: np.ndarray = field(repr=False)
    page: CleanPage = field(repr=False)

    @property
    def error(self) -> RecognitionError | None:
        """The page's error: the first line's, when no line could be read."""
        if self.lines and all(line.error for line in self.lines):
            return self.lines[0].error
        return None

    def as_dict(self) -> dict:
        error = self.error
        return {
            "lines": [line.as_dict(lambda box: self.page.to_source(box, self.ink.shape)) for line in self.lines],
            "model_version": self.model_version,
            "error": error.as_dict() if error else None,
        }


def _top(probabilities: np.ndarray, k: int) -> list[tuple[str, float]]:
    order = np.argsort(-probabilities)[:k]
    return [(CLASSES[i], float(probabilities[i])) for i in order]


def _lattice(line: SegmentedLine, pieces: list[Piece]) -> tuple[list[decoder.Edge], int]:
    """Edges for one line; appends its pieces to the page's ``pieces`` (the crop order)."""
    edges: list[decoder.Edge] = []
    node = 0
    starts = []
    for group in line.groups:
        starts.append(node)
        extra_nodes = sum(len(split) - 1 for split in group.splits)
        end = node + extra_nodes + 1
        pieces.append(group.whole)
        whole_penalty = math.log(1.0 - group.split_prior) if group.splits else 0.0
        edges.append(decoder.Edge(node, end, (), whole_penalty, len(pieces) - 1))
        next_free = node + 1
        for split in group.splits:
            path = [node] + list(range(next_free, next_free + len(split) - 1)) + [end]
            next_free += len(split) - 1
            # Each proposal is a hypothesis of its own with the group's whole split prior: the
            # pieces' probabilities say which cut it is (shared out, a second cut made the right one lose).
            penalty = math.log(group.split_prior)
            for index, piece in enumerate(split):
                pieces.append(piece)
                edges.append(
                    decoder.Edge(path[index], path[index + 1], (), penalty if index == 0 else 0.0, len(pieces) - 1, default=False)
                )
        node = end
    starts.append(node)
    for index, joined in line.joins.items():
        # Two neighbours that may be one symbol (segment.JOIN_MIN_OVERLAP) are also one edge over
        # both. Without a prior of its own: the joined crop's probability is weighed against the
        # product of its parts' (a prior against joining, 0.5 or 0.2, read fewer tune-set lines).
        pieces.append(joined)
        edges.append(decoder.Edge(starts[index], starts[index + 2], (), 0.0, len(pieces) - 1, default=False))
    return edges, node + 1


def _candidates(probabilities: np.ndarray) -> tuple[tuple[str, float], ...]:
    top = _top(probabilities, TOP_K)
    return tuple(top[:1] + [c for c in top[1:] if c[1] >= MIN_ALTERNATIVE])


def _with_candidates(edges: list[decoder.Edge], probabilities: np.ndarray) -> list[decoder.Edge]:
    return [
        decoder.Edge(e.start, e.end, _candidates(probabilities[e.segment]), e.penalty, e.segment, e.default) for e in edges
    ]


WIDE_BEAM = 1024
"""The beam for a line the usual one found no reading of."""


def read_line(edges: list[decoder.Edge], node_count: int, pieces: list[Piece], probabilities: np.ndarray, batch: np.ndarray, box) -> LineResult:
    """Decode one line's lattice; ``pieces``, ``probabilities`` and ``batch`` are the page's, by crop index."""

    def symbols_of(reading: decoder.Reading) -> list[SymbolResult]:
        return [
            SymbolResult(pieces[edge.segment].box, symbol, probability, _top(probabilities[edge.segment], 3), batch[edge.segment, :, :, 0])
            for edge, symbol, probability in zip(reading.edges, reading.text, reading.probabilities)
        ]

    reading = decoder.decode(edges, node_count)
    if reading is None:
        # The beam can lose every reading that parses to near-ties that die at the end of the
        # line (a run of '-' that look like '(' too): a wide one, on this rare path, keeps them.
        reading = decoder.decode(edges, node_count, beam_width=WIDE_BEAM)
    if reading is None:
        greedy = decoder.greedy_reading(edges, node_count)
        try:
            grammar.parse_line(greedy.text)
            reading = greedy  # each symbol's best class forms an expression after all
        except RecognitionError as error:
            return _failed_line(box, greedy, symbols_of(greedy), error)
    try:
        parsed = grammar.parse_line(reading.text)
    except RecognitionError as error:
        return _failed_line(box, reading, symbols_of(reading), error)
    # A written answer that disagrees, or no '=' read: weighed against the readings that agree
    # (agreeing_reading decides which lines it weighs, and returns the others as they are).
    agreeing = decoder.agreeing_reading(reading, parsed=parsed)
    if agreeing is not reading:
        reading, parsed = agreeing, grammar.parse_line(agreeing.text)
    return LineResult(
        box, parsed.expression, parsed.value, parsed.answer, parsed.has_equals, parsed.correct,
        reading.probability, symbols_of(reading), answer_expression=parsed.answer_expression,
    )


def _failed_line(box, reading: decoder.Reading, symbols: list[SymbolResult], error: RecognitionError) -> LineResult:
    """A line that does not evaluate: as everywhere, ``expression`` is what stands left of the
    first '=' and ``answer_expression`` what stands right of it; the whole reading is the
    error's ``best_reading``."""
    left, equals, right = reading.text.partition("=")
    if error.best_reading is None:  # too_many_symbols, say: the reading is still shown whole
        error.best_reading = reading.text
    return LineResult(box, left, None, None, bool(equals), None, reading.probability, symbols, error,
                      answer_expression=right if equals else None)


def recognize_ink(ink: np.ndarray, classifier) -> PageResult:
    """Recognise an ink-bright grayscale image (see :func:`recognize` for bytes)."""
    page = clean_page(ink)
    if not page.binary.any():
        raise RecognitionError("no_symbols", "no symbols found: the image looks blank")
    covered = float(np.count_nonzero(page.binary)) / page.binary.size
    if covered > MAX_INK_FRACTION and page.binary.size >= INK_CHECK_MIN_PIXELS:
        raise RecognitionError("not_handwriting", f"{covered:.0%} of the image is ink: it looks like noise or a photo, not handwriting")
    segmented = find_lines(page.binary, page.labelled)
    line_edges, all_pieces = _lattices(segmented)
    # The one model call for the page: every crop of every line.
    batch = crops_to_batch([piece.mask for piece in all_pieces], classifier.stroke_method)
    raw = classifier.predict(batch)
    row_of = {id(piece): row for row, piece in enumerate(all_pieces)}
    doubted = [group for line in segmented for group in line.groups if raw[row_of[id(group.whole)]].sum() < DOUBTED_ONE_SYMBOL]
    newly_cut = [group for group in doubted if split_doubted(group)]  # every doubted group is tried
    if newly_cut:
        # A second call, for the cuts of the groups the first one doubted (rare, see the README).
        line_edges, all_pieces = _lattices(segmented)
        cuts = [piece for piece in all_pieces if id(piece) not in row_of]
        row_of.update({id(piece): len(raw) + index for index, piece in enumerate(cuts)})
        cut_batch = crops_to_batch([piece.mask for piece in cuts], classifier.stroke_method)
        order = [row_of[id(piece)] for piece in all_pieces]
        batch = np.concatenate([batch, cut_batch])[order]
        raw = np.concatenate([raw, classifier.predict(cut_batch)])[order]
    # Then the symbols' frequencies in arithmetic (the model's own prior is uniform).
    probabilities = symbol_prior.posterior(raw)
    lines = [
        read_line(_with_candidates(edges, probabilities), count, all_pieces, probabilities, batch, box)
        for edges, count, box in line_edges
    ]
    return PageResult(lines, getattr(classifier, "version", None), ink, page)


def _lattices(segmented: list[SegmentedLine]) -> tuple[list[tuple[list[decoder.Edge], int, tuple]], list[Piece]]:
    """Every line's lattice, and the page's pieces in crop order."""
    line_edges = []
    all_pieces: list[Piece] = []
    for line in segmented:
        edges, node_count = _lattice(line, all_pieces)
        line_edges.append((edges, node_count, line.box))
    return line_edges, all_pieces


def recognize(data: bytes, classifier, max_pixels: int = MAX_PIXELS, max_side: int = MAX_SIDE) -> PageResult:
    """Recognise an encoded image (PNG, JPEG, WebP, TIFF)."""
    return recognize_ink(decode_image(data, max_pixels, max_side), classifier)


def record(name: str, result: PageResult | None = None, error: RecognitionError | None = None) -> dict:
    """The CLI's --json record for one input, also stored as a job's result."""
    out = {"file": name, "lines": [], "model_version": None, "error": None}
    if result is not None:
        page = result.as_dict()
        out.update(lines=page["lines"], model_version=page["model_version"], error=page["error"])
    if error is not None:
        out["error"] = error.as_dict()
    return out
