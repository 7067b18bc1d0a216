"""GPT generation: KV-cache path against the uncached path (logits and tokens, past block_size),
greedy / top-k / top-p sampling, seeds, stop tokens, streaming, and mode restoring."""
import numpy as np
import pytest

import nanoframe as nf
from nanoframe.models.generate import KVCache, sample_next
from nanoframe.models.gpt import GPT, GPTConfig


def make_model(block_size=8, vocab_size=13, n_layer=2, bias=True, scale=8.0, dropout=0.0):
    """A small model whose weights are scaled up, so its next-token distributions are far from
    uniform (greedy choices are then well separated and sampling is not trivially uniform)."""
    nf.manual_seed(0)
    cfg = GPTConfig(vocab_size=vocab_size, block_size=block_size, n_layer=n_layer, n_head=2,
                    n_embd=16, dropout=dropout, bias=bias)
    model = GPT(cfg)
    for name, p in model.named_parameters():
        if p.ndim == 2:
            p.array[...] = p.array * scale
    return model


def prompt(B=2, T=3, V=13, seed=0):
    return np.random.default_rng(seed).integers(0, V, size=(B, T))


def test_cached_logits_equal_uncached_step_by_step():
    model = make_model().eval()
    ids = prompt(B=2, T=8)
    ref = model(ids)[0].array                              # (B, T, V), full forward
    cache = KVCache(model.config, batch_size=2)
    pre = model(ids[:, :3], cache=cache)[0]         # prefill 3 positions
    np.testing.assert_allclose(pre, ref[:, :3], rtol=1e-4, atol=1e-5)
    for t in range(3, 8):                                 # then one position at a time
        step = model(ids[:, t:t + 1], cache=cache)[0]
        assert step.shape == (2, 1, model.config.vocab_size)
        np.testing.assert_allclose(step[:, 0], ref[:, t], rtol=1e-4, atol=1e-5)
    assert cache.length == 8
    assert cache.k[0].shape == (2, 2, 8, 8)               # (B, nh, block_size, hs), preallocated
    with pytest.raises(ValueError, match="block_size"):
        model(ids[:, :1], cache=cache)


