"""Generation: the KV cache, sampling, and the token stream of a GPT.

    stream(model, idx, n, temperature, top_k, top_p, stop_tokens, seed, use_cache)   yields tokens
    generate(model, idx, n, ...)                                                      all at once

Each step runs the model's own forward (models/gpt.py) on ndarrays with a KVCache, so a new token
costs one position instead of a full forward. The cached path reproduces the uncached one exactly
(same crop-to-block_size context, same positions, same sampling code and random draws).
"""
import numpy as np

from nanoframe.autograd import no_grad
from nanoframe.errors import ConfigError, NanoframeError
from nanoframe.models.gpt import as_ids
from nanoframe.ops.activation import softmax_
from nanoframe.random import default_generator
from nanoframe.schema import check


class KVCache:
    """Per-layer keys and values for generation, preallocated to `capacity` positions (default
    block_size; generation asks for prompt + new tokens, at most block_size).

    k[l], v[l]: arrays (B, nkv, capacity, hs) holding only the model's nkv key/value heads (fewer
    than its query heads with grouped-query attention: that is where GQA saves memory); keys are
    stored rotated when the model uses RoPE. The first `length` positions are filled and hold the
    tokens idx[:, start : start + length] of the sequence being generated, at positions
    0 .. length-1. GPT.forward(..., cache=cache) appends positions and advances `length`.
    """

    def __init__(self, config, batch_size, dtype=np.float32, capacity=None):
        capacity = config.block_size if capacity is None else int(capacity)
        if not 1 <= capacity <= config.block_size:
            raise ValueError(f"KVCache: capacity must be in [1, block_size = {config.block_size}], got {capacity}")
        shape = (batch_size, config.kv_heads, capacity, config.head_size)
        self.k = [np.zeros(shape, dtype=dtype) for _ in range(config.n_layer)]
        self.v = [np.zeros(shape, dtype=dtype) for _ in range(config.n_layer)]
        self.block_size = config.block_size
        self.capacity = capacity
        self.batch_size = batch_size
        self.start = 0    # index in the full sequence of the token at cache position 0
        self.length = 0   # number of filled positions

    @property
    def nbytes(self):
        """Bytes held by the keys and values of every layer."""
        return sum(a.nbytes for a in self.k + self.v)

    def layer(self, i):
        """(k_cache, v_cache, t0) of layer i: what its attention reads and appends to."""
        return self.k[i], self.v[i], self.length

    def reset(self, start=0):
        """Forget every cached position (the arrays are reused, not reallocated)."""
        self.start, self.length = start, 0


def _py_int(value):
    """NumPy integers count as ints for the sampling options (floats and bools do not)."""
    return int(value) if isinstance(value, np.integer) else value


def _filter_logits(logits, top_k=None, top_p=None):
    """Set logits outside top-k / the top-p nucleus to -inf, as Hugging Face's warpers do.

    logits: (B, V) float64, already divided by the temperature. top_k keeps every logit >= the
    k-th largest (ties kept). top_p sorts ascending, removes the tokens whose cumulative
    probability is <= 1 - top_p, and always keeps the most likely token.
    """
    V = logits.shape[-1]
    if top_k is not None:
        k = min(int(top_k), V)
        kth = np.partition(logits, V - k, axis=-1)[:, V - k : V - k + 1]  # (B, 1): k-th largest
        logits = np.where(logits < kth, -np.inf, logits)
    if top_p is not None and top_p < 1.0:
        order = np.argsort(logits, axis=-1, kind="stable")               # ascending
        sorted_logits = np.take_along_axis(logits, order, axis=-1)
        cum = np.cumsum(softmax_(sorted_logits), axis=-1)
        remove_sorted = cum <= (1.0 - top_p)
        remove_sorted[:, -1] = False                                      # keep at least one token
        remove = np.empty_like(remove_sorted)
        np.put_along_axis(remove, order, remove_sorted, axis=-1)
        logits = np.where(remove, -np.inf, logits)
    return logits


def sample_next(logits, temperature=1.0, top_k=None, top_p=None, rng=None):
    """Next token ids (B,) int64 from last-position logits (B, V).

    temperature == 0: argmax (greedy, no random draw). Otherwise logits / temperature, top-k, then
    top-p filtering, softmax, and inverse-CDF sampling with exactly one uniform draw per row from
    `rng` (a numpy Generator), so two callers with equal logits and generators draw equal tokens.
    """
    logits = np.asarray(logits, dtype=np.float64)
    if temperature == 0:
        return np.argmax(logits, axis=-1).astype(np.int64)
    logits = _filter_logits(logits / temperature, top_k, top_p)
    probs = softmax_(logits)                                  # (B, V), in place on the filtered copy
    cdf = np.cumsum(probs, axis=-1)                           # (B, V)
    u = rng.random((logits.shape[0], 1)) * cdf[:, -1:]        # (B, 1) in [0, total)
    # the first index whose cdf exceeds u; zero-probability tokens can never be picked
    return np.minimum((cdf <= u).sum(axis=-1), logits.shape[-1] - 1).astype(np.int64)


