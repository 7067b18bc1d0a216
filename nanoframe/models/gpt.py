"""GPT: one configurable decoder-only transformer, GPT-2 (nanoGPT's model.py) and Llama style.

GPTConfig chooses each piece; its defaults are GPT-2 exactly, and one forward serves both:

    piece        GPT-2 (the defaults)                 Llama / Qwen2 / SmolLM2 / TinyLlama
    norm         LayerNorm (eps 1e-5, bias)           RMSNorm (norm_eps 1e-5 or 1e-6)
    MLP          c_fc, tanh-GELU, c_proj (4C)         down_proj(silu(gate_proj x) * up_proj x)
    positions    learned table wpe                    rotary (RoPE, rope_theta) on q and k
    attention    n_head K/V heads                     n_kv_head < n_head (grouped-query)
    projections  packed c_attn (q|k|v), c_proj        split q_proj, k_proj, v_proj, o_proj
    biases       everywhere (bias)                    none; Qwen2 on q, k, v (qkv_bias)
    lm_head      tied to wte                          tied (SmolLM2) or separate (TinyLlama)

Parameter names: transformer.wte.weight, transformer.h.N.{ln_1, attn.*, ln_2, mlp.*}, transformer.ln_f,
lm_head.weight; each projection is named after its layout (GPT-2's c_attn/c_proj/c_fc, or
Llama's q_proj/k_proj/v_proj/o_proj/gate_proj/up_proj/down_proj), so Hugging Face GPT-2, Llama and
Qwen2 weights map name by name (models/hf.py) and LoRA targets Llama's projection names.

Shape letters: B batch, T time, C channels (n_embd), V vocab, nh heads, nkv K/V heads, hs head
size (C // nh), H the MLP's hidden size.

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
from nanoframe.autograd import array_inference, arrays_in_layers
from nanoframe.errors import ConfigError, bounded
from nanoframe.ops.attention import cached_causal_attention, split_packed
from nanoframe.ops.loss import IGNORE_INDEX
from nanoframe.ops.swiglu import swiglu_forward
from nanoframe.schema import MAX_VOCAB, option
from nanoframe.tensor import Tensor


# Upper bounds far above any model a CPU trains, so that a config read from a file can never ask
# for an allocation (or a loop) without end.
_SIZE_LIMITS = {"vocab_size": MAX_VOCAB, "block_size": 1 << 20, "n_layer": 4096, "n_head": 4096, "n_embd": 1 << 16}
_CHOICES = {"norm": ("layernorm", "rmsnorm"), "mlp": ("gelu", "swiglu"), "positions": ("learned", "rope"),
            "qkv_proj": ("packed", "split")}
_FLAGS = ("bias", "qkv_bias", "attention_bias", "mlp_bias", "tie_word_embeddings")


@dataclass
class GPTConfig:
    """Hyper-parameters of a GPT. Defaults: nanoGPT's small character-level Shakespeare model, GPT-2's
    architecture; every field after `bias` was added for Llama-style models and defaults to GPT-2."""

    vocab_size: int = option(65, "V: number of token ids (GPT-2: 50257, often padded to 50304)")
    block_size: int = option(256, "maximum context length T (the rows of a learned wpe table)")
    n_layer: int = option(6, "L: number of transformer blocks")
    n_head: int = option(6, "nh: attention heads per block; n_embd must be divisible by it")
    n_embd: int = option(384, "C: width of the residual stream; head size hs = C // nh")
    dropout: float = option(0.0, "dropout probability on embeddings, attention weights and residual branches")
    bias: bool = option(True, "biases in Linear and LayerNorm layers (True like GPT-2; False is a bit faster/better; "
                              "qkv_bias, attention_bias and mlp_bias add them back on single projections)")
    n_kv_head: int = option(0, "nkv: key/value heads; fewer than n_head (a divisor) is grouped-query attention, "
                               "1 multi-query; 0 means n_head")
    positions: str = option("learned", "'learned' (a wpe table of block_size rows, GPT-2) or 'rope' (rotary "
                                       "q and k, Llama)")
    rope_theta: float = option(10000.0, "RoPE base (Llama 2: 1e4, SmolLM2: 1e5, Llama 3: 5e5, Qwen2: 1e6)")
    norm: str = option("layernorm", "'layernorm' (GPT-2) or 'rmsnorm' (Llama; it has no bias)")
    norm_eps: float = option(1e-5, "epsilon of every norm (GPT-2: 1e-5; Llama: 1e-5 or 1e-6)")
    mlp: str = option("gelu", "'gelu' (c_fc, tanh-GELU, c_proj: GPT-2) or 'swiglu' "
                              "(down_proj(silu(gate_proj x) * up_proj x): Llama)")
    mlp_hidden: int = option(0, "H: the MLP's hidden size; 0 means 4 * n_embd for gelu, and for swiglu "
                                "8/3 * n_embd rounded up to a multiple of 64 (about the same parameters)")
    qkv_proj: str = option("packed", "'packed' (one c_attn for q, k, v, and c_proj: GPT-2's names) or 'split' "
                                     "(q_proj, k_proj, v_proj, o_proj: Llama's names; LoRA per projection)")
    qkv_bias: bool = option(False, "biases on the q, k, v projections even when bias is False (Qwen2)")
    attention_bias: bool = option(False, "biases on q, k, v and the attention output even when bias is False "
                                         "(Hugging Face Llama's attention_bias)")
    mlp_bias: bool = option(False, "biases on the MLP projections even when bias is False (Llama's mlp_bias)")
    tie_word_embeddings: bool = option(True, "lm_head shares the token embedding's weight (GPT-2, SmolLM2); "
                                             "False: a separate lm_head.weight (TinyLlama)")

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
        for name in _FLAGS:
            if not isinstance(getattr(self, name), (bool, np.bool_)):
                raise ConfigError(f"GPTConfig.{name} must be a bool, got {bounded(repr(getattr(self, name)), 80)}")
            setattr(self, name, bool(getattr(self, name)))
        for name, choices in _CHOICES.items():
            if getattr(self, name) not in choices:
                raise ConfigError(f"GPTConfig.{name} must be one of {', '.join(map(repr, choices))}, "
                                  f"got {bounded(repr(getattr(self, name)), 80)}")
        for name, low, high in (("n_kv_head", 0, self.n_head), ("mlp_hidden", 0, 1 << 20)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not low <= value <= high:
                raise ConfigError(f"GPTConfig.{name} must be an int in [{low}, {high}], got {bounded(repr(value), 80)}")
            setattr(self, name, int(value))
        if self.n_head % self.kv_heads != 0:
            raise ConfigError(f"GPTConfig.n_head ({self.n_head}) must be a multiple of GPTConfig.n_kv_head "
                              f"({self.n_kv_head})")
        for name, high in (("rope_theta", 1e12), ("norm_eps", 1.0)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)) \
                    or not 0.0 < value <= high:
                raise ConfigError(f"GPTConfig.{name} must be a number in (0, {high:g}], got {bounded(repr(value), 80)}")
            setattr(self, name, float(value))
        if self.positions == "rope" and self.head_size % 2 != 0:
            raise ConfigError(f"GPTConfig: rotary positions need an even head size, n_embd / n_head = {self.head_size}")

    @property
    def kv_heads(self):
        """nkv: the number of key/value heads (n_kv_head, or n_head when it is 0)."""
        return self.n_kv_head or self.n_head

    @property
    def head_size(self):
        """hs = n_embd // n_head."""
        return self.n_embd // self.n_head

    @property
    def mlp_size(self):
        """H: mlp_hidden, or its default for the MLP kind (see the field's help)."""
        if self.mlp_hidden:
            return self.mlp_hidden
        return 4 * self.n_embd if self.mlp == "gelu" else 64 * math.ceil(8 * self.n_embd / 3 / 64)

    def to_dict(self):
        """Plain dict of the fields (JSON-serialisable)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d):
        """Inverse of `to_dict`. Missing keys take their defaults (GPT-2's: a config written before a
        field existed reads as it did); unknown keys raise ConfigError."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ConfigError(f"GPTConfig: unknown key(s) {bounded(unknown, 100)}; valid keys are {sorted(known)}")
        return cls(**d)