def test_cached_logits_float64():
    model = make_model().double().eval()
    ids = prompt(B=1, T=8)
    ref = model(ids)[0].array
    cache = KVCache(model.config, batch_size=1, dtype=np.float64)
    out = np.concatenate([model(ids[:, t:t + 1], cache=cache)[0] for t in range(8)], axis=1)
    assert out.dtype == np.float64
    np.testing.assert_allclose(out, ref, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("kwargs", [
    dict(temperature=0.0),
    dict(temperature=1.0, seed=7),
    dict(temperature=0.8, top_k=4, seed=3),
    dict(temperature=1.2, top_p=0.7, seed=11),
    dict(temperature=1.0, top_k=5, top_p=0.9, seed=5),
])
def test_cache_equals_no_cache_past_block_size(kwargs):
    model = make_model(block_size=8)
    ids = prompt(B=3, T=3)
    n = 20                                                # 3 + 20 > block_size = 8: the window slides
    a = model.generate(ids, n, use_cache=True, **kwargs)
    b = model.generate(ids, n, use_cache=False, **kwargs)
    assert a.shape == (3, 3 + n) and a.dtype == np.int64
    np.testing.assert_array_equal(a[:, :3], ids)
    np.testing.assert_array_equal(a, b)
    assert len(np.unique(a[:, 3:])) > 1


def test_cache_equals_no_cache_with_library_generator():
    model = make_model(block_size=6, n_layer=1, bias=False)
    ids = prompt(B=1, T=6)                                # prompt already fills the block
    nf.manual_seed(42)
    a = model.generate(ids, 15)
    nf.manual_seed(42)
    b = model.generate(ids, 15, use_cache=False)
    np.testing.assert_array_equal(a, b)
    nf.manual_seed(43)
    c = model.generate(ids, 15)
    assert not np.array_equal(a, c)                       # the library generator drives sampling


def test_long_prompt_is_cropped_like_uncached():
    model = make_model(block_size=8)
    ids = prompt(B=2, T=12)
    a = model.generate(ids, 5, temperature=0.0)
    b = model.generate(ids[:, -8:], 5, temperature=0.0)
    np.testing.assert_array_equal(a[:, 12:], b[:, 8:])


def test_greedy_matches_argmax_of_forward():
    model = make_model(block_size=16)
    ids = prompt(B=2, T=4)
    out = model.generate(ids, 6, temperature=0.0)
    model.eval()
    seq = ids.copy()
    for _ in range(6):
        nxt = model(seq)[0].array[:, -1].argmax(-1)
        seq = np.concatenate([seq, nxt[:, None]], axis=1)
    np.testing.assert_array_equal(out, seq)


def test_top_k_1_equals_greedy():
    model = make_model()
    ids = prompt(B=2, T=3)
    greedy = model.generate(ids, 12, temperature=0.0)
    for t in (0.5, 1.0, 3.0):
        np.testing.assert_array_equal(model.generate(ids, 12, temperature=t, top_k=1, seed=1), greedy)
        np.testing.assert_array_equal(model.generate(ids, 12, temperature=t, top_k=1, use_cache=False), greedy)


def test_seed_reproducible_and_different_seeds_differ():
    model = make_model(scale=2.0)
    ids = prompt(B=2, T=3)
    a = model.generate(ids, 16, seed=0)
    np.testing.assert_array_equal(a, model.generate(ids, 16, seed=0))
    assert not np.array_equal(a, model.generate(ids, 16, seed=1))


def test_sample_next_filters():
    logits = np.log(np.array([[0.05, 0.5, 0.1, 0.3, 0.05]]))
    rng = np.random.default_rng(0)
    draws = np.array([sample_next(logits, 1.0, top_k=2, rng=rng)[0] for _ in range(400)])
    assert set(draws) == {1, 3}
    # top_p=0.75: sorted probs 0.5, 0.3, ... -> the nucleus is {1, 3} (0.5 alone is < 0.75)
    draws = np.array([sample_next(logits, 1.0, top_p=0.75, rng=rng)[0] for _ in range(400)])
    assert set(draws) == {1, 3}
    draws = np.array([sample_next(logits, 1.0, top_p=0.4, rng=rng)[0] for _ in range(50)])
    assert set(draws) == {1}                              # always keeps the top token
    draws = np.array([sample_next(logits, 1.0, rng=rng)[0] for _ in range(4000)])
    freq = np.bincount(draws, minlength=5) / 4000
    np.testing.assert_allclose(freq, [0.05, 0.5, 0.1, 0.3, 0.05], atol=0.03)
    assert sample_next(logits, 0.0)[0] == 1               # greedy needs no generator
    # top_k larger than V is clamped; batched rows are independent
    two = np.concatenate([logits, logits[:, ::-1]])
    assert sample_next(two, 0.0).tolist() == [1, 3]
    assert sample_next(two, 1.0, top_k=99, rng=rng).shape == (2,)


def test_stop_tokens_and_stream():
    model = make_model()
    ids = prompt(B=1, T=3)
    full = model.generate(ids, 12, temperature=0.0)
    stop = int(full[0, 6])                                # the 4th generated token
    first = int(np.flatnonzero(full[0, 3:] == stop)[0])
    out = model.generate(ids, 12, temperature=0.0, stop_tokens=[stop])
    np.testing.assert_array_equal(out, full[:, :3 + first + 1])   # stops right after the stop token
    out1d = model.generate(ids[0], 12, temperature=0.0, stop_tokens=stop)
    np.testing.assert_array_equal(out1d, out[0])
    streamed = list(model.stream(ids, 12, temperature=0.0))
    assert all(t.shape == (1,) for t in streamed)
    np.testing.assert_array_equal(np.concatenate(streamed), full[0, 3:])


def test_stop_tokens_batch_waits_for_every_row():
    model = make_model(scale=3.0)
    ids = prompt(B=3, T=2)
    free = model.generate(ids, 15, seed=4)
    stop = int(free[0, 4])                               # row 0 stops after 3 tokens
    out = model.generate(ids, 15, seed=4, stop_tokens=[stop])
    for r in range(3):
        new = free[r, 2:]
        hits = np.flatnonzero(new == stop)
        if hits.size and hits[0] < out.shape[1] - 2:
            k = hits[0]
            np.testing.assert_array_equal(out[r, 2:2 + k + 1], new[:k + 1])
            assert (out[r, 2 + k:] == stop).all()         # finished rows repeat their stop token
        else:
            np.testing.assert_array_equal(out[r, 2:], new[:out.shape[1] - 2])
    rows_done = [(out[r, 2:] == stop).any() for r in range(3)]
    assert out.shape[1] == 17 or all(rows_done)
    assert out.shape[1] < 17 or not all((free[r, 2:-1] == stop).any() for r in range(3))


def test_generation_restores_mode_and_disables_dropout():
    model = make_model(dropout=0.5)
    assert model.training
    ids = prompt(B=1, T=3)
    a = model.generate(ids, 6, temperature=0.0)
    assert model.training                                 # restored
    b = model.generate(ids, 6, temperature=0.0, use_cache=False)
    np.testing.assert_array_equal(a, b)                   # dropout off: deterministic
    model.eval()
    model.generate(ids, 2)
    assert not model.training
    gen = model.train().stream(ids, 3)
    next(gen)
    assert not model.training                             # eval while streaming
    gen.close()
    assert model.training


def test_generate_argument_validation():
    model = make_model()
    ids = prompt()
    for kw, match in [(dict(temperature=-1.0), "temperature"), (dict(top_k=0), "top_k"),
                      (dict(top_p=0.0), "top_p"), (dict(top_p=1.5), "top_p")]:
        with pytest.raises(ValueError, match=match):
            model.generate(ids, 3, **kw)
    with pytest.raises(ValueError, match="token ids"):
        model.generate(np.array([[0, 13]]), 3)
    with pytest.raises(ValueError, match="T >= 1"):
        model.generate(np.zeros((1, 0), dtype=np.int64), 3)
    np.testing.assert_array_equal(model.generate(ids, 0), ids)


def test_stop_tokens_stop_when_every_row_is_done():
    model = make_model()
    ids = prompt(B=2, T=3)
    free = model.generate(ids, 10, temperature=0.0)
    first = [int(free[0, 3]), int(free[1, 3])]
    out = model.generate(ids, 10, temperature=0.0, stop_tokens=first)
    assert out.shape == (2, 4)                            # both rows stop at their first token
    np.testing.assert_array_equal(out, free[:, :4])
    late = int(free[1, 7])
    if late not in free[0, 3:4].tolist() + free[1, 3:7].tolist():
        out = model.generate(ids, 10, temperature=0.0, stop_tokens=[first[0], late])
        assert out.shape[1] <= 8 and (out[1, 3:] == free[1, 3:out.shape[1]]).all()
        assert (out[0, 4:] == first[0]).all()
