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
from workers.pipeline.segment import find_lines, split_doubted


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


def test_a_malformed_exif_block_does_not_refuse_the_photo(line):
    ink, _ = line
    # Orientation 8 and, after it, a tag stored with a type Pillow's table does not expect:
    # rewriting such an EXIF block (as ImageOps.exif_transpose does) raises struct.error.
    exif = bytes.fromhex("4d4d002a000000080002011200030000000100080000015000020000000443616d0000000000")
    buffer = io.BytesIO()
    Image.fromarray(255 - np.ascontiguousarray(np.rot90(ink))).save(buffer, format="JPEG", exif=b"Exif\x00\x00" + exif)
    assert decode_image(buffer.getvalue()).shape == ink.shape  # read, and still turned upright


def test_sixteen_bit_and_float_scans_keep_their_ink(line):
    ink, _ = line
    paper = 60_000 - (ink.astype(np.uint16) * 200)  # dark ink on light paper, 16 bits a pixel
    for image in (Image.fromarray(paper), Image.fromarray(paper.astype(np.float32) / 65535)):
        buffer = io.BytesIO()
        image.save(buffer, format="TIFF")
        decoded = decode_image(buffer.getvalue())
        assert np.corrcoef(decoded.ravel(), ink.ravel())[0, 1] > 0.99


def test_an_opaque_page_with_a_transparent_corner_is_read_as_a_page(line):
    ink, _ = line
    rgba = np.dstack([255 - ink] * 3 + [np.full(ink.shape, 255, np.uint8)])
    rgba[0, 0, 3] = 0  # a screenshot's rounded corner
    decoded = decode_image(_encode(rgba))
    assert np.abs(decoded.astype(int) - ink.astype(int))[1:, 1:].mean() < 2


def test_a_colour_mode_without_grey_is_a_typed_error():
    buffer = io.BytesIO()
    Image.new("LAB", (60, 40)).save(buffer, format="TIFF")
    with pytest.raises(RecognitionError) as caught:
        decode_image(buffer.getvalue())
    assert caught.value.code == "unsupported_image_mode"


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP", "BMP"])
@pytest.mark.parametrize("length", [8, 20, 40])
def test_files_cut_inside_their_header_are_typed_errors(fmt, length):
    data = _encode(np.zeros((30, 30), np.uint8), fmt)[:length]
    with pytest.raises(RecognitionError) as caught:
        decode_image(data)
    assert caught.value.code in {"not_an_image", "truncated_image"}


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


def test_a_multi_page_tiff_is_a_typed_error_not_its_first_page_alone(line):
    # A scanner's TIFF of three worksheets: reading page 1 would lose pages 2 and 3 without a word.
    ink, _ = line
    pages = [Image.fromarray(255 - ink) for _ in range(3)]
    buffer = io.BytesIO()
    pages[0].save(buffer, format="TIFF", save_all=True, append_images=pages[1:])
    with pytest.raises(RecognitionError) as caught:
        decode_image(buffer.getvalue())
    assert caught.value.code == "multi_page_image" and "3 pages" in caught.value.message
    # An animated WebP's frames are not pages: its first frame is the drawing.
    animated = io.BytesIO()
    pages[0].save(animated, format="WEBP", save_all=True, append_images=[Image.fromarray(ink)], lossless=True)
    assert np.array_equal(decode_image(animated.getvalue()) > 127, ink > 127)


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


def test_a_line_crop_is_labelled_once_and_segmented_as_from_scratch():
    # The clean-up labels a small drawing's binary image for its slope; segmentation reuses that.
    ink, _ = render_line("12+(3-1)*4", np.random.default_rng(12345), height=64)
    page = clean_page(ink)
    assert page.labelled is not None and page.skew_degrees == 0.0
    reused, fresh = find_lines(page.binary, page.labelled), find_lines(page.binary)
    assert [[(g.whole.box, g.whole.mask.tobytes()) for g in line.groups] for line in reused] == \
        [[(g.whole.box, g.whole.mask.tobytes()) for g in line.groups] for line in fresh]
    assert len(reused[0].groups) == 10
    # A line written on a slope is turned: its labelling is then not the final image's.
    padded = cv2.copyMakeBorder(ink, 38, 38, 0, 0, cv2.BORDER_CONSTANT)  # under 200 px high: labelled at full size
    turned = cv2.warpAffine(padded, cv2.getRotationMatrix2D((padded.shape[1] / 2, padded.shape[0] / 2), 7, 1.0), padded.shape[::-1])
    page = clean_page(turned)
    assert abs(page.skew_degrees) > 3 and page.labelled is None


