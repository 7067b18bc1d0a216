"""Training configuration: one dataclass with a meaning per field, plus named presets."""
from dataclasses import asdict, dataclass, fields

from nanoframe.errors import ConfigError, bounded
from nanoframe.schema import check, option


@dataclass
class TrainConfig:
    batch_size: int = option(12, "sequences per micro-batch (B)")
    grad_accum: int = option(1, "micro-batches summed into one optimizer step")
    max_iters: int = option(2000, "optimizer steps in the whole run")
    lr: float = option(1e-3, "peak learning rate, reached after warmup")
    min_lr: float = option(1e-4, "floor the cosine decay ends at")
    warmup_iters: int = option(100, "linear warmup steps")
    lr_decay_iters: int = option(0, "step the cosine reaches min_lr (0: max_iters)")
    weight_decay: float = option(0.1, "AdamW decoupled decay, matrices only")
    beta1: float = option(0.9, "AdamW first-moment decay")
    beta2: float = option(0.99, "AdamW second-moment decay")
    grad_clip: float = option(1.0, "clip the global grad norm to this (0: off)")
    eval_interval: int = option(250, "evaluate on val every this many steps")
    eval_iters: int = option(20, "val batches per evaluation (a fixed set)")
    log_interval: int = option(1, "write a metrics line every this many steps")
    checkpoint_interval: int = option(500, "save a checkpoint every this many steps (and at the end)")
    keep_checkpoints: int = option(2, "how many step checkpoints to keep on disk")
    early_stop_patience: int = option(0, "stop after this many evals without a new best val loss (0: off)")
    max_time: float = option(0.0, "stop (and checkpoint) after this many seconds (0: no limit)")
    seed: int = option(1337, "seeds init, dropout and batch sampling")

    def __post_init__(self):
        for f in fields(self):
            kind = int if f.type in (int, "int") else float
            setattr(self, f.name, check(getattr(self, f.name), f.name, kind))
        positive = ("batch_size", "grad_accum", "max_iters", "eval_interval", "eval_iters",
                    "log_interval", "checkpoint_interval", "keep_checkpoints")
        for name in positive:
            check(getattr(self, name), name, int, low=1)
        for name in ("batch_size", "grad_accum", "eval_iters"):      # no allocation without end
            check(getattr(self, name), name, int, high=1 << 20)
        for name in ("lr", "min_lr", "weight_decay", "grad_clip", "max_time", "warmup_iters",
                     "lr_decay_iters", "early_stop_patience", "seed"):
            check(getattr(self, name), name, type(getattr(self, name)), low=0)
        if self.lr == 0:
            raise ConfigError("lr must be > 0 (it is the peak of the schedule), got 0.0")
        for name in ("beta1", "beta2"):
            if not 0 <= getattr(self, name) < 1:
                raise ConfigError(f"{name} must be in [0, 1), got {getattr(self, name)}")

    def to_dict(self):
        return asdict(self)

    @classmethod
    def from_dict(cls, d):
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ConfigError(f"unknown training option(s) {bounded(unknown, 100)}; known: {sorted(known)}")
        return cls(**d)


# Architectures: the GPTConfig fields that make a GPT-2 or a Llama-style decoder (models/gpt.py),
# applied over a preset's shape by `nanoframe train --arch`. "gpt2" is GPTConfig's defaults spelled out.
ARCHITECTURES = {
    "gpt2": dict(norm="layernorm", norm_eps=1e-5, mlp="gelu", mlp_hidden=0, positions="learned",
                 qkv_proj="packed", n_kv_head=0, bias=True, qkv_bias=False, attention_bias=False, mlp_bias=False,
                 tie_word_embeddings=True),
    "llama": dict(norm="rmsnorm", norm_eps=1e-5, mlp="swiglu", mlp_hidden=0, positions="rope", rope_theta=10000.0,
                  qkv_proj="split", n_kv_head=0, bias=False, qkv_bias=False, attention_bias=False, mlp_bias=False,
                  tie_word_embeddings=True),
}

