"""Fine-tuning: starting points, freezing, instruction data, and the driver behind `nanoframe finetune`.

    base (a nanoframe run/checkpoint, or a Hugging Face GPT-2 folder)
      -> optional freezing (embeddings, first N blocks, fnmatch patterns) or LoRA adapters
      -> data: plain text (TokenData with the base tokenizer) or instruction JSONL (InstructionData)
      -> the shared Trainer loop (lower lr, early stopping, best checkpoint kept)

A fine-tuned run is a normal run folder: RUN/best, RUN/checkpoints/step_N, metrics.jsonl, and a
state.json per checkpoint with "model_config", "tokenizer", plus "base" (where it started) and,
for LoRA runs, "lora" (targets, r, alpha, dropout). LoRA checkpoints store the full model (frozen
base weights and the adapters under their usual names), so `nanoframe sample` rebuilds a run as
GPT(model_config) + apply_lora(**lora) + load; RUN/adapter.safetensors holds the best adapter
alone (what `nanoframe lora merge` and `load_adapter` take).

Instruction JSONL, one object per line:
    {"prompt": "...", "completion": "..."}            loss on the completion and the end-of-text
    {"messages": [{"role": "user", "content": "..."}, {"role": "assistant", "content": "..."}]}
Chat messages are rendered as "role: content\n" one after the other; the loss covers assistant
content and its "\n" only (and the final end-of-text when the last message is the assistant's).
"""
import fnmatch
import json
import math
import sys
from pathlib import Path

import numpy as np

from nanoframe import data as D
from nanoframe.data import DataError

IGNORE_INDEX = -100

# Fine-tuning schedules: lower peak lr than pretraining, short warmup, early stopping.
FINETUNE_DEFAULTS = {
    "full": dict(batch_size=8, max_iters=200, lr=3e-4, min_lr=3e-5, warmup_iters=10, weight_decay=0.1,
                 eval_interval=20, eval_iters=20, early_stop_patience=3, checkpoint_interval=100, beta2=0.99),
    "lora": dict(batch_size=8, max_iters=200, lr=5e-3, min_lr=5e-4, warmup_iters=10, weight_decay=0.0,
                 eval_interval=20, eval_iters=20, early_stop_patience=3, checkpoint_interval=100, beta2=0.99),
}
DEFAULT_LORA_TARGETS = ("c_attn", "c_proj", "c_fc")


# ---- starting points ------------------------------------------------------------------------------
def load_run(path, merge=False):
    """(model, tokenizer, state, folder) of a nanoframe run or checkpoint folder (best/ preferred).

    A LoRA run is rebuilt as base + adapters (merged into plain Linears with merge=True).
    """
    from nanoframe.models import GPT, GPTConfig
    from nanoframe.training.checkpoint import CheckpointError, find_checkpoint, load_checkpoint, read_state
    from nanoframe.training.lora import apply_lora, merge_lora

    path = Path(path)
    folder = path / "best" if (path / "best" / "state.json").is_file() else find_checkpoint(path)
    state = read_state(folder)
    if "model_config" not in state or "tokenizer" not in state:
        raise CheckpointError(f"{folder}/state.json lacks model_config or tokenizer")
    model = GPT(GPTConfig.from_dict(state["model_config"]))
    if state.get("lora"):
        apply_lora(model, **state["lora"])
    load_checkpoint(folder, model)
    if merge and state.get("lora"):
        merge_lora(model)
    return model, D.load_tokenizer(state["tokenizer"]), state, folder


