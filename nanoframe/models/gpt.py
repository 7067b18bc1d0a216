"""GPT: a GPT-2 style decoder-only transformer, after karpathy/nanoGPT's model.py.

Classes in dependency order: GPTConfig, CausalSelfAttention, MLP, Block, KVCache, GPT.
Parameter names follow GPT-2 checkpoints (transformer.wte.weight, transformer.h.0.attn.c_attn.weight,
..., lm_head.weight), so Hugging Face GPT-2 weights map key by key (their Conv1D weights are stored
(in, out) and need a transpose).

Shape letters: B batch, T time, C channels (n_embd), V vocab, nh heads, hs head size (C // nh).

Generation (`GPT.generate` / `GPT.stream`) runs under no_grad in eval mode and, by default, with a
key/value cache (`KVCache`): each new token costs one position instead of a full forward. The
cached path reproduces the uncached one exactly (same crop-to-block_size context, same positions,
same sampling code and random draws), see `GPT.stream`.
"""
import dataclasses
import math
from dataclasses import dataclass

import numpy as np

import nanoframe.functional as F
from nanoframe import nn
from nanoframe.autograd import no_grad
from nanoframe.errors import ConfigError, bounded
from nanoframe.schema import MAX_VOCAB, check, option
from nanoframe.random import default_generator
from nanoframe.tensor import Tensor


# Upper bounds far above any model a CPU trains, so that a config read from a file can never ask
# for an allocation (or a loop) without end.
_SIZE_LIMITS = {"vocab_size": MAX_VOCAB, "block_size": 1 << 20, "n_layer": 4096, "n_head": 4096, "n_embd": 1 << 16}


@dataclass
class GPTConfig:
    """Hyper-parameters of a GPT. Defaults: nanoGPT's small character-level Shakespeare model."""

    vocab_size: int = option(65, "V: number of token ids (GPT-2: 50257, often padded to 50304)")
    block_size: int = option(256, "maximum context length T (number of learned positions in wpe)")
    n_layer: int = option(6, "L: number of transformer blocks")
    n_head: int = option(6, "nh: attention heads per block; n_embd must be divisible by it")
    n_embd: int = option(384, "C: width of the residual stream; head size hs = C // nh")
    dropout: float = option(0.0, "dropout probability on embeddings, attention weights and residual branches")
    bias: bool = option(True, "biases in Linear and LayerNorm layers (True like GPT-2; False is a bit faster/better)")

    def __post_init__(self):
        for name, high in _SIZE_LIMITS.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
                raise ConfigError(f"GPTConfig.{name} must be a positive int, got {bounded(repr(value), 80)}")
            if value > high:
                raise ConfigError(f"GPTConfig.{name} must be <= {high:,}, got {value:,}")
            setattr(self, name, int(value))
        if self.n_embd % self.n_head != 0:
            raise ConfigError(f"GPTConfig.n_embd ({self.n_embd}) must be divisible by GPTConfig.n_head ({self.n_head})")
        d = self.dropout
        if isinstance(d, bool) or not isinstance(d, (int, float, np.floating, np.integer)) or not 0.0 <= d < 1.0:
            raise ConfigError(f"GPTConfig.dropout must be a number with 0 <= dropout < 1, got {bounded(repr(d), 80)}")
        self.dropout = float(d)
        if not isinstance(self.bias, (bool, np.bool_)):
            raise ConfigError(f"GPTConfig.bias must be a bool, got {bounded(repr(self.bias), 80)}")
        self.bias = bool(self.bias)

    def to_dict(self):
        """Plain dict of the fields (JSON-serialisable)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d):
        """Inverse of `to_dict`. Missing keys take their defaults; unknown keys raise ValueError."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ConfigError(f"GPTConfig: unknown key(s) {bounded(unknown, 100)}; valid keys are {sorted(known)}")
        return cls(**d)


def linear_shapes(config):
    """name -> (out, in) of every Linear layer GPT(config) has, without building it."""
    C = config.n_embd
    shapes = {}
    for i in range(config.n_layer):
        h = f"transformer.h.{i}."
        shapes.update({h + "attn.c_attn": (3 * C, C), h + "attn.c_proj": (C, C),
                       h + "mlp.c_fc": (4 * C, C), h + "mlp.c_proj": (C, 4 * C)})
    shapes["lm_head"] = (config.vocab_size, C)
    return shapes


