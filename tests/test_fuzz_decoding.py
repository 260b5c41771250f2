"""Fuzz the decoding and the pipeline's entry with Hypothesis (bounded by the `ci` profile):
any bytes and any small image either give a result or a typed RecognitionError."""
from __future__ import annotations

import io

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from PIL import Image

from workers.pipeline.errors import RecognitionError
from workers.pipeline.imaging import decode_image
from workers.pipeline.recognize import recognize

PNG = b"\x89PNG\r\n\x1a\n"


def _png(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


@given(st.one_of(st.binary(max_size=2048), st.binary(max_size=512).map(lambda b: PNG + b)))
def test_any_bytes_decode_or_raise_a_typed_error(data):
    try:
        image = decode_image(data)
    except RecognitionError as error:
        assert error.code in {"not_an_image", "empty_image", "truncated_image", "unsupported_image_mode", "too_many_pixels"}
    else:
        assert image.dtype == np.uint8 and image.ndim == 2


@pytest.fixture(scope="module")
def classifier():
    from workers.pipeline.classify import SymbolClassifier

    return SymbolClassifier(threads=1)


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(arrays(np.uint8, st.tuples(st.integers(8, 96), st.integers(8, 160)), elements=st.sampled_from([0, 40, 128, 220, 255])))
@example(image=np.pad(np.zeros((1, 1), np.uint8), ((0, 7), (0, 7)), constant_values=128))  # found by this test: one dark pixel
def test_any_small_image_is_read_or_refused_with_a_typed_error(classifier, image):
    try:
        result = recognize(_png(image), classifier)
    except RecognitionError as error:
        assert error.code in {"no_symbols", "too_many_symbols", "not_handwriting"}
    else:
        for line in result.as_dict()["lines"]:
            assert (line["error"] is None) == (line["value"] is not None)
