"""Random sampling: Generator objects, the generator= argument, randint's two forms, randperm and
multinomial (with and without replacement)."""
import json

import numpy as np
import pytest

import nanoframe as nf


def test_generator_seeding_and_state():
    g = nf.Generator()
    assert g.manual_seed(3) is g and g.initial_seed() == 3 and g.device == nf.device("cpu")
    a = nf.randn(4, generator=g)
    state = g.get_state()
    json.dumps(state)  # a JSON-serialisable dict
    b = nf.rand(3, generator=g)
    g.set_state(state)
    np.testing.assert_array_equal(nf.rand(3, generator=g).array, b.array)
    g2 = nf.Generator().manual_seed(3)
    np.testing.assert_array_equal(nf.randn(4, generator=g2).array, a.array)
    assert g.manual_seed(-1).initial_seed() == 2**64 - 1  # torch's two's complement for negative seeds
    seed = g.seed()
    assert isinstance(seed, int) and g.initial_seed() == seed


def test_generators_are_independent_of_the_default():
    nf.manual_seed(0)
    a = nf.randn(3)
    nf.manual_seed(0)
    nf.randperm(10, generator=nf.Generator().manual_seed(5))  # draws from its own stream
    np.testing.assert_array_equal(nf.randn(3).array, a.array)
    assert isinstance(nf.manual_seed(1), nf.Generator) and nf.initial_seed() == 1
    with pytest.raises(TypeError, match="nanoframe.Generator"):
        nf.rand(2, generator=np.random.default_rng(0))


def test_randint_forms():
    nf.manual_seed(0)
    a = nf.randint(5, (1000,))
    b = nf.randint(-3, 3, (10, 10))
    c = nf.randint(0, 2, size=(4,), generator=nf.Generator().manual_seed(0), dtype=nf.int32)
    assert a.dtype == nf.int64 and a.shape == (1000,) and a.min().item() == 0 and a.max().item() == 4
    assert b.shape == (10, 10) and b.min().item() >= -3 and b.max().item() <= 2
    assert c.dtype == nf.int32 and set(c.tolist()) <= {0, 1}
    with pytest.raises(RuntimeError, match="from=5 >= to=5"):
        nf.randint(5, 5, (2,))
    with pytest.raises(TypeError, match="randint"):
        nf.randint(5)
    assert nf.randint_like(nf.zeros(2, 3), 10).shape == (2, 3)


def test_randperm():
    p = nf.randperm(50, generator=nf.Generator().manual_seed(1))
    assert p.dtype == nf.int64 and sorted(p.tolist()) == list(range(50)) and p.tolist() != list(range(50))
    assert nf.randperm(0).shape == (0,)


def test_multinomial_without_replacement_draws_distinct():
    g = nf.Generator().manual_seed(0)
    w = nf.tensor([[0.1, 0.0, 0.5, 0.4], [1.0, 1.0, 1.0, 1.0]])
    s = nf.multinomial(w, 3, generator=g)
    assert s.shape == (2, 3) and s.dtype == nf.int64
    assert 1 not in s[0].tolist() and len(set(s[0].tolist())) == 3 and len(set(s[1].tolist())) == 3
    with pytest.raises(ValueError, match="without replacement"):
        nf.multinomial(w, 4)


def test_multinomial_with_replacement_follows_the_weights():
    g = nf.Generator().manual_seed(0)
    s = nf.multinomial(nf.tensor([1.0, 3.0, 0.0]), 20000, replacement=True, generator=g)
    counts = np.bincount(s.array, minlength=3) / 20000
    np.testing.assert_allclose(counts, [0.25, 0.75, 0.0], atol=0.015)


@pytest.mark.parametrize("bad,match", [
    ([0.5, -0.1], "element < 0"), ([np.nan, 1.0], "inf, nan"), ([0.0, 0.0], "sum of probabilities"),
    ([[[1.0]]], "1 or 2 dim"),
])
def test_multinomial_rejects_bad_weights(bad, match):
    with pytest.raises(ValueError, match=match):
        nf.multinomial(nf.tensor(bad), 1, replacement=True)


def test_multinomial_is_reproducible_with_manual_seed():
    p = nf.softmax(nf.randn(5, 10), -1)
    nf.manual_seed(7)
    a = nf.multinomial(p, 1)
    nf.manual_seed(7)
    assert nf.multinomial(p, 1).tolist() == a.tolist()