def block_linears(config):
    """name inside a block -> (out, in, has_bias) of each of its Linear layers (attn.*, mlp.*):
    the one place that names the projections and sizes them for every layout."""
    C, nh, nkv, hs, H = config.n_embd, config.n_head, config.kv_heads, config.head_size, config.mlp_size
    qkv_b = config.bias or config.qkv_bias or config.attention_bias
    out_b, mlp_b = config.bias or config.attention_bias, config.bias or config.mlp_bias
    if config.qkv_proj == "packed":
        attn = {"attn.c_attn": ((nh + 2 * nkv) * hs, C, qkv_b), "attn.c_proj": (C, nh * hs, out_b)}
    else:
        attn = {"attn.q_proj": (nh * hs, C, qkv_b), "attn.k_proj": (nkv * hs, C, qkv_b),
                "attn.v_proj": (nkv * hs, C, qkv_b), "attn.o_proj": (C, nh * hs, out_b)}
    if config.mlp == "gelu":
        mlp = {"mlp.c_fc": (H, C, mlp_b), "mlp.c_proj": (C, H, mlp_b)}
    else:
        mlp = {"mlp.gate_proj": (H, C, mlp_b), "mlp.up_proj": (H, C, mlp_b), "mlp.down_proj": (C, H, mlp_b)}
    return {**attn, **mlp}