def test_the_offset_bars_of_a_slanted_equals_merge_but_two_minus_signs_do_not():
    # Drawn by hand: the lower bar starts well left of the upper one (as a CROHME writer's did).
    ink = np.zeros((120, 420), np.uint8)
    cv2.line(ink, (20, 30), (20, 90), 255, 5)  # a 1
    cv2.line(ink, (82, 48), (116, 46), 255, 5)  # the upper bar of '='
    cv2.line(ink, (62, 70), (92, 72), 255, 5)  # the lower bar, overlapping a third of it
    cv2.line(ink, (150, 30), (150, 90), 255, 5)  # a 1
    cv2.line(ink, (200, 60), (240, 60), 255, 5)  # '-' then '-' side by side (1--1)
    cv2.line(ink, (260, 60), (300, 60), 255, 5)
    cv2.line(ink, (340, 30), (340, 90), 255, 5)
    (line,) = find_lines(clean_page(ink).binary)
    assert [g.whole.box[0] // 10 for g in line.groups] == [1, 5, 14, 19, 25, 33]  # 1 = 1 - - 1


def test_the_bars_of_an_equals_sign_that_nearly_meet_are_one_symbol():
    # Rendered tune set: '=3760' read '--3760'. The bars slant towards each other, so their
    # boxes overlap by a few rows, though the bars do not touch.
    ink = np.zeros((120, 300), np.uint8)
    cv2.line(ink, (20, 30), (20, 90), 255, 5)  # a 1
    cv2.line(ink, (60, 56), (84, 63), 255, 3)  # the upper bar, falling to the right
    cv2.line(ink, (75, 70), (115, 64), 255, 3)  # the lower bar, rising under its end
    cv2.line(ink, (160, 30), (160, 90), 255, 5)  # a 1
    count, _, stats, _ = cv2.connectedComponentsWithStats(ink)
    bars = sorted((tuple(s[:4]) for s in stats[1:] if s[3] < 20), key=lambda b: b[1])
    assert len(bars) == 2 and bars[0][1] + bars[0][3] > bars[1][1], bars  # apart, their boxes overlapping
    (line,) = find_lines(ink)
    assert len(line.groups) == 3, [g.whole.box for g in line.groups]  # 1 = 1


def test_the_flag_of_a_5_lifted_above_and_beyond_its_body_joins_it():
    # As MNIST writers drew it (rendered set, '57-28*49=-1315' read '...1315-'): the flag of the
    # 5 starts beyond the body's right edge and sits wholly above its top. A minus after a digit
    # sits at mid height, and stays a symbol.
    ink = np.zeros((140, 400), np.uint8)
    cv2.ellipse(ink, (60, 90), (22, 20), 0, -120, 150, 255, 6)  # the 5's bowl...
    cv2.line(ink, (42, 70), (46, 48), 255, 6)  # ...and its stem
    cv2.line(ink, (70, 34), (122, 28), 255, 6)  # the flag: up and to the right, clear of the body
    cv2.line(ink, (180, 80), (215, 80), 255, 6)  # a minus at mid height after a digit
    cv2.line(ink, (260, 50), (260, 110), 255, 6)  # a 1 ...
    cv2.line(ink, (290, 82), (325, 82), 255, 6)  # ... and a minus after it
    (line,) = find_lines(clean_page(ink).binary)
    boxes = [g.whole.box for g in line.groups]
    assert len(boxes) == 4, boxes
    five = boxes[0]
    assert five[0] + five[2] >= 120 and five[1] <= 30, boxes  # the flag joined the body
    assert boxes[1][0] >= 175 and boxes[3][0] >= 285, boxes  # both minus signs on their own


def test_neighbours_that_may_be_one_broken_symbol_are_also_offered_joined():
    # A 0 drawn in two strokes that do not meet: its halves overlap in their columns and together
    # fit one symbol's box, so the decoder is also offered them as one piece. A 1 and a + beside
    # it, a symbol's width apart, are not.
    ink = np.zeros((140, 260), np.uint8)
    cv2.line(ink, (40, 35), (40, 105), 255, 6)  # a 1
    cv2.line(ink, (80, 70), (120, 70), 255, 6)  # a +
    cv2.line(ink, (100, 50), (100, 90), 255, 6)
    cv2.ellipse(ink, (180, 70), (24, 36), 0, 120, 295, 255, 6)  # the 0's left half, over the top
    cv2.ellipse(ink, (180, 70), (24, 36), 0, -35, 100, 255, 6)  # and its right half, down and round
    (line,) = find_lines(clean_page(ink).binary)
    assert len(line.groups) == 4, [g.whole.box for g in line.groups]
    assert list(line.joins) == [2]
    joined = line.joins[2]
    halves = [line.groups[2].whole, line.groups[3].whole]
    assert joined.box[0] == halves[0].box[0] and joined.box[0] + joined.box[2] == halves[1].box[0] + halves[1].box[2]
    assert np.count_nonzero(joined.mask) == sum(np.count_nonzero(half.mask) for half in halves)


def test_a_doubted_group_gets_cuts_only_when_it_is_wide_for_one_symbol():
    # Segmentation alone gives cuts only to a group 1.15 times wider than a digit is tall. Once the
    # classifier doubts a group is one symbol, a group nearly as wide as it is tall gets them too,
    # but a narrow one (a single 4 the model doubts) does not: its cuts would read as two 1s.
    ink = np.zeros((140, 400), np.uint8)
    cv2.line(ink, (40, 40), (40, 100), 255, 5)  # a narrow digit: a 1 ...
    # ... then two rings drawn into each other, as wide as they are tall
    cv2.ellipse(ink, (160, 70), (16, 30), 0, 0, 360, 255, 5)
    cv2.ellipse(ink, (186, 70), (16, 30), 0, 0, 360, 255, 5)
    (line,) = find_lines(clean_page(ink).binary)
    narrow, pair = line.groups
    assert not narrow.splits and not pair.splits  # 65 px wide, 67 tall: not cut for its shape
    assert not split_doubted(narrow) and not narrow.splits
    assert split_doubted(pair) and pair.splits and 0 < pair.split_prior < 1
    assert all(len(cut) in (2, 3) for cut in pair.splits)
    assert not split_doubted(pair)  # a group that has its cuts keeps them


def test_a_minus_broken_in_two_is_one_minus_and_a_thick_short_flag_joins_its_5():
    # Rendered set: '83-(79-9)' read '83--(...)' (a 1 px gap in the minus), and '85*(' read
    # '85-*(' (the 5's flag, short and thick, beside the body's top corner).
    ink = np.zeros((140, 400), np.uint8)
    cv2.line(ink, (20, 40), (20, 110), 255, 6)  # a 1
    cv2.line(ink, (60, 75), (78, 75), 255, 4)  # a minus, broken by a 2 px gap, its right half
    cv2.line(ink, (84, 78), (100, 78), 255, 3)  # a little lower and thinner
    cv2.ellipse(ink, (180, 90), (22, 20), 0, -120, 150, 255, 6)  # a 5's bowl and stem ...
    cv2.line(ink, (162, 70), (166, 48), 255, 6)
    cv2.line(ink, (207, 40), (217, 40), 255, 14)  # ... and its flag: short, thick, beside the corner
    cv2.line(ink, (260, 40), (260, 110), 255, 6)  # a 1
    (line,) = find_lines(clean_page(ink).binary)
    boxes = [g.whole.box for g in line.groups]
    assert len(boxes) == 4, boxes
    assert boxes[1][0] <= 60 and boxes[1][0] + boxes[1][2] >= 100, boxes  # one minus, whole
    assert boxes[2][0] + boxes[2][2] >= 222, boxes  # the flag joined the 5


def test_a_small_plus_high_beside_a_digit_and_a_small_equals_touching_one_stay_symbols():
    # Drawn as CROHME writers did: '1+2' with a small plus high up, nearly touching the 2
    # (it used to join the 2 as the detached flag of a 5), and '2=4' with a small '=' whose
    # lower bar touches the 4 (it used to join the 4 as a pen lift in a bar).
    ink = np.zeros((120, 420), np.uint8)
    cv2.line(ink, (20, 20), (20, 70), 255, 4)  # 1
    cv2.line(ink, (36, 32), (58, 32), 255, 4)  # + : bar
    cv2.line(ink, (47, 23), (47, 42), 255, 4)  # + : upright
    cv2.ellipse(ink, (82, 38), (18, 16), 0, 180, 360, 255, 4)  # 2: the bowl...
    cv2.line(ink, (100, 38), (64, 88), 255, 4)  # ...the diagonal...
    cv2.line(ink, (64, 88), (104, 88), 255, 4)  # ...and the base
    cv2.line(ink, (244, 58), (265, 58), 255, 4)  # = : upper bar
    cv2.line(ink, (244, 68), (265, 68), 255, 4)  # = : lower bar, ending 3 px short of the 4
    cv2.line(ink, (288, 20), (272, 68), 255, 4)  # 4
    cv2.line(ink, (272, 68), (308, 68), 255, 4)
    cv2.line(ink, (296, 40), (296, 90), 255, 4)
    (line,) = find_lines(clean_page(ink).binary)
    boxes = [g.whole.box for g in line.groups]
    assert any(30 <= x <= 40 for x, _, _, _ in boxes), boxes  # the + alone
    assert any(60 <= x <= 66 for x, _, _, _ in boxes), boxes  # the 2 alone
    assert any(240 <= x <= 244 and w < 30 for x, _, w, _ in boxes), boxes  # the = alone, not joined to the 4


@pytest.mark.parametrize("reach", [4, 8, 12])
def test_a_minus_under_the_lifted_bar_of_a_7_stays_a_minus(reach):
    # 1-7 with the 7's bar drawn apart from its stem, starting above the end of the minus.
    ink = np.zeros((120, 300), np.uint8)
    for start, end in [((20, 30), (20, 90)), ((50, 60), (72 + reach, 60)), ((74, 32), (114, 32)), ((124, 42), (100, 90))]:
        cv2.line(ink, start, end, 255, 5)
    (line,) = find_lines(clean_page(ink).binary)
    (holder,) = [g for g in line.groups if g.whole.box[0] <= 50 < g.whole.box[0] + g.whole.box[2]]
    x, y, w, h = holder.whole.box
    # The minus alone, or the minus with the whole 7 (touching it) and cuts to read them apart:
    # never the minus and the 7's bar as an '='.
    assert h < 12 or (x + w >= 120 and holder.splits), [g.whole.box for g in line.groups]


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


@pytest.mark.parametrize("scale", [2, 3])
def test_a_canvas_from_a_high_density_screen_keeps_every_stroke(scale):
    # A browser canvas on a screen of two or three device pixels per CSS pixel is exported at
    # that density: 1400×600 and more, past the size from which an image is taken for a page.
    # Its strokes are a third of its height and more; ruling removal took every straight one
    # (the stems of 1, 4, 7, the arms of +) for a ruling, and the line read as a row of 1s.
    ink, _ = render_line("14+(7-1)*4=38", np.random.default_rng(5), height=120 * scale)
    ink = cv2.copyMakeBorder(ink, 50 * scale, 50 * scale, 0, 0, cv2.BORDER_CONSTANT)
    assert min(ink.shape) >= 600
    page = clean_page(decode_image(_encode(ink)))
    assert page.rulings_removed == 0 and page.skew_degrees == 0.0
    drawn = ink >= 128
    assert np.count_nonzero(page.binary[drawn]) >= 0.98 * np.count_nonzero(drawn)
    line, = find_lines(page.binary)
    assert len(line.groups) == len("14+(7-1)*4=38")
    # A page of many small lines at the same size is still a page: skew and rulings found.
    paper = render_page(["12+5=17"] * 12, np.random.default_rng(6), dpi=150, skew_degrees=3.0, ruled=True)
    assert clean_page(decode_image(_encode(paper))).rulings_removed > 0


@pytest.mark.parametrize("angle", [-8.0, 6.0])
def test_a_line_drawn_off_level_is_levelled_and_stays_one_line(angle):
    # Written sloping across a canvas, a long line drifts by more than its height: it was read
    # as two lines, or its symbols read tilted. Levelled by its symbols' centres, with room
    # above and below so that its ends stay in the image.
    from training.validate_real import drawn_otherwise

    text = "12+(37-1)*4=140"
    ink, _ = render_line(text, np.random.default_rng(8), height=70)
    sloping = decode_image(drawn_otherwise(_encode(255 - ink), rotate_degrees=angle))
    page = clean_page(sloping)
    assert abs(page.skew_degrees + angle) < 1.5 and page.padded > 0
    assert page.frame(sloping).shape == page.binary.shape
    line, = find_lines(page.binary)
    assert len(line.groups) == len(text)
    # Written level, it is left as it is.
    level = clean_page(decode_image(_encode(255 - ink)))
    assert (level.skew_degrees, level.padded) == (0.0, 0)


@pytest.mark.parametrize("seed", range(4))
def test_a_short_line_drawn_off_level_is_levelled_too(seed):
    # `1+1=2` has three tall symbols: its slope is measured from them (it needed five before).
    from training.validate_real import drawn_otherwise

    ink, _ = render_line("1+1=2", np.random.default_rng(seed), height=70)
    page = clean_page(decode_image(drawn_otherwise(_encode(255 - ink), rotate_degrees=8.0)))
    assert abs(page.skew_degrees + 8.0) < 1.5
    level = clean_page(decode_image(_encode(255 - ink)))
    assert level.skew_degrees == 0.0


@pytest.mark.parametrize("dark_ink", [True, False])
def test_validation_can_redraw_a_line_with_a_thicker_pen(dark_ink):
    # validate_real --thicken: the ink grows by the pen, on light paper or on a dark canvas alike.
    from training.validate_real import drawn_otherwise

    ink, _ = render_line("1+1=2", np.random.default_rng(3), height=70)
    image = 255 - ink if dark_ink else ink
    widths = []
    for px in (0, 4):
        redrawn = cv2.imdecode(np.frombuffer(drawn_otherwise(_encode(image), thicken_px=px), np.uint8), cv2.IMREAD_GRAYSCALE)
        found = (redrawn < 128) if dark_ink else (redrawn >= 128)
        widths.append(cv2.distanceTransform(found.astype(np.uint8), cv2.DIST_L2, 3).max())
    assert widths[1] >= widths[0] + 1.5  # the pen is 4 px wider: 2 px more on each side


def test_a_line_in_blue_ink_on_yellow_paper_keeps_its_paper_out_of_the_ink():
    # A drawing on a coloured background, drawn without anti-aliasing (two colours only): the
    # paper is not black in ink-bright terms, and the faint-stroke search, measuring from black,
    # took all of it for one faint stroke (every line so drawn was refused as not handwriting).
    ink, _ = render_line("12+(3-1)*4", np.random.default_rng(9), height=60)
    drawn = ink >= 128
    colour = np.where(drawn[..., None], np.array([30, 60, 200], np.uint8), np.array([250, 240, 120], np.uint8))  # RGB
    page = clean_page(decode_image(_encode(colour)))
    found = page.binary > 0
    assert np.count_nonzero(found & ~drawn) == 0 and np.count_nonzero(found & drawn) >= 0.98 * np.count_nonzero(drawn)


def test_skew_estimate_is_level_for_a_straight_page():
    rng = np.random.default_rng(4)
    paper = render_page(["1+1=2"] * 12, rng, dpi=100, ruled=False, uneven=False)
    _, binary = cv2.threshold(255 - paper, 60, 255, cv2.THRESH_BINARY)
    assert abs(estimate_skew(binary)) <= 0.3


def test_the_recorded_skew_is_the_rotation_applied():
    # Below 0.2 degrees the page is not rotated; the step pictures rotate the input by the
    # recorded skew to draw the boxes, so a tiny estimate must be recorded as none.
    for degrees in (0.0, 0.1, 0.15, 3.0):
        page = clean_page(decode_image(_encode(render_page(["1+1=2"] * 12, np.random.default_rng(4), dpi=100, skew_degrees=degrees))))
        assert page.skew_degrees == 0.0 or abs(page.skew_degrees) >= 0.2, (degrees, page.skew_degrees)


def test_a_ruling_whose_brightness_varies_leaves_no_remnant():
    # A flattened scan: one ruling 1 px thick whose ink varies along it (lighting, JPEG), and
    # no writing. The opening follows its dimmest stretch; its brighter stretches must not
    # pass as strokes on top of it (they used to come back as short minus signs).
    flat = np.zeros((700, 1200), np.uint8)
    flat[350, :] = (45 + 50 * (np.sin(np.arange(1200) / 40.0) > 0.6)).astype(np.uint8)
    flat[100:130, 300:320] = 160  # a symbol elsewhere (of a 150 dpi page's size) sets the threshold
    page = clean_page(flat)
    assert page.rulings_removed > 0
    assert not page.binary[345:356].any()


def test_a_faint_broken_minus_on_a_page_is_kept_whole():
    # A pencil minus on a 150 dpi scan: a thin bar under the page's threshold in places,
    # broken by gaps of a pixel. Lost, it would turn 88-57 into 8857.
    flat = np.zeros((700, 1200), np.uint8)
    flat[300:345, 400:430] = 160  # digits either side set the threshold
    flat[300:345, 470:500] = 160
    bar = np.array([55, 60, 58, 40, 28, 50, 59, 57, 30, 52, 56, 61, 49], np.uint8).repeat(1)
    flat[322:324, 437:450] = bar
    flat[322:324, 450:463] = bar[::-1]
    page = clean_page(flat)
    count, _, stats, _ = cv2.connectedComponentsWithStats(page.binary[315:330, 432:468])
    assert count == 2 and stats[1, cv2.CC_STAT_WIDTH] >= 24  # one bar, not specks
    lines = find_lines(page.binary)
    assert [len(line.groups) for line in lines] == [3]  # digit, minus, digit


def test_a_faint_broken_minus_on_a_line_crop_is_kept_whole():
    # A cropped line from a light scan (no page clean-up for an image this small): a thin
    # minus whose darkest pixels alone pass the threshold, in pieces too small to keep.
    # Lost, it turned 35-24 into 3524 in the rendered set.
    ink = np.zeros((60, 220), np.uint8)
    ink[10:50, 40:70] = 200  # digits either side set the threshold
    ink[10:50, 150:180] = 200
    ink[29, 90:130] = np.tile([40, 70, 110, 70, 40], 8)  # found only at its peaks, a pixel each
    ink[30, 92:128] = 60
    lines = find_lines(clean_page(ink).binary)
    assert [len(line.groups) for line in lines] == [3]  # digit, minus, digit
    assert lines[0].groups[1].whole.box[2] >= 30  # the whole bar, not a speck of it


def test_a_tight_antialiased_equals_sign_keeps_its_two_bars():
    # The faint-stroke pass joins what lies a pixel or two apart; the two bars of a small '='
    # drawn on a canvas, their gap grey with antialiasing, must not be filled into one minus.
    ink = np.zeros((60, 160), np.uint8)
    ink[10:50, 20:45] = 255
    ink[25:28, 70:100] = 255
    ink[30:33, 70:100] = 255
    ink[10:50, 120:145] = 255
    ink = cv2.GaussianBlur(ink, (3, 3), 0.8)
    binary = clean_page(ink).binary
    assert cv2.connectedComponents(binary[20:40, 65:105])[0] - 1 == 2
    assert [len(line.groups) for line in find_lines(binary)] == [3]


def test_the_broken_off_tail_of_a_5_joins_it_and_a_minus_before_it_stays():
    # Rendered set: '35-4' read '325-4' and '40+54' read '40+254': the end of the 5's
    # lower curve, broken off where the pen thinned, was read as a symbol of its own.
    ink = np.zeros((140, 420), np.uint8)
    cv2.line(ink, (20, 40), (20, 110), 255, 6)  # a 1
    cv2.line(ink, (50, 75), (85, 75), 255, 6)  # a minus at mid height
    cv2.line(ink, (122, 40), (165, 40), 255, 6)  # the 5: flag, stem ...
    cv2.line(ink, (122, 40), (120, 72), 255, 6)
    cv2.ellipse(ink, (138, 88), (22, 20), 0, -130, 110, 255, 6)  # ... bowl, ending low on the left
    cv2.line(ink, (116, 108), (98, 100), 255, 6)  # ... and the tail, broken off the bowl's end
    cv2.line(ink, (230, 40), (230, 110), 255, 6)  # a 1
    (line,) = find_lines(clean_page(ink).binary)
    boxes = [g.whole.box for g in line.groups]
    assert len(boxes) == 4, boxes  # 1 - 5 1
    assert boxes[1][0] <= 50 and boxes[1][2] <= 45, boxes  # the minus alone
    assert boxes[2][0] <= 100 and boxes[2][0] + boxes[2][2] >= 160, boxes  # the tail joined the 5


def test_a_small_file_of_a_million_dots_is_too_many_symbols_before_each_is_looked_at():
    # A few kilobytes of PNG can hold a million marks big enough to keep: the count is
    # checked before anything is built per mark (it used to build a tuple for each).
    binary = np.zeros((5000, 5000), np.uint8)
    for dy in range(3):
        for dx in range(3):
            binary[dy::5, dx::5] = 255
    with pytest.raises(RecognitionError) as caught:
        find_lines(binary)
    assert caught.value.code == "too_many_symbols" and "1000000 marks" in caught.value.message


def test_a_tall_page_of_1990_one_symbol_lines_gives_1990_lines_in_order():
    binary = np.zeros((1990 * 30 + 40, 100), np.uint8)
    for line in range(1990):
        top = 20 + line * 30
        binary[top : top + 12, 20 + (line % 7) * 8 : 30 + (line % 7) * 8] = 255
    lines = find_lines(binary)
    assert len(lines) == 1990
    assert [line.box[1] for line in lines] == [20 + n * 30 for n in range(1990)]
    assert all(len(line.groups) == 1 for line in lines)


def test_faint_noise_on_a_small_image_stays_blank():
    # Under MIN_CONTRAST there is no ink: the faint-stroke pass must not make strokes of the
    # noise either (on a canvas-sized image it once found 129 of them).
    noise = np.clip(np.random.default_rng(1).normal(0, 10, (300, 500)), 0, 39).astype(np.uint8)
    assert not clean_page(noise).binary.any()


def test_components_take_16_bit_labels_only_where_they_fit_and_match_the_32_bit_ones():
    from workers.pipeline.page import components

    rng = np.random.default_rng(3)
    dots = (rng.random((600, 600)) < 0.3).astype(np.uint8)  # many specks: up to 300×300 cells
    for image, label_type in ((dots[:200, :500], np.uint16), (dots, np.int32)):
        count, labels, stats = components(image)
        expected_count, expected_labels, expected_stats, _ = cv2.connectedComponentsWithStats(image, connectivity=8)
        assert labels.dtype == label_type and count == expected_count
        assert np.array_equal(labels, expected_labels) and np.array_equal(stats, expected_stats)
    checkerboard = (np.indices((511, 511)).sum(axis=0) % 2 == 0) & (np.indices((511, 511))[0] % 2 == 0)
    count, labels, _ = components(checkerboard.astype(np.uint8))  # one component per 2x2 cell: 65,536 labels
    assert labels.dtype == np.int32 and count == 256 * 256 + 1
