"""GPT: a GPT-2 style decoder-only transformer, after karpathy/nanoGPT's model.py.

Classes in dependency order: GPTConfig, CausalSelfAttention, MLP, Block, GPT.
Parameter names follow GPT-2 checkpoints (transformer.wte.weight, transformer.h.0.attn.c_attn.weight,
..., lm_head.weight), so Hugging Face GPT-2 weights map key by key (their Conv1D weights are stored
(in, out) and need a transpose).

Shape letters: B batch, T time, C channels (n_embd), V vocab, nh heads, hs head size (C // nh).

The model is written once. Training calls it on Tensors (every op records its graph); cached
decoding (models/generate.py) calls the same forward with a KV cache on plain ndarrays: a layer
called on an ndarray runs the kernel of its own op (the same math, no graph, no dropout), so a
token costs ~70 NumPy calls and nothing else.
"""
import dataclasses
import math
from dataclasses import dataclass

import numpy as np

import nanoframe.functional as F
from nanoframe import nn
from nanoframe.autograd import array_inference
from nanoframe.errors import ConfigError, bounded
from nanoframe.ops.attention import cached_causal_attention
from nanoframe.ops.loss import IGNORE_INDEX
from nanoframe.schema import MAX_VOCAB, option
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


class CausalSelfAttention(nn.Module):
    """Multi-head masked self-attention, all heads in one fused op on the packed qkv projection."""

    def __init__(self, config):
        super().__init__()
        C = config.n_embd
        self.n_head = config.n_head
        self.n_embd = C
        self.dropout = config.dropout
        self.c_attn = nn.Linear(C, 3 * C, bias=config.bias)  # key, query, value projections for all heads
        self.c_proj = nn.Linear(C, C, bias=config.bias)      # output projection (a residual projection)
        self.resid_dropout = nn.Dropout(config.dropout)

    def forward(self, x, cache=None):
        """x (B, T, C) -> (B, T, C). With cache = (k_cache, v_cache, t0) (decoding on ndarrays),
        the new keys and values are written at positions t0.. and attention sees the earlier ones."""
        qkv = self.c_attn(x)                                 # (B, T, 3C): q, k, v side by side
        if cache is None:
            # causal softmax(q k^T / sqrt(hs)) v over all heads in one fused op: it splits and merges
            # the heads itself and returns a single (B, T, 3C) gradient
            y = F.causal_self_attention(qkv, self.n_head, dropout_p=self.dropout if self.training else 0.0)
        else:
            y = cached_causal_attention(qkv, *cache, self.n_head)
        return self.resid_dropout(self.c_proj(y))            # (B, T, C)


class MLP(nn.Module):
    """Position-wise feed-forward: Linear(C, 4C), tanh-GELU, Linear(4C, C), dropout."""

    def __init__(self, config):
        super().__init__()
        C = config.n_embd
        self.c_fc = nn.Linear(C, 4 * C, bias=config.bias)
        self.gelu = nn.GELU(approximate="tanh")             # GPT-2 uses the tanh approximation
        self.c_proj = nn.Linear(4 * C, C, bias=config.bias)  # a residual projection
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x):
        return self.dropout(self.c_proj(self.gelu(self.c_fc(x))))   # (B, T, 4C) inside, (B, T, C) out


class Block(nn.Module):
    """Pre-LayerNorm transformer block: x + attn(ln_1(x)), then x + mlp(ln_2(x))."""

    def __init__(self, config):
        super().__init__()
        self.ln_1 = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.attn = CausalSelfAttention(config)
        self.ln_2 = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.mlp = MLP(config)

    def forward(self, x, cache=None):
        x = x + self.attn(self.ln_1(x), cache)   # (B, T, C)
        return x + self.mlp(self.ln_2(x))        # (B, T, C)


