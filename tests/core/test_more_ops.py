"""The ops of torch's Tensor API added beside the core ones (tables in cases_more.py): the forward
against NumPy, a float64 gradcheck, and values and gradients against torch autograd."""
import pytest

from .cases_more import ALL_MORE

from tests.helpers.ops import run_spec, run_torch_spec


@pytest.mark.parametrize("spec", ALL_MORE)
def test_gradcheck(spec):
    run_spec(spec)


@pytest.mark.parametrize("spec", ALL_MORE)
def test_torch_parity(spec):
    pytest.importorskip("torch")
    run_torch_spec(spec)
