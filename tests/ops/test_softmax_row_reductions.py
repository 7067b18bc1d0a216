"""softmax_'s row maxima (argmax + gather) and row sums (a gemv) along the last axis: the same
values as NumPy's reductions, NaN / +-inf rows included, and the empty-row rule unchanged."""
import numpy as np
import pytest

from nanoframe.ops.activation import _row_maxes, _row_sums, softmax_


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(5,), (3, 7), (2, 3, 64), (2, 4, 1), (48, 65)])
def test_row_maxes_and_sums_equal_numpy(shape, dtype):
    x = np.random.default_rng(0).standard_normal(shape).astype(dtype)
    assert np.array_equal(_row_maxes(x, -1), x.max(axis=-1, keepdims=True))
    np.testing.assert_allclose(_row_sums(x, -1), x.sum(axis=-1, keepdims=True), rtol=1e-5, atol=1e-6)
    assert _row_sums(x, -1).shape == x.sum(axis=-1, keepdims=True).shape


def test_row_maxes_special_values():
    x = np.array([[1.0, np.nan, 3.0], [-np.inf] * 3, [np.inf, 1.0, 2.0], [np.inf, np.nan, -np.inf]], np.float32)
    np.testing.assert_array_equal(_row_maxes(x, -1), x.max(axis=-1, keepdims=True))   # NaN where numpy has NaN


def test_other_axes_and_dtypes_fall_back():
    x = np.random.default_rng(1).standard_normal((3, 4, 5)).astype(np.float32)
    assert np.array_equal(_row_maxes(x, 1), x.max(axis=1, keepdims=True))
    assert np.array_equal(_row_sums(x, 0), x.sum(axis=0, keepdims=True))
    h = x.astype(np.float16)
    assert np.array_equal(_row_sums(h, -1), h.sum(axis=-1, keepdims=True))


def test_softmax_empty_rows_zero_and_nan():
    x = np.array([[0.0, 1.0, -np.inf], [-np.inf] * 3], np.float32)
    y = softmax_(x.copy(), empty_rows_zero=True)
    np.testing.assert_allclose(y[0], np.exp([0.0, 1.0, -np.inf]) / np.exp([0.0, 1.0]).sum(), rtol=1e-6)
    assert np.array_equal(y[1], np.zeros(3, np.float32))
    with np.errstate(invalid="ignore"):
        assert np.isnan(softmax_(x.copy())[1]).all()                # torch's F.softmax: NaN