def load_base(path, hf=False, tokenizer=None):
    """(model, tokenizer, tokenizer_path or None, description) of a starting point.

    hf=True: a Hugging Face GPT-2 folder; its tokenizer comes from `tokenizer` (a nanoframe
    tokenizer file, or a folder with vocab.json/merges.txt or encoder.json/vocab.bpe) or from the
    folder itself. Otherwise a nanoframe run/checkpoint (a LoRA run is merged first).
    """
    from nanoframe.models.hf import find_tokenizer_files, load_hf, load_hf_tokenizer

    path = Path(path)
    if hf:
        if not path.is_dir():
            raise DataError(f"--from-hf: no such folder: {path}")
        model = load_hf(path)
        if tokenizer is not None and Path(tokenizer).is_file():
            tok, tok_path = D.load_tokenizer(tokenizer), str(Path(tokenizer).resolve())
        else:
            src = Path(tokenizer) if tokenizer is not None else path
            if find_tokenizer_files(src) is None:
                raise DataError(f"no GPT-2 tokenizer files (vocab.json + merges.txt or encoder.json + vocab.bpe) "
                                f"in {src}; pass --tokenizer FILE_OR_FOLDER")
            tok, tok_path = load_hf_tokenizer(src), None
        if tok.vocab_size > model.config.vocab_size:
            raise DataError(f"the tokenizer has {tok.vocab_size} tokens but the model only {model.config.vocab_size}")
        return model, tok, tok_path, {"kind": "hf", "path": str(path.resolve())}
    if tokenizer is not None:
        raise DataError("--tokenizer is only for --from-hf (a nanoframe run carries its tokenizer)")
    model, tok, state, folder = load_run(path, merge=True)
    return model, tok, state["tokenizer"], {"kind": "nanoframe", "path": str(Path(folder).resolve()),
                                            "step": state.get("step")}


def crop_block_size(model, block_size):
    """Shorten the context to block_size positions (keeps the first rows of wpe), as nanoGPT does."""
    cfg = model.config
    if block_size > cfg.block_size:
        raise DataError(f"block_size {block_size} exceeds the base model's {cfg.block_size} positions")
    if block_size < cfg.block_size:
        wpe = model.transformer.wpe
        wpe.weight.array = np.ascontiguousarray(wpe.weight.array[:block_size])
        wpe.num_embeddings = block_size
        cfg.block_size = block_size
    return model


def set_dropout(model, p):
    """Change every dropout probability of a GPT (embeddings, attention, residual branches)."""
    from nanoframe import nn
    from nanoframe.models import GPTConfig
    from nanoframe.models.gpt import CausalSelfAttention

    p = GPTConfig.from_dict({**model.config.to_dict(), "dropout": p}).dropout  # validates
    model.config.dropout = p
    for m in model.modules():
        if isinstance(m, nn.Dropout):
            m.p = p
        elif isinstance(m, CausalSelfAttention):
            m.dropout = p
    return model


# ---- freezing -------------------------------------------------------------------------------------
def freeze(model, patterns=(), first_n_layers=0, embeddings=False):
    """Set requires_grad False on matching parameters; returns the sorted names frozen.

    patterns: fnmatch patterns on parameter names ("transformer.h.0.*", "*.ln_*"); a parameter
    shared under two names (wte / lm_head) is frozen when either name matches. first_n_layers:
    the first N transformer blocks. embeddings: wte and wpe (wte is also the tied lm_head).
    A pattern that matches nothing, or freezing every parameter, raises ValueError.
    """
    named = list(model.named_parameters(remove_duplicate=False))
    chosen = {}
    for pat in patterns:
        hits = [(n, p) for n, p in named if fnmatch.fnmatchcase(n, pat)]
        if not hits:
            raise ValueError(f"freeze pattern {pat!r} matches no parameter (names look like "
                             f"{named[0][0]!r}, {named[-1][0]!r})")
        chosen.update((id(p), p) for _, p in hits)
    n_layer = len(model.transformer.h)
    if not 0 <= first_n_layers <= n_layer:
        raise ValueError(f"cannot freeze the first {first_n_layers} blocks: the model has {n_layer}")
    prefixes = tuple(f"transformer.h.{i}." for i in range(first_n_layers))
    if embeddings:
        prefixes += ("transformer.wte.", "transformer.wpe.")
    chosen.update((id(p), p) for n, p in named if prefixes and n.startswith(prefixes))
    for p in chosen.values():
        p.requires_grad_(False)
    if not any(p.requires_grad for p in model.parameters()):
        raise ValueError("freezing left no trainable parameter")
    return sorted({n for n, p in model.named_parameters() if id(p) in chosen})