def _linears(config):
    """name -> (out, in, has_bias) of every Linear layer GPT(config) has, lm_head last."""
    block = block_linears(config)
    out = {f"transformer.h.{i}.{name}": v for i in range(config.n_layer) for name, v in block.items()}
    out["lm_head"] = (config.vocab_size, config.n_embd, False)
    return out


def linear_shapes(config):
    """name -> (out, in) of every Linear layer GPT(config) has, without building it."""
    return {name: (o, i) for name, (o, i, _) in _linears(config).items()}


def parameter_shapes(config):
    """name -> shape of every parameter GPT(config) has, without building it (a tied lm_head
    listed once, as transformer.wte.weight). A loader checks a file's shapes against this before
    it allocates a model from a config read from disk; a test keeps it equal to the model's."""
    C = config.n_embd
    shapes = {"transformer.wte.weight": (config.vocab_size, C)}
    if config.positions == "learned":
        shapes["transformer.wpe.weight"] = (config.block_size, C)
    norms = [f"transformer.h.{i}.{ln}" for i in range(config.n_layer) for ln in ("ln_1", "ln_2")]
    for name in norms + ["transformer.ln_f"]:
        shapes[name + ".weight"] = (C,)
        if config.bias and config.norm == "layernorm":
            shapes[name + ".bias"] = (C,)
    for name, (out, inp, bias) in _linears(config).items():
        if name != "lm_head" or not config.tie_word_embeddings:
            shapes[name + ".weight"] = (out, inp)
            if bias:
                shapes[name + ".bias"] = (out,)
    return shapes


def _norm(config):
    """The block's norm layer: LayerNorm (with bias when config.bias) or RMSNorm."""
    if config.norm == "layernorm":
        return nn.LayerNorm(config.n_embd, eps=config.norm_eps, bias=config.bias)
    return nn.RMSNorm(config.n_embd, eps=config.norm_eps)