# Presets: model shape and training schedule together. `tiny` is nanoGPT's CPU shakespeare_char
# run; `small` is nanoGPT's shakespeare_char model; `default` is the offline stdlib run, sized to
# finish in under 10 minutes on 2 cores. `llama` is the Llama-style decoder at the parameter count
# of `default` (3.72M vs 3.72M with vocab 2048: no position table or biases, 2 K/V heads of 4, so the
# SwiGLU MLP gets hidden size 784), trained on the same schedule (README: the two compared).
_DEFAULT_TRAIN = dict(batch_size=8, max_iters=2800, lr=2e-3, min_lr=2e-4, warmup_iters=100,
                      eval_interval=250, eval_iters=20, beta2=0.99, checkpoint_interval=500)
PRESETS = {
    "tiny": {
        "model": dict(n_layer=4, n_head=4, n_embd=128, block_size=64, dropout=0.0, bias=True),
        "train": dict(batch_size=12, max_iters=2000, lr=1e-3, min_lr=1e-4, warmup_iters=100,
                      eval_interval=250, eval_iters=20, beta2=0.99, checkpoint_interval=500),
    },
    "small": {
        "model": dict(n_layer=6, n_head=6, n_embd=384, block_size=256, dropout=0.2, bias=True),
        "train": dict(batch_size=8, max_iters=5000, lr=1e-3, min_lr=1e-4, warmup_iters=100,
                      eval_interval=250, eval_iters=20, beta2=0.99, checkpoint_interval=500),
    },
    "default": {
        "model": dict(n_layer=4, n_head=4, n_embd=256, block_size=128, dropout=0.0, bias=True),
        "train": dict(_DEFAULT_TRAIN),
    },
    "llama": {
        "model": dict(n_layer=4, n_head=4, n_embd=256, block_size=128, dropout=0.0,
                      **{**ARCHITECTURES["llama"], "n_kv_head": 2, "mlp_hidden": 784}),
        "train": dict(_DEFAULT_TRAIN),
    },
}


def choose_preset(preset=None, arch=None, stdlib=True):
    """(model fields, train fields) of a preset with an architecture applied over its shape.

    preset: a PRESETS name, or None for the default ("llama" for arch llama on the stdlib, else
    "default" on the stdlib and "tiny" for files). arch: None (the preset's own), or an
    ARCHITECTURES name whose fields replace the preset's architecture fields (its sizes stay)."""
    if preset is not None and preset not in PRESETS:
        raise ConfigError(f"unknown preset {preset!r}; presets are {sorted(PRESETS)}")
    if arch is not None and arch not in ARCHITECTURES:
        raise ConfigError(f"unknown architecture {arch!r}; architectures are {sorted(ARCHITECTURES)}")
    if preset is None:
        preset = "llama" if arch == "llama" and stdlib else "default" if stdlib else "tiny"
    p = PRESETS[preset]
    model = dict(p["model"])
    if arch is not None and not (preset == "llama" and arch == "llama"):
        model.update(ARCHITECTURES[arch])
    return model, dict(p["train"])


def describe_preset(name):
    """One line: a preset's shape, architecture and schedule (for `nanoframe train --help`)."""
    m, t = PRESETS[name]["model"], PRESETS[name]["train"]
    arch = ""
    if m.get("positions") == "rope":
        kv = f", {m['n_kv_head']} K/V heads" if m.get("n_kv_head") else ""
        arch = f" Llama-style (RMSNorm, SwiGLU {m.get('mlp_hidden') or 'default'}, RoPE{kv}, no biases);"
    return (f"{name}:{arch} {m['n_layer']} layers, {m['n_head']} heads, n_embd {m['n_embd']}, block_size "
            f"{m['block_size']}, dropout {m['dropout']}; batch_size {t['batch_size']}, {t['max_iters']} steps, "
            f"lr {t['lr']:g} -> {t['min_lr']:g}")


# Fine-tuning schedules: lower peak lr than pretraining, short warmup, early stopping.
FINETUNE_DEFAULTS = {
    "full": dict(batch_size=8, max_iters=200, lr=3e-4, min_lr=3e-5, warmup_iters=10, weight_decay=0.1,
                 eval_interval=20, eval_iters=20, early_stop_patience=3, checkpoint_interval=100, beta2=0.99),
    "lora": dict(batch_size=8, max_iters=200, lr=5e-3, min_lr=5e-4, warmup_iters=10, weight_decay=0.0,
                 eval_interval=20, eval_iters=20, early_stop_patience=3, checkpoint_interval=100, beta2=0.99),
}