# ---- instruction data -------------------------------------------------------------------------------
def _bad(path, lineno, msg):
    return DataError(f"{path}:{lineno}: {msg}")


def parse_record(obj, path="<data>", lineno=0):
    """A JSONL record -> list of (text, trained) segments plus whether the final end-of-text is trained."""
    if not isinstance(obj, dict):
        raise _bad(path, lineno, f"expected a JSON object, got {type(obj).__name__}")
    if "messages" in obj:
        msgs = obj["messages"]
        if not isinstance(msgs, list) or not msgs:
            raise _bad(path, lineno, '"messages" must be a non-empty list')
        segments = []
        for k, m in enumerate(msgs):
            if not isinstance(m, dict) or not isinstance(m.get("role"), str) or not isinstance(m.get("content"), str):
                raise _bad(path, lineno, f'messages[{k}] must be an object with string "role" and "content"')
            trained = m["role"] == "assistant"
            segments += [(f"{m['role']}: ", False), (m["content"], trained), ("\n", trained)]
        if not any(m["role"] == "assistant" and m["content"] for m in msgs):
            raise _bad(path, lineno, "no non-empty assistant message to train on")
        return segments, msgs[-1]["role"] == "assistant"
    missing = [k for k in ("prompt", "completion") if k not in obj]
    if missing:
        raise _bad(path, lineno, f'missing key(s) {missing}: expected {{"prompt", "completion"}} or {{"messages"}}')
    for k in ("prompt", "completion"):
        if not isinstance(obj[k], str):
            raise _bad(path, lineno, f'"{k}" must be a string, got {type(obj[k]).__name__}')
    if not obj["completion"]:
        raise _bad(path, lineno, '"completion" is empty')
    return [(obj["prompt"], False), (obj["completion"], True)], True