class CausalSelfAttention(nn.Module):
    """Multi-head (or grouped-query) masked self-attention, all heads in one fused op; rotary
    positions applied to q and k inside it. Projections packed (c_attn, c_proj) or split
    (q_proj, k_proj, v_proj, o_proj), as config.qkv_proj says."""

    def __init__(self, config):
        super().__init__()
        C, nh, nkv = config.n_embd, config.n_head, config.kv_heads
        self.n_head, self.n_kv_head, self.n_embd = nh, nkv, C
        self.rope_theta = config.rope_theta if config.positions == "rope" else None
        self.dropout = config.dropout
        self.packed = config.qkv_proj == "packed"
        for name, (out, inp, bias) in block_linears(config).items():
            if name.startswith("attn."):
                self.add_module(name[len("attn."):], nn.Linear(inp, out, bias=bias))
        self.resid_dropout = nn.Dropout(config.dropout)

    def forward(self, x, cache=None):
        """x (B, T, C) -> (B, T, C). With cache = (k_cache, v_cache, t0) (decoding on ndarrays),
        the new keys and values are written at positions t0.. and attention sees the earlier ones."""
        if self.packed:
            qkv = self.c_attn(x)                             # (B, T, (nh + 2 nkv) hs): q, k, v side by side
            qkv_parts = (qkv,)
        else:
            qkv_parts = (self.q_proj(x), self.k_proj(x), self.v_proj(x))   # (B, T, nh hs), 2 x (B, T, nkv hs)
        if cache is None:
            # causal softmax(q k^T / sqrt(hs)) v over all heads in one fused op: it splits and merges
            # the heads itself and returns one gradient per projection
            p = self.dropout if self.training else 0.0
            if self.packed:
                y = F.causal_self_attention(qkv, self.n_head, p, n_kv_head=self.n_kv_head, rope_theta=self.rope_theta)
            else:
                y = F.causal_attention(*qkv_parts, n_head=self.n_head, rope_theta=self.rope_theta, dropout_p=p)
        else:
            q, k, v = split_packed(qkv, self.n_head, self.n_kv_head) if self.packed else qkv_parts
            y = cached_causal_attention(q, k, v, *cache, n_head=self.n_head, rope_theta=self.rope_theta)
        out = self.c_proj if self.packed else self.o_proj
        return self.resid_dropout(out(y))                    # (B, T, C)


class MLP(nn.Module):
    """Position-wise feed-forward, then dropout: Linear(C, H), tanh-GELU, Linear(H, C) (GPT-2), or
    SwiGLU down_proj(silu(gate_proj x) * up_proj x) (Llama)."""

    def __init__(self, config):
        super().__init__()
        self.swiglu = config.mlp == "swiglu"
        for name, (out, inp, bias) in block_linears(config).items():
            if name.startswith("mlp."):
                self.add_module(name[len("mlp."):], nn.Linear(inp, out, bias=bias))
        if not self.swiglu:
            self.gelu = nn.GELU(approximate="tanh")         # GPT-2 uses the tanh approximation
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x):
        if not self.swiglu:
            return self.dropout(self.c_proj(self.gelu(self.c_fc(x))))   # (B, T, H) inside, (B, T, C) out
        gate, up = self.gate_proj(x), self.up_proj(x)                    # (B, T, H) each
        if arrays_in_layers(gate):                                       # array inference: the op's kernel
            h = swiglu_forward(gate, up, with_grad=False)[0]
        else:
            h = F.swiglu(gate, up)
        return self.dropout(self.down_proj(h))


