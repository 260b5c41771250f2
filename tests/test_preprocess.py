"""The one crop-to-28×28 function: MNIST conventions and stroke-width normalisation."""
import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from workers.pipeline.preprocess import (
    FIT_SIZE, INPUT_SIZE, STROKE_METHODS, crop_to_input, crops_to_batch, joined_stroke_method, known_stroke_method,
    preprocess_config, stroke_channels, stroke_method_of,
)


def _draw_seven(height: int, pen: int) -> np.ndarray:
    width = int(height * 0.6)
    canvas = np.zeros((height + 4 * pen, width + 4 * pen), np.uint8)
    o = 2 * pen
    cv2.line(canvas, (o, o), (o + width, o), 255, pen, cv2.LINE_AA)
    cv2.line(canvas, (o + width, o), (o + width // 4, o + height), 255, pen, cv2.LINE_AA)
    return canvas


@pytest.mark.parametrize("method", STROKE_METHODS)
def test_output_follows_mnist_conventions(method):
    out = crop_to_input(_draw_seven(120, 8), method)
    assert out.shape == (INPUT_SIZE, INPUT_SIZE) and out.dtype == np.float32
    assert 0.0 <= out.min() and out.max() <= 1.0
    ys, xs = np.nonzero(out > 0.05)
    assert max(np.ptp(ys), np.ptp(xs)) + 1 <= FIT_SIZE + 1  # fitted in 20×20
    rows, cols = np.indices(out.shape)
    centre = ((rows * out).sum() / out.sum(), (cols * out).sum() / out.sum())
    assert np.allclose(centre, (14, 14), atol=1.0)  # centred by centre of mass


@pytest.mark.parametrize("method", STROKE_METHODS)
def test_thin_scan_and_thick_canvas_strokes_look_alike(method):
    thin = crop_to_input(_draw_seven(40, 1), method)
    canvas = crop_to_input(_draw_seven(300, 10), method)
    tablet = crop_to_input(_draw_seven(48, 3), method)
    # Same symbol, pens from 1 px to 10 px: the inputs differ by little.
    for other in (canvas, tablet):
        assert np.abs(thin - other).mean() < 0.06
        if method == "skeleton":  # one fixed pen: the ink amounts match
            assert abs(thin.sum() - other.sum()) / thin.sum() < 0.2


def test_band_brings_every_pen_into_mnists_range_and_keeps_the_writers_width_within_it():
    # Relative pen widths from 1/60 to 1/3 of the symbol's height: a 20× range.
    ink = {pen: crop_to_input(_draw_seven(60, pen), "band").sum() for pen in (1, 2, 4, 6, 8, 12, 20)}
    assert max(ink.values()) / min(ink.values()) < 4
    # Within the band the writer's own width stays: a bolder pen gives more ink.
    assert ink[12] > ink[8] * 1.2 > ink[6] * 1.2
    # Thinner than the band is thickened, thicker than the band is redrawn at its edge.
    assert ink[1] > ink[4] * 0.6 and ink[20] < ink[12] * 1.15


def test_a_versions_recorded_stroke_method_is_the_one_used():
    assert stroke_method_of({"preprocess": preprocess_config("band")}) == "band"
    assert stroke_method_of({"preprocess": preprocess_config("skeleton")}) == "skeleton"
    # Versions up to v0014 recorded no method: they were trained on the skeleton.
    assert stroke_method_of({"preprocess": {"stroke_width": "skeletonize then redraw with a fixed pen"}}) == "skeleton"
    with pytest.raises(ValueError, match="unknown stroke method"):
        stroke_method_of({"preprocess": {"stroke_method": "blur"}})
    with pytest.raises(ValueError, match="unknown stroke method"):
        crop_to_input(_draw_seven(40, 2), "blur")


def test_a_crop_read_both_ways_gives_one_channel_per_method_in_order():
    # An ensemble of members trained on either method reads each crop both ways.
    crop = _draw_seven(60, 4)
    batch = crops_to_batch([crop, np.zeros((5, 5), np.uint8)], "skeleton+band")
    assert batch.shape == (2, 28, 28, 2) and not batch[1].any()
    np.testing.assert_array_equal(batch[0, :, :, 0], crop_to_input(crop, "skeleton"))
    np.testing.assert_array_equal(batch[0, :, :, 1], crop_to_input(crop, "band"))
    assert stroke_channels("skeleton+band") == ("skeleton", "band") and stroke_channels("band") == ("band",)
    assert joined_stroke_method(["skeleton", "band", "skeleton"]) == "skeleton+band"
    config = preprocess_config("skeleton+band")
    assert stroke_method_of({"preprocess": config}) == "skeleton+band" and config["band_half_width"]
    for unknown in ("band+band", "skeleton+blur", "+band", ""):
        with pytest.raises(ValueError, match="unknown stroke method"):
            known_stroke_method(unknown)
    with pytest.raises(ValueError, match="crop_to_channels"):
        crop_to_input(crop, "skeleton+band")


def test_dtype_and_scale_do_not_matter():
    crop = _draw_seven(80, 5)
    np.testing.assert_allclose(crop_to_input(crop), crop_to_input(crop.astype(np.float32) / 255.0), atol=1e-6)
    np.testing.assert_allclose(crop_to_input(crop), crop_to_input(crop > 127), atol=1e-6)


def test_empty_crop_gives_zeros_and_batches_stack():
    assert not crop_to_input(np.zeros((10, 10), np.uint8)).any()
    batch = crops_to_batch([_draw_seven(50, 3), np.zeros((5, 5), np.uint8)])
    assert batch.shape == (2, 28, 28, 1)


@pytest.mark.parametrize("method", STROKE_METHODS)
def test_a_short_minus_survives(method):
    minus = np.zeros((9, 40), np.uint8)
    minus[4, 3:37] = 255
    out = crop_to_input(minus, method)
    ys, xs = np.nonzero(out > 0.3)
    assert np.ptp(xs) >= FIT_SIZE - 2 and np.ptp(ys) <= 4


@settings(deadline=None)
@given(
    height=st.integers(1, 300),
    width=st.integers(1, 300),
    seed=st.integers(0, 2**32 - 1),
    density=st.floats(0.0, 1.0),
    method=st.sampled_from(STROKE_METHODS),
)
def test_any_crop_gives_a_valid_input(height, width, seed, density, method):
    rng = np.random.default_rng(seed)
    crop = (rng.random((height, width)) < density).astype(np.uint8) * 255
    out = crop_to_input(crop, method)
    assert out.shape == (28, 28) and np.isfinite(out).all()
    assert 0.0 <= out.min() and out.max() <= 1.0
    assert out.any() == bool(crop.any())


def test_a_crop_must_be_two_dimensional():
    with pytest.raises(ValueError, match="2-D"):
        crop_to_input(np.zeros((4, 4, 3)))