def as_ids(idx, name="idx"):
    """An int64 numpy array from an int array, list or Tensor."""
    a = idx.array if isinstance(idx, Tensor) else np.asarray(idx)
    if a.dtype.kind not in "iu":
        raise ValueError(f"{name} must hold integer token ids, got dtype {a.dtype}")
    return a.astype(np.int64, copy=False)


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
    def forward(self, idx, targets=None, ignore_index=IGNORE_INDEX, last_only=False, cache=None):
        """idx: int ids (B, T) (array, list or Tensor), T <= block_size.

        Returns (logits, loss): logits (B, T, V) Tensor, or (B, 1, V) for the last position only with
        last_only=True (the inference shortcut; not allowed with targets). loss is the mean
        cross-entropy over all positions whose target != ignore_index (a scalar Tensor), or None
        without targets.

        With cache (a models.generate.KVCache), the tokens are appended at the cache's positions
        cache.length.. and the forward runs on ndarrays: logits come back as an ndarray, the cache
        is updated, and there is no graph (cached decoding; see models/generate.py).
        """
        ids = as_ids(idx)
        if ids.ndim != 2:
            raise ValueError(f"GPT.forward: idx must be 2-D (B, T), got shape {ids.shape}")
        B, T = ids.shape
        t0 = 0 if cache is None else cache.length
        if t0 + T > self.config.block_size:
            raise ValueError(f"GPT.forward: cannot forward {t0} cached + T={T} new positions, "
                             f"block_size is only {self.config.block_size}")
        if last_only and targets is not None:
            raise ValueError("GPT.forward: last_only=True cannot be combined with targets")
        if cache is not None and (targets is not None or B != cache.batch_size):
            raise ValueError(f"GPT.forward: a cache of batch {cache.batch_size} decodes without targets; "
                             f"got idx of batch {B}" + (" and targets" if targets is not None else ""))
        pos = np.arange(t0, t0 + T, dtype=np.int64)          # (T,)
        tr = self.transformer
        if cache is None:
            x = tr.drop(tr.wte(ids) + tr.wpe(pos))           # (B, T, C) Tensors
            logits = self._layers(x, None, last_only)
        else:
            x = tr.wte.weight.array[ids] + tr.wpe.weight.array[pos]   # (B, T, C) ndarray: decoding
            with array_inference():
                logits = self._layers(x, cache, last_only)
            cache.length = t0 + T
        loss = None
        if targets is not None:
            tgt = as_ids(targets, "targets")
            if tgt.shape != (B, T):
                raise ValueError(f"GPT.forward: targets shape {tgt.shape} must equal idx shape {(B, T)}")
            # cross_entropy takes torch's (N, C) layout: the (B*T, V) rows and their (B*T,) targets
            loss = F.cross_entropy(logits.reshape(B * T, -1), tgt.reshape(B * T), ignore_index=ignore_index)
        return logits, loss

    def _layers(self, x, cache, last_only):
        """The blocks, the final LayerNorm and the head: (B, T, C) -> logits (B, T or 1, V)."""
        for i, block in enumerate(self.transformer.h):
            x = block(x, None if cache is None else cache.layer(i))   # (B, T, C)
        if last_only:
            x = x[:, -1:, :]                                  # (B, 1, C): only the next token's logits
        return self.lm_head(self.transformer.ln_f(x))         # (B, T, V)

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

    # ---- generation (models/generate.py) -----------------------------------------------------------------
    def generate(self, idx, max_new_tokens, temperature=1.0, top_k=None, top_p=None,
                 stop_tokens=None, seed=None, use_cache=True):
        """Sample max_new_tokens continuations of idx; returns the ids with the new ones appended.

        idx: int ids (B, T) or (T,) (array, list or Tensor); the result is an int64 numpy array
        (B, T + n) (or (T + n,) for 1-D input), n <= max_new_tokens (fewer when every row stopped).
        Arguments as in `stream`.
        """
        from nanoframe.models.generate import generate

        return generate(self, idx, max_new_tokens, temperature=temperature, top_k=top_k, top_p=top_p,
                        stop_tokens=stop_tokens, seed=seed, use_cache=use_cache)

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
        from nanoframe.models.generate import stream

        return stream(self, idx, max_new_tokens, temperature=temperature, top_k=top_k, top_p=top_p,
                      stop_tokens=stop_tokens, seed=seed, use_cache=use_cache)