def parameter_shapes(config):
    """name -> shape of every parameter GPT(config) has, without building it (the tied lm_head
    listed once, as transformer.wte.weight). A loader checks a file's shapes against this before
    it allocates a model from a config read from disk; a test keeps it equal to the model's."""
    C, bias = config.n_embd, config.bias
    shapes = {"transformer.wte.weight": (config.vocab_size, C), "transformer.wpe.weight": (config.block_size, C)}
    norms = [f"transformer.h.{i}.{ln}" for i in range(config.n_layer) for ln in ("ln_1", "ln_2")]
    for name in norms + ["transformer.ln_f"]:
        shapes[name + ".weight"] = (C,)
        if bias:
            shapes[name + ".bias"] = (C,)
    for name, (out, inp) in linear_shapes(config).items():
        if name != "lm_head":
            shapes[name + ".weight"] = (out, inp)
            if bias:
                shapes[name + ".bias"] = (out,)
    return shapes


# ---- inference kernels ---------------------------------------------------------------------------
# The cached generation path runs on plain ndarrays: per token it is ~70 small ops, and skipping
# Tensor/graph/module overhead took batch-1 decoding from 260 to 310 tokens/s (bench_generate.py).
_SQRT_2_PI = math.sqrt(2.0 / math.pi)


def _ln_np(x, ln):
    """layer_norm of an ndarray with a LayerNorm module's weight/bias (inference only)."""
    xc = x - x.mean(axis=-1, keepdims=True)
    var = np.einsum("...c,...c->...", xc, xc)[..., None]
    var *= 1.0 / x.shape[-1]
    var += ln.eps
    xc *= 1.0 / np.sqrt(var)
    if ln.weight is not None:
        xc *= ln.weight.array
    if ln.bias is not None:
        xc += ln.bias.array
    return xc


def _linear_np(x, lin):
    """x (..., in) @ W^T + b on ndarrays: one GEMM, or an einsum GEMV for a single position
    (einsum streams W about twice as fast as OpenBLAS's one-thread gemv here)."""
    if type(lin) is not nn.Linear:                # e.g. a LoRALinear: let the module compute it
        with no_grad():
            return lin(Tensor(x)).array
    x2 = x.reshape(-1, x.shape[-1])
    w = lin.weight.array
    y = np.einsum("oi,i->o", w, x2[0])[None, :] if x2.shape[0] == 1 else x2 @ w.T
    if lin.bias is not None:
        y += lin.bias.array
    return y.reshape(*x.shape[:-1], y.shape[-1])


def _gelu_tanh_np(x):
    """0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), in place on an ndarray the caller owns."""
    u = x * x
    u *= 0.044715 * _SQRT_2_PI
    u += _SQRT_2_PI
    u *= x
    np.tanh(u, out=u)
    u += 1.0
    u *= 0.5
    x *= u
    return x


class CausalSelfAttention(nn.Module):
    """Multi-head masked self-attention, all heads batched in one (B, nh, T, hs) attention call."""

    def __init__(self, config):
        super().__init__()
        C = config.n_embd
        self.n_head = config.n_head
        self.n_embd = C
        self.dropout = config.dropout
        self.c_attn = nn.Linear(C, 3 * C, bias=config.bias)  # key, query, value projections for all heads
        self.c_proj = nn.Linear(C, C, bias=config.bias)      # output projection (a residual projection)
        self.resid_dropout = nn.Dropout(config.dropout)

    def forward(self, x):
        qkv = self.c_attn(x)                                 # (B, T, 3C): q, k, v side by side
        # causal softmax(q k^T / sqrt(hs)) v over all heads in one fused op: it splits and merges
        # the heads itself and returns a single (B, T, 3C) gradient
        y = F.causal_self_attention(qkv, self.n_head, dropout_p=self.dropout if self.training else 0.0)
        return self.resid_dropout(self.c_proj(y))            # (B, T, C)

    def forward_cached(self, x, k_cache, v_cache, t0):
        """Inference-only attention for new positions t0 .. t0+Tn-1 given cached keys/values.

        x: (B, Tn, C) ndarray. k_cache, v_cache: preallocated (B, nh, block_size, hs) arrays whose
        first t0 positions hold earlier keys/values; this call writes positions t0 .. t0+Tn-1.
        Returns a (B, Tn, C) ndarray.
        """
        B, Tn, C = x.shape
        nh, hs = self.n_head, C // self.n_head
        t1 = t0 + Tn
        qkv = _linear_np(x, self.c_attn).reshape(B, Tn, 3, nh, hs)
        q = qkv[:, :, 0].transpose(0, 2, 1, 3)                     # (B, nh, Tn, hs) views
        k_cache[:, :, t0:t1] = qkv[:, :, 1].transpose(0, 2, 1, 3)
        v_cache[:, :, t0:t1] = qkv[:, :, 2].transpose(0, 2, 1, 3)
        att = q @ k_cache[:, :, :t1].swapaxes(-1, -2)               # (B, nh, Tn, t1)
        att *= 1.0 / math.sqrt(hs)
        if Tn > 1:  # query at absolute position t0+i sees keys 0 .. t0+i
            att[..., t0:] += np.triu(np.full((Tn, Tn), -np.inf, dtype=att.dtype), k=1)
        att -= att.max(axis=-1, keepdims=True)
        np.exp(att, out=att)
        att *= 1.0 / att.sum(axis=-1, keepdims=True)
        y = np.empty((B, Tn, C), dtype=x.dtype)                     # heads written side by side
        np.matmul(att, v_cache[:, :, :t1], out=y.reshape(B, Tn, nh, hs).transpose(0, 2, 1, 3))
        return _linear_np(y, self.c_proj)                          # resid dropout is off in eval