def read_jsonl(path):
    """The records of a JSONL file as (segments, eot_trained) pairs; DataError names file and line."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"no such file: {path}")
    records = []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise _bad(path, lineno, f"invalid JSON ({e.msg} at column {e.colno})") from None
            records.append(parse_record(obj, path, lineno))
    if not records:
        raise DataError(f"{path}: no records (the file is empty)")
    return records


def encode_record(segments, eot_trained, tokenizer):
    """(ids, trained) int64 / bool arrays: the segments' tokens then the end-of-text token;
    trained[i] says whether token i is a prediction target."""
    eot = tokenizer.eot_id
    if eot is None:
        raise DataError("instruction data needs a tokenizer with an end-of-text token (<|endoftext|>); "
                        "this tokenizer has none (a char tokenizer?): use a BPE tokenizer")
    ids, trained = [], []
    for text, t in segments:
        piece = tokenizer.encode_ordinary(text)
        ids += piece
        trained += [t] * len(piece)
    ids.append(eot)
    trained.append(eot_trained)
    return np.asarray(ids, np.int64), np.asarray(trained, bool)


def pack(examples, block_size, pad_id):
    """Greedily pack examples into rows of block_size + 1 tokens (an example never straddles two
    rows; one longer than a row is cut to it). Returns (x, y) int64 (N, block_size) with y =
    IGNORE_INDEX where the next token is not trained, and the number of cut examples. Rows without
    any target are dropped."""
    n = block_size + 1
    rows, cur_ids, cur_tr, cut = [], [], [], 0

    def flush():
        if cur_ids:
            pad = n - sum(len(a) for a in cur_ids)
            rows.append((np.concatenate(cur_ids + [np.full(pad, pad_id, np.int64)]),
                         np.concatenate(cur_tr + [np.zeros(pad, bool)])))
            cur_ids.clear()
            cur_tr.clear()

    used = 0
    for ids, tr in examples:
        if len(ids) > n:
            ids, tr, cut = ids[:n], tr[:n], cut + 1
        if used + len(ids) > n:
            flush()
            used = 0
        cur_ids.append(ids)
        cur_tr.append(tr)
        used += len(ids)
    flush()
    xs, ys = [], []
    for ids, tr in rows:
        y = np.where(tr[1:], ids[1:], IGNORE_INDEX)
        if (y != IGNORE_INDEX).any():
            xs.append(ids[:-1])
            ys.append(y)
    if not xs:
        return np.zeros((0, block_size), np.int64), np.zeros((0, block_size), np.int64), cut
    return np.stack(xs), np.stack(ys), cut


def split_examples(n, val_fraction=0.1, seed=0):
    """Deterministic (train_indices, val_indices): a seeded permutation, at least 1 val example."""
    if n < 2:
        raise DataError(f"instruction data needs at least 2 records (one for validation), got {n}")
    order = np.random.default_rng(seed).permutation(n)
    n_val = min(n - 1, max(1, int(round(n * val_fraction))))
    return np.sort(order[n_val:]), np.sort(order[:n_val])


class InstructionData:
    """Packed instruction examples with TokenData's interface (get_batch, val_batches, state_dict,
    block_size). Targets of prompt tokens are IGNORE_INDEX (-100), so the loss is on completions."""

    def __init__(self, examples, block_size, batch_size, pad_id, seed=0, val_fraction=0.1, source="examples"):
        self.block_size, self.batch_size = int(block_size), int(batch_size)
        train_idx, val_idx = split_examples(len(examples), val_fraction, seed)
        self.x_train, self.y_train, cut_train = pack([examples[i] for i in train_idx], block_size, pad_id)
        self.x_val, self.y_val, cut_val = pack([examples[i] for i in val_idx], block_size, pad_id)
        self.n_train, self.n_val, self.cut = len(train_idx), len(val_idx), cut_train + cut_val
        for split, x in (("train", self.x_train), ("val", self.x_val)):
            if not len(x):
                raise DataError(f"{source}: the {split} split has no trainable tokens after packing into "
                                f"block_size {block_size} (prompts longer than the context?)")
        self.rng = np.random.default_rng(seed)

    @classmethod
    def from_jsonl(cls, paths, tokenizer, block_size, batch_size, seed=0, val_fraction=0.1):
        paths = [paths] if isinstance(paths, (str, Path)) else list(paths)
        examples = [encode_record(seg, eot_tr, tokenizer) for p in paths for seg, eot_tr in read_jsonl(p)]
        return cls(examples, block_size, batch_size, tokenizer.eot_id, seed, val_fraction,
                   source=", ".join(map(str, paths)))

    def get_batch(self, split="train"):
        x, y = (self.x_train, self.y_train) if split == "train" else (self.x_val, self.y_val)
        rows = self.rng.integers(0, len(x), size=self.batch_size)
        return x[rows], y[rows]

    def val_batches(self, max_batches=None, split="val"):
        x, y = (self.x_val, self.y_val) if split == "val" else (self.x_train, self.y_train)
        B = self.batch_size
        batches = [(x[i:i + B], y[i:i + B]) for i in range(0, len(x), B)]
        return batches if max_batches is None else batches[:max_batches]

    def state_dict(self):
        return {"rng": self.rng.bit_generator.state}

    def load_state_dict(self, state):
        self.rng.bit_generator.state = state["rng"]

    def describe(self):
        return (f"{self.n_train} train / {self.n_val} val examples packed into {len(self.x_train)} / "
                f"{len(self.x_val)} rows of {self.block_size + 1} tokens"
                + (f"; {self.cut} example(s) cut to the context" if self.cut else ""))


def is_instruction_data(paths):
    """True when every --data path is a .jsonl file; a mix of JSONL and text is refused."""
    kinds = {str(p).endswith(".jsonl") for p in paths}
    if len(kinds) > 1:
        raise DataError("--data mixes .jsonl instruction files and plain text; fine-tune on one kind at a time")
    return kinds == {True}


def split_by_position(docs, val_fraction=0.1):
    """Every document's last val_fraction (cut at a line break when there is one) goes to val."""
    train, val = [], []
    for d in docs:
        cut = int(len(d.text) * (1 - val_fraction))
        nl = d.text.rfind("\n", 0, cut)
        cut = nl + 1 if nl > 0 else cut
        train.append(D.Document(d.name, d.text[:cut]))
        val.append(D.Document(d.name + ":val", d.text[cut:]))
    return train, val