class Block(nn.Module):
    """Pre-norm transformer block: x + attn(ln_1(x)), then x + mlp(ln_2(x))."""

    def __init__(self, config):
        super().__init__()
        self.ln_1 = _norm(config)
        self.attn = CausalSelfAttention(config)
        self.ln_2 = _norm(config)
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
    """The GPT language model: token embeddings (plus learned position embeddings, unless rotary),
    n_layer Blocks, a final norm, and an lm_head tied to the token embedding (one Parameter, listed
    once as transformer.wte.weight) unless config.tie_word_embeddings is False."""

    def __init__(self, config):
        super().__init__()
        if not isinstance(config, GPTConfig):
            raise TypeError(f"GPT(config): expected a GPTConfig, got {type(config).__name__}")
        self.config = config
        layers = dict(wte=nn.Embedding(config.vocab_size, config.n_embd))         # token embedding (V, C)
        if config.positions == "learned":
            layers["wpe"] = nn.Embedding(config.block_size, config.n_embd)         # position embedding (block_size, C)
        layers.update(drop=nn.Dropout(config.dropout), h=nn.ModuleList([Block(config) for _ in range(config.n_layer)]),
                      ln_f=_norm(config))
        self.transformer = nn.ModuleDict(layers)
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)  # (V, C) weight
        if config.tie_word_embeddings:
            # weight tying (https://paperswithcode.com/method/weight-tying): one Parameter, two uses
            self.transformer.wte.weight = self.lm_head.weight
        self._init_weights()

    def _init_weights(self):
        """GPT-2 init from the library generator: N(0, 0.02) for Linear/Embedding weights, zeros for
        biases, N(0, 0.02/sqrt(2*n_layer)) for the residual projections (c_proj, o_proj, down_proj);
        norm weights stay 1."""
        resid_std = 0.02 / math.sqrt(2 * self.config.n_layer)
        norm_ids = {id(m.weight) for m in self.modules() if isinstance(m, (nn.LayerNorm, nn.RMSNorm))}
        for name, p in self.named_parameters():
            if name.endswith(("c_proj.weight", "o_proj.weight", "down_proj.weight")):
                nn.init.normal_(p, mean=0.0, std=resid_std)
            elif name.endswith(".bias"):
                nn.init.zeros_(p)
            elif id(p) not in norm_ids:
                nn.init.normal_(p, mean=0.0, std=0.02)

    # ---- Hugging Face folders (see nanoframe/models/hf.py) ------------------------------------------------
    @classmethod
    def from_hf(cls, folder):
        """A GPT with the weights of a Hugging Face gpt2, llama or qwen2 folder (config.json +
        model.safetensors)."""
        from nanoframe.models.hf import load_hf

        return load_hf(folder)

    def to_hf(self, folder, eot_id=None):
        """Write config.json + model.safetensors that transformers' AutoModelForCausalLM opens
        (GPT2LMHeadModel, LlamaForCausalLM or Qwen2ForCausalLM, whichever this config is)."""
        from nanoframe.models.hf import save_hf

        return save_hf(self, folder, eot_id)

    # ---- counting -------------------------------------------------------------------------------------
    def num_parameters(self, non_embedding=True, trainable_only=False):
        """Number of parameters (the tied wte/lm_head weight counted once). With non_embedding the
        lookup tables are subtracted, as in nanoGPT: the position embedding, and the token embedding
        when lm_head is separate (a tied one is kept: it is also the lm_head weight)."""
        n = sum(p.array.size for p in self.parameters() if p.requires_grad or not trainable_only)
        if non_embedding:
            tables = [self.transformer[k].weight for k in ("wpe", "wte") if k in self.transformer]
            n -= sum(w.array.size for w in tables if w is not self.lm_head.weight
                     and (w.requires_grad or not trainable_only))
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
        if cache is not None and t0 + T > cache.capacity:
            raise ValueError(f"GPT.forward: cannot forward {t0} cached + T={T} new positions into a KV cache "
                             f"of capacity {cache.capacity}")
        pos = np.arange(t0, t0 + T, dtype=np.int64)          # (T,)
        tr = self.transformer
        learned = "wpe" in tr                                # else rotary: positions act inside attention
        if cache is None:
            x = tr.wte(ids) + tr.wpe(pos) if learned else tr.wte(ids)
            logits = self._layers(tr.drop(x), None, last_only)          # (B, T, C) Tensors
        else:
            x = tr.wte.weight.array[ids]                      # (B, T, C) ndarray: decoding
            if learned:
                x = x + tr.wpe.weight.array[pos]
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
        """The blocks, the final norm and the head: (B, T, C) -> logits (B, T or 1, V)."""
        for i, block in enumerate(self.transformer.h):
            x = block(x, None if cache is None else cache.layer(i))   # (B, T, C)
        if last_only:
            x = x[:, -1:, :]                                  # (B, 1, C): only the next token's logits
        return self.lm_head(self.transformer.ln_f(x))         # (B, T, V)

    # ---- optimizer -----------------------------------------------------------------------------------------
    def configure_optimizer(self, weight_decay, lr, betas=(0.9, 0.95), eps=1e-8):
        """AdamW with two groups: every parameter with ndim >= 2 (matmul weights, embeddings) decays;
        biases and norm weights do not."""
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