class MLP(nn.Module):
    """Position-wise feed-forward: Linear(C, 4C), tanh-GELU, Linear(4C, C), dropout."""

    def __init__(self, config):
        super().__init__()
        C = config.n_embd
        self.c_fc = nn.Linear(C, 4 * C, bias=config.bias)
        self.c_proj = nn.Linear(4 * C, C, bias=config.bias)  # a residual projection
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x):
        x = self.c_fc(x)                       # (B, T, 4C)
        x = F.gelu(x, approximate="tanh")      # GPT-2 uses the tanh approximation
        x = self.c_proj(x)                     # (B, T, C)
        return self.dropout(x)


class Block(nn.Module):
    """Pre-LayerNorm transformer block: x + attn(ln_1(x)), then x + mlp(ln_2(x))."""

    def __init__(self, config):
        super().__init__()
        self.ln_1 = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.attn = CausalSelfAttention(config)
        self.ln_2 = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.mlp = MLP(config)

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))        # (B, T, C)
        x = x + self.mlp(self.ln_2(x))         # (B, T, C)
        return x

    def forward_cached(self, x, k_cache, v_cache, t0):
        """Inference-only forward of new positions t0.. given this layer's cache, on ndarrays."""
        x = x + self.attn.forward_cached(_ln_np(x, self.ln_1), k_cache, v_cache, t0)
        h = _gelu_tanh_np(_linear_np(_ln_np(x, self.ln_2), self.mlp.c_fc))
        x += _linear_np(h, self.mlp.c_proj)                        # x is owned here
        return x


class KVCache:
    """Per-layer keys and values for generation, preallocated to block_size positions.

    k[l], v[l]: numpy arrays (B, nh, block_size, hs); the first `length` positions are filled and
    hold the tokens idx[:, start : start + length] of the sequence being generated, at positions
    0 .. length-1.
    """

    def __init__(self, config, batch_size, dtype=np.float32):
        nh, hs = config.n_head, config.n_embd // config.n_head
        shape = (batch_size, nh, config.block_size, hs)
        self.k = [np.zeros(shape, dtype=dtype) for _ in range(config.n_layer)]
        self.v = [np.zeros(shape, dtype=dtype) for _ in range(config.n_layer)]
        self.block_size = config.block_size
        self.batch_size = batch_size
        self.start = 0    # index in the full sequence of the token at cache position 0
        self.length = 0   # number of filled positions

    def reset(self, start=0):
        """Forget every cached position (the arrays are reused, not reallocated)."""
        self.start, self.length = start, 0


def _as_ids(idx, name="idx"):
    """An int64 numpy array from an int array, list or Tensor."""
    a = idx.array if isinstance(idx, Tensor) else np.asarray(idx)
    if a.dtype.kind not in "iu":
        raise ValueError(f"{name} must hold integer token ids, got dtype {a.dtype}")
    return a.astype(np.int64, copy=False)


