"""The pipeline's small-array median and percentile give numpy's results, to the bit."""
import numpy as np
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from workers.pipeline.quantiles import median, percentile

# What segmentation measures: component heights and widths (int32), pixel values (uint8),
# slopes (float64) and distances (float32, median only).
INTEGER_ARRAYS = st.one_of(
    hnp.arrays(np.int32, st.integers(1, 80), elements=st.integers(0, 5000)),
    hnp.arrays(np.uint8, st.integers(1, 80)),
)
FLOAT_ARRAYS = hnp.arrays(np.float64, st.integers(1, 80), elements=st.floats(-1e6, 1e6, allow_nan=False))
FLOAT32_ARRAYS = hnp.arrays(np.float32, st.integers(1, 80), elements=st.floats(0, 100, width=32))


@given(st.one_of(INTEGER_ARRAYS, FLOAT_ARRAYS, FLOAT32_ARRAYS))
def test_median_is_numpys(values):
    assert median(values) == float(np.median(values))


@given(st.one_of(INTEGER_ARRAYS, FLOAT_ARRAYS), st.sampled_from([0, 25, 50, 75, 90, 100]) | st.floats(0, 100))
def test_percentile_is_numpys(values, q):
    assert percentile(values, q) == float(np.percentile(values, q))


def test_a_list_is_read_like_an_array():
    assert median([3, 1, 2, 10]) == 2.5 and percentile([10, 20, 30, 40, 50], 75) == 40.0