def generate(model, idx, max_new_tokens, temperature=1.0, top_k=None, top_p=None, stop_tokens=None, seed=None,
             use_cache=True):
    """The ids with up to max_new_tokens sampled ones appended (see GPT.generate)."""
    ids = as_ids(idx)
    one_d = ids.ndim == 1
    rows = ids.reshape(1, -1) if one_d else ids
    new = list(stream(model, rows, max_new_tokens, temperature=temperature, top_k=top_k, top_p=top_p,
                      stop_tokens=stop_tokens, seed=seed, use_cache=use_cache))
    out = np.concatenate([rows] + [t[:, None] for t in new], axis=1) if new else rows.copy()
    return out[0] if one_d else out


def stream(model, idx, max_new_tokens, temperature=1.0, top_k=None, top_p=None, stop_tokens=None, seed=None,
           use_cache=True):
    """Yield the new tokens one step at a time (see GPT.stream)."""
    ids = as_ids(idx)
    if ids.ndim == 1:
        ids = ids.reshape(1, -1)
    if ids.ndim != 2 or ids.shape[1] == 0:
        raise ValueError(f"stream/generate: idx must be (B, T) with T >= 1, got shape {ids.shape}")
    max_new_tokens = check(_py_int(max_new_tokens), "generate: max_new_tokens", int, low=0)
    temperature = check(temperature, "generate: temperature", float, low=0.0)
    top_k = check(_py_int(top_k), "generate: top_k", int, low=1, none_ok=True)
    top_p = check(top_p, "generate: top_p", float, low=0.0, high=1.0, none_ok=True)
    if top_p == 0.0:
        raise ConfigError("generate: top_p must be in (0, 1], got 0.0")
    V = model.config.vocab_size
    if ids.size and (ids.min() < 0 or ids.max() >= V):
        raise ValueError(f"stream/generate: token ids must be in [0, {V}), got min {ids.min()}, max {ids.max()}")
    if stop_tokens is None:
        stops = np.zeros(0, dtype=np.int64)
    else:
        stops = np.atleast_1d(np.asarray(stop_tokens, dtype=np.int64))
    return _stream(model, ids.copy(), max_new_tokens, temperature, top_k, top_p, stops, seed, use_cache)


def _stream(model, ids, max_new_tokens, temperature, top_k, top_p, stops, seed, use_cache):
    rng = np.random.default_rng(seed) if seed is not None else default_generator()
    bs = model.config.block_size
    B = ids.shape[0]
    was_training = model.training
    model.eval()
    try:
        capacity = min(bs, ids.shape[1] + max_new_tokens)   # only the positions this call can fill
        cache = KVCache(model.config, B, dtype=model.lm_head.weight.array.dtype, capacity=capacity) \
            if use_cache and max_new_tokens > 0 else None
        done = np.zeros(B, dtype=bool)
        fill = np.zeros(B, dtype=np.int64)   # the stop token a finished row repeats
        for _ in range(max_new_tokens):
            L = ids.shape[1]
            w0 = max(0, L - bs)              # the context is ids[:, w0:L]
            if cache is None:
                with no_grad():
                    logits, _ = model(ids[:, w0:], last_only=True)
                logits = logits.array[:, -1, :]                               # (B, V)
            elif cache.start == w0 and cache.length == L - w0 - 1:
                logits = model(ids[:, L - 1:], last_only=True, cache=cache)[0][:, -1, :]  # one new position
            else:                            # first step, or the window slid: (re)build the cache
                cache.reset(start=w0)
                logits = model(ids[:, w0:], last_only=True, cache=cache)[0][:, -1, :]
            if not np.isfinite(logits).all():
                raise NanoframeError("generate: the model produced NaN or inf logits (are its weights finite and "
                                     "of a sane size?)")
            tok = sample_next(logits, temperature, top_k, top_p, rng)        # (B,)
            tok = np.where(done, fill, tok)
            if stops.size:
                hit = ~done & np.isin(tok, stops)
                fill = np.where(hit, tok, fill)
                done |= hit
            ids = np.concatenate([ids, tok[:, None]], axis=1)
            yield tok
            if stops.size and done.all():
                return
    finally:
        model.train(was_training)