def holdout_documents(val_fraction=0.1):
    """(train, val, source) from the stdlib package held out of the default pretraining corpus."""
    _, held = D.stdlib_files()
    docs = list(D.documents(held, D.stdlib_dir()))
    train, val = split_by_position(docs, val_fraction)
    return train, val, f"python stdlib package {D.DEFAULT_HOLDOUT!r} (held out of pretraining), split by position"


def build_data(paths, tokenizer, tokenizer_path, block_size, batch_size, data_dir, seed=0, val_fraction=0.1,
               glob="**/*.txt", show_progress=True):
    """(data, description): InstructionData for .jsonl files, else TokenData over a prepared folder
    (plain text files, or the held-out stdlib package when paths is empty)."""
    if paths and is_instruction_data(paths):
        data = InstructionData.from_jsonl(paths, tokenizer, block_size, batch_size, seed, val_fraction)
        return data, "instructions: " + data.describe()
    if paths:
        docs = list(D.documents(D.find_files(paths, glob)))
        train, val = D.split_documents(docs, val_fraction, seed)
        source = "files: " + ", ".join(map(str, paths))
    else:
        train, val, source = holdout_documents(val_fraction)
    meta = D.prepare(train, val, tokenizer, data_dir, tokenizer_path, source, show_progress=show_progress)
    data = D.TokenData(data_dir, block_size, batch_size, seed=seed)
    return data, f"text: {source}; {meta['train_tokens']:,} train / {meta['val_tokens']:,} val tokens"


# ---- the driver -------------------------------------------------------------------------------------
def _metrics_first_val(run_dir):
    path = Path(run_dir) / "metrics.jsonl"
    for line in path.read_text().splitlines():
        rec = json.loads(line)
        if "val_loss" in rec:
            return rec["val_loss"]
    return None