def _py_int(value):
    """NumPy integers count as ints for the sampling options (floats and bools do not)."""
    return int(value) if isinstance(value, np.integer) else value


def _softmax64(logits):
    """Row-wise softmax in float64 (-inf entries get probability 0)."""
    z = logits - logits.max(axis=-1, keepdims=True)
    p = np.exp(z)
    p /= p.sum(axis=-1, keepdims=True)
    return p


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
        cum = np.cumsum(_softmax64(sorted_logits), axis=-1)
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
    probs = _softmax64(logits)                                # (B, V)
    cdf = np.cumsum(probs, axis=-1)                           # (B, V)
    u = rng.random((logits.shape[0], 1)) * cdf[:, -1:]        # (B, 1) in [0, total)
    # the first index whose cdf exceeds u; zero-probability tokens can never be picked
    return np.minimum((cdf <= u).sum(axis=-1), logits.shape[-1] - 1).astype(np.int64)


class GPT(nn.Module):
    """The GPT language model: token + position embeddings, n_layer Blocks, final LayerNorm, and an
    lm_head tied to the token embedding (one Parameter, listed once as transformer.wte.weight)."""

    def __init__(self, config):
        super().__init__()
        if not isinstance(config, GPTConfig):
            raise TypeError(f"GPT(config): expected a GPTConfig, got {type(config).__name__}")
        self.config = config
        self.transformer = nn.ModuleDict(dict(
            wte=nn.Embedding(config.vocab_size, config.n_embd),   # token embedding (V, C)
            wpe=nn.Embedding(config.block_size, config.n_embd),   # position embedding (block_size, C)
            drop=nn.Dropout(config.dropout),
            h=nn.ModuleList([Block(config) for _ in range(config.n_layer)]),
            ln_f=nn.LayerNorm(config.n_embd, bias=config.bias),
        ))
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)  # (V, C) weight
        # weight tying (https://paperswithcode.com/method/weight-tying): one Parameter, two uses
        self.transformer.wte.weight = self.lm_head.weight
        self._init_weights()

    def _init_weights(self):
        """GPT-2 init from the library generator: N(0, 0.02) for Linear/Embedding weights, zeros for
        biases, N(0, 0.02/sqrt(2*n_layer)) for the residual projections (c_proj.weight); LayerNorm
        weights stay 1."""
        resid_std = 0.02 / math.sqrt(2 * self.config.n_layer)
        norm_ids = {id(m.weight) for m in self.modules() if isinstance(m, nn.LayerNorm)}
        for name, p in self.named_parameters():
            if name.endswith("c_proj.weight"):
                nn.init.normal_(p, mean=0.0, std=resid_std)
            elif name.endswith(".bias"):
                nn.init.zeros_(p)
            elif id(p) not in norm_ids:
                nn.init.normal_(p, mean=0.0, std=0.02)

    # ---- Hugging Face GPT-2 folders (see nanoframe/models/hf.py) ------------------------------------------
    @classmethod
    def from_hf(cls, folder):
        """A GPT with the weights of a Hugging Face GPT-2 folder (config.json + model.safetensors)."""
        from nanoframe.models.hf import load_hf

        return load_hf(folder)

    def to_hf(self, folder, eot_id=None):
        """Write config.json + model.safetensors that transformers' GPT2LMHeadModel.from_pretrained opens."""
        from nanoframe.models.hf import save_hf

        return save_hf(self, folder, eot_id)

    # ---- counting -------------------------------------------------------------------------------------
    def num_parameters(self, non_embedding=True, trainable_only=False):
        """Number of parameters (the tied wte/lm_head weight counted once). With non_embedding the
        position embedding is subtracted, as in nanoGPT (the token embedding is kept: it is also
        the lm_head weight)."""
        n = sum(p.array.size for p in self.parameters() if p.requires_grad or not trainable_only)
        if non_embedding:
            n -= self.transformer.wpe.weight.array.size
        return n

    def estimate_flops_per_token(self, seq_len=None):
        """Training FLOPs (forward + backward) per token, PaLM appendix B / nanoGPT:
        6 N (N = non-embedding parameters) + 12 L T C for attention scores and values (T = seq_len,
        default block_size)."""
        cfg = self.config
        T = cfg.block_size if seq_len is None else int(seq_len)
        return 6 * self.num_parameters(non_embedding=True) + 12 * cfg.n_layer * T * cfg.n_embd

    def estimate_mfu(self, tokens_per_sec, peak_flops, seq_len=None):
        """Model FLOPs utilisation: achieved FLOP/s (tokens_per_sec x FLOPs per token) / peak_flops."""
        if peak_flops <= 0:
            raise ValueError(f"estimate_mfu: peak_flops must be > 0, got {peak_flops}")
        return self.estimate_flops_per_token(seq_len) * tokens_per_sec / peak_flops

    # ---- forward ---------------------------------------------------------------------------------------
    def forward(self, idx, targets=None, ignore_index=-100, last_only=False):
        """idx: int ids (B, T) (array, list or Tensor), T <= block_size.

        Returns (logits, loss): logits (B, T, V) Tensor, or (B, 1, V) for the last position only with
        last_only=True (the inference shortcut; not allowed with targets). loss is the mean
        cross-entropy over all positions whose target != ignore_index (a scalar Tensor), or None
        without targets.
        """
        ids = _as_ids(idx)
        if ids.ndim != 2:
            raise ValueError(f"GPT.forward: idx must be 2-D (B, T), got shape {ids.shape}")
        B, T = ids.shape
        if T > self.config.block_size:
            raise ValueError(
                f"GPT.forward: cannot forward a sequence of length T={T}, "
                f"block_size is only {self.config.block_size}"
            )
        if last_only and targets is not None:
            raise ValueError("GPT.forward: last_only=True cannot be combined with targets")
        pos = np.arange(T, dtype=np.int64)                   # (T,)
        tok_emb = self.transformer.wte(ids)                   # (B, T, C)
        pos_emb = self.transformer.wpe(pos)                   # (T, C)
        x = self.transformer.drop(tok_emb + pos_emb)          # (B, T, C)
        for block in self.transformer.h:
            x = block(x)                                      # (B, T, C)
        x = self.transformer.ln_f(x)                          # (B, T, C)
        if last_only:
            x = x[:, -1:, :]                                  # (B, 1, C)
        logits = self.lm_head(x)                              # (B, T, V)
        loss = None
        if targets is not None:
            tgt = _as_ids(targets, "targets")
            if tgt.shape != (B, T):
                raise ValueError(f"GPT.forward: targets shape {tgt.shape} must equal idx shape {(B, T)}")
            loss = F.cross_entropy(logits.reshape(B * T, -1), tgt.reshape(-1), ignore_index=ignore_index)  # (B*T, V) rows
        return logits, loss

    def forward_cached(self, idx, cache, last_only=False):
        """Inference forward of new tokens idx (B, Tn) appended at cache positions
        cache.length .. cache.length+Tn-1 (must fit in block_size); updates the cache.

        Returns logits (B, Tn, V) as a numpy array, or (B, 1, V) for the last position only with
        last_only=True. NumPy only (no Tensor, no graph): inference in eval mode, no dropout.
        """
        ids = _as_ids(idx)
        B, Tn = ids.shape
        t0 = cache.length
        if t0 + Tn > self.config.block_size:
            raise ValueError(
                f"GPT.forward_cached: {t0} cached + {Tn} new positions exceed block_size {self.config.block_size}"
            )
        if B != cache.batch_size:
            raise ValueError(f"GPT.forward_cached: idx batch {B} != cache batch {cache.batch_size}")
        tr = self.transformer
        x = tr.wte.weight.array[ids] + tr.wpe.weight.array[t0:t0 + Tn]   # (B, Tn, C)
        for block, k, v in zip(tr.h, cache.k, cache.v):
            x = block.forward_cached(x, k, v, t0)                      # (B, Tn, C)
        if last_only:
            x = x[:, -1:]                                              # only the next token's logits
        logits = _linear_np(_ln_np(x, tr.ln_f), self.lm_head)          # (B, Tn or 1, V)
        cache.length = t0 + Tn
        return logits

    # ---- optimizer -----------------------------------------------------------------------------------------
    def configure_optimizer(self, weight_decay, lr, betas=(0.9, 0.95), eps=1e-8):
        """AdamW with two groups: every parameter with ndim >= 2 (matmul weights, embeddings) decays;
        biases and LayerNorm weights do not."""
        from nanoframe import optim

        params = [p for p in self.parameters() if p.requires_grad]
        decay = [p for p in params if p.ndim >= 2]
        no_decay = [p for p in params if p.ndim < 2]
        groups = [
            {"params": decay, "weight_decay": weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ]
        return optim.AdamW(groups, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)

    # ---- generation -------------------------------------------------------------------------------------------
    def generate(self, idx, max_new_tokens, temperature=1.0, top_k=None, top_p=None,
                 stop_tokens=None, seed=None, use_cache=True):
        """Sample max_new_tokens continuations of idx; returns the ids with the new ones appended.

        idx: int ids (B, T) or (T,) (array, list or Tensor); the result is an int64 numpy array
        (B, T + n) (or (T + n,) for 1-D input), n <= max_new_tokens (fewer when every row stopped).
        Arguments as in `stream`.
        """
        ids = _as_ids(idx)
        one_d = ids.ndim == 1
        rows = ids.reshape(1, -1) if one_d else ids
        new = list(self.stream(rows, max_new_tokens, temperature=temperature, top_k=top_k, top_p=top_p,
                               stop_tokens=stop_tokens, seed=seed, use_cache=use_cache))
        out = np.concatenate([rows] + [t[:, None] for t in new], axis=1) if new else rows.copy()
        return out[0] if one_d else out

    def stream(self, idx, max_new_tokens, temperature=1.0, top_k=None, top_p=None,
               stop_tokens=None, seed=None, use_cache=True):
        """Yield the new tokens one step at a time: each item is an int64 array (B,) (any batch size;
        for batch 1 use int(tok[0])).

        - The context is the last block_size tokens, at positions 0..block_size-1 (as nanoGPT).
        - temperature == 0: greedy argmax. Else logits / temperature, then top_k, then top_p
          (nucleus) filtering as in Hugging Face, and one uniform draw per row per step from
          np.random.default_rng(seed) if seed is given, else from the library generator
          (nanoframe.manual_seed).
        - stop_tokens (an int or iterable of ints): a row that produced one is finished and its later
          positions repeat that stop token; the stream ends once every row has finished (for batch 1
          it simply stops after the stop token).
        - use_cache=True keeps per-layer K, V (KVCache), so each step forwards one position. Once the
          sequence exceeds block_size the context window slides, every position shifts, and the cache
          is rebuilt from the last block_size tokens each step, which keeps the tokens identical to
          use_cache=False.
        - Runs under no_grad in eval mode; the previous train/eval mode is restored when the stream
          ends (or is closed).
        """
        ids = _as_ids(idx)
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
        V = self.config.vocab_size
        if ids.size and (ids.min() < 0 or ids.max() >= V):
            raise ValueError(f"stream/generate: token ids must be in [0, {V}), got min {ids.min()}, max {ids.max()}")
        if stop_tokens is None:
            stops = np.zeros(0, dtype=np.int64)
        else:
            stops = np.atleast_1d(np.asarray(stop_tokens, dtype=np.int64))
        return self._stream(ids.copy(), max_new_tokens, temperature, top_k, top_p, stops, seed, use_cache)

    def _stream(self, ids, max_new_tokens, temperature, top_k, top_p, stops, seed, use_cache):
        rng = np.random.default_rng(seed) if seed is not None else default_generator()
        bs = self.config.block_size
        B = ids.shape[0]
        was_training = self.training
        self.eval()
        try:
            cache = KVCache(self.config, B, dtype=self.lm_head.weight.dtype) if use_cache else None
            done = np.zeros(B, dtype=bool)
            fill = np.zeros(B, dtype=np.int64)   # the stop token a finished row repeats
            for _ in range(max_new_tokens):
                L = ids.shape[1]
                w0 = max(0, L - bs)              # the context is ids[:, w0:L]
                if cache is None:
                    with no_grad():
                        logits, _ = self.forward(ids[:, w0:], last_only=True)
                    logits = logits.array[:, -1, :]                               # (B, V)
                elif cache.start == w0 and cache.length == L - w0 - 1:
                    logits = self.forward_cached(ids[:, L - 1:], cache, last_only=True)[:, -1, :]  # one new position
                else:                            # first step, or the window slid: (re)build the cache
                    cache.reset(start=w0)
                    logits = self.forward_cached(ids[:, w0:], cache, last_only=True)[:, -1, :]
                if not np.isfinite(logits).all():
                    raise ValueError("generate: the model produced NaN or inf logits (are its weights finite?)")
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
            self.train(was_training)