def finetune(base, out_dir, data=(), *, hf=False, tokenizer=None, lora=None, freeze_patterns=(),
             freeze_layers=0, freeze_embeddings=False, train_overrides=None, model_overrides=None,
             val_fraction=0.1, glob="**/*.txt", show_progress=True, log=None):
    """Fine-tune `base` into run folder `out_dir`; returns a summary dict.

    lora: None for full fine-tuning, or a dict (targets, r, alpha, dropout) for LoRA.
    train_overrides: TrainConfig fields over FINETUNE_DEFAULTS; model_overrides: only dropout and
    block_size (<= the base's) may change. The summary holds val_loss_before (step 0, same val
    set), val_loss_after (best), trainable/total parameters, seconds and the run's paths.
    """
    import time

    from nanoframe.io import atomic_write_text
    from nanoframe.random import manual_seed
    from nanoframe.training.checkpoint import list_checkpoints, load_checkpoint
    from nanoframe.training.config import TrainConfig
    from nanoframe.training.lora import apply_lora, count_parameters, lora_config, save_adapter
    from nanoframe.training.trainer import Trainer

    log = log or (lambda msg: print(msg, file=sys.stderr))
    out = Path(out_dir)
    if list_checkpoints(out) or (out / "best").exists():
        raise DataError(f"{out} already holds a run; choose another --out")
    mode = "lora" if lora is not None else "full"
    train_cfg = TrainConfig.from_dict({**FINETUNE_DEFAULTS[mode], **(train_overrides or {})})
    model_overrides = dict(model_overrides or {})
    bad = sorted(set(model_overrides) - {"dropout", "block_size"})
    if bad:
        raise DataError(f"fine-tuning keeps the base model's shape: cannot change {bad} (only dropout, block_size)")

    manual_seed(train_cfg.seed)
    model, tok, tok_path, base_info = load_base(base, hf=hf, tokenizer=tokenizer)
    if "block_size" in model_overrides:
        crop_block_size(model, model_overrides["block_size"])
    if "dropout" in model_overrides:
        set_dropout(model, model_overrides["dropout"])
    out.mkdir(parents=True, exist_ok=True)
    if tok_path is None:  # a Hugging Face tokenizer: keep a nanoframe copy with the run
        tok_path = str((out / "tokenizer.json").resolve())
        tok.save(tok_path)

    frozen = []
    if lora is not None:
        if freeze_patterns or freeze_layers or freeze_embeddings:
            raise DataError("--lora already freezes the base model; do not combine it with --freeze*")
        lcfg = lora_config(**lora)
        wrapped = apply_lora(model, **lcfg)
        log(f"LoRA r={lcfg['r']} alpha={lcfg['alpha']:g} on {len(wrapped)} layers ({', '.join(lcfg['targets'])})")
    else:
        lcfg = None
        if freeze_patterns or freeze_layers or freeze_embeddings:
            frozen = freeze(model, freeze_patterns, freeze_layers, freeze_embeddings)
            log(f"froze {len(frozen)} parameter tensors")

    data_obj, desc = build_data(list(data or []), tok, tok_path, model.config.block_size, train_cfg.batch_size,
                                out / "data", train_cfg.seed, val_fraction, glob, show_progress)
    log(desc)
    trainable, total = count_parameters(model)
    log(f"base: {base_info['kind']} {base_info['path']}; {mode} fine-tuning of {trainable:,} / {total:,} "
        f"parameters ({100 * trainable / total:.2f}%)")

    extra = {"model_config": model.config.to_dict(), "tokenizer": tok_path, "base": base_info,
             "finetune": mode, "frozen": frozen}
    if lcfg is not None:
        extra["lora"] = lcfg
    run = {"finetune": mode, "base": base_info, "model": model.config.to_dict(), "train": train_cfg.to_dict(),
           "data": [str(p) for p in data] if data else "stdlib holdout", "tokenizer": tok_path,
           "lora": lcfg, "frozen": frozen}
    atomic_write_text(out / "config.json", json.dumps(run, indent=2) + "\n")

    trainer = Trainer(model, data_obj, train_cfg, out, extra_state=extra, show_progress=show_progress)
    t0 = time.perf_counter()
    summary = trainer.train()
    seconds = time.perf_counter() - t0
    load_checkpoint(out / "best", model)  # leave the model at its best weights
    adapter = None
    if lcfg is not None:
        adapter = str(save_adapter(model, out / "adapter.safetensors", lcfg))
    before = _metrics_first_val(out)
    after = summary["best_val_loss"]
    return {
        **summary, "mode": mode, "val_loss_before": before, "val_loss_after": after,
        "improvement": None if before is None or not math.isfinite(after) else before - after,
        "trainable_parameters": trainable, "total_parameters": total, "seconds": seconds,
        "run": str(out), "adapter": adapter, "model": model, "tokenizer": tok,
    }


def generate_completion(model, tokenizer, prompt, max_new_tokens=32):
    """Greedy completion of a prompt, stopped at the end-of-text token (not included)."""
    ids = tokenizer.encode_ordinary(prompt)
    ids = ids[-model.config.block_size:]
    out = model.generate(np.asarray([ids], np.int64), max_new_tokens, temperature=0,
                         stop_tokens=tokenizer.eot_id)
    new = [t for t in np.asarray(out)[0, len(ids):].tolist() if t != tokenizer.eot_id]
    return tokenizer.decode(new)
