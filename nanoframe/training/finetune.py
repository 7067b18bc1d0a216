"""Fine-tuning: starting points, freezing, LoRA, and the driver behind `nanoframe finetune`.

    base (a nanoframe run/checkpoint, or a Hugging Face GPT-2 folder)
      -> optional freezing (embeddings, first N blocks, fnmatch patterns) or LoRA adapters
      -> data: plain text (token files with the base tokenizer) or instruction JSONL (packed rows)
      -> the shared Trainer loop (lower lr, early stopping, best checkpoint kept)

A fine-tune is a run folder like any other (training/run.py): config.json records kind "finetune",
the mode (full, frozen, lora), the base (kind, path, and the SHA-256 of its weights, which `lora
merge` checks), the LoRA config and the frozen parameters. Its data lives in RUN/data (token files,
or the packed instruction rows), so `finetune --out RUN --resume` continues bit-identically without
the base or the original files. LoRA checkpoints store the full model (frozen base weights and the
adapters under their usual names); RUN/adapter.safetensors holds the best adapter alone.

Under mpiexec, rank 0 loads the base and prepares the run; the other ranks wait, build the same
model (shape, LoRA, frozen parameters) from its config.json, receive its weights from
DistributedDataParallel's broadcast, and train their share of every batch (trainer.py).
"""
import fnmatch
import math
import sys
from pathlib import Path

import numpy as np

from nanoframe import data as D
from nanoframe import distributed as dist
from nanoframe.errors import CheckpointError, ConfigError, DataError
from nanoframe.io import file_sha256
from nanoframe.random import manual_seed
from nanoframe.training.config import FINETUNE_DEFAULTS, TrainConfig
from nanoframe.training.run import Run, load_for_inference, open_checkpoint, save_run

def _log(msg):
    print(msg, file=sys.stderr)


# ---- starting points ------------------------------------------------------------------------------
def load_base(path, hf=False, tokenizer=None):
    """(model, tokenizer, base_info) of a starting point.

    hf=True: a Hugging Face gpt2, llama or qwen2 folder; its tokenizer comes from `tokenizer` (a
    tokenizer file, or a folder with tokenizer.json, vocab.json/merges.txt or encoder.json/vocab.bpe)
    or from the folder itself. Otherwise a nanoframe run/checkpoint (best/ preferred; a LoRA run is merged).
    base_info records the kind, the path and the SHA-256 of the weights file used.
    """
    from nanoframe.models.hf import load_hf

    path = Path(path)
    if hf:
        if not path.is_dir():
            raise DataError(f"no such Hugging Face model folder: {path}")
        model = load_hf(path)
        tok = D.load_tokenizer(tokenizer if tokenizer is not None else path)    # a file, or a folder
        if tok.vocab_size > model.config.vocab_size:
            raise DataError(f"the tokenizer has {tok.vocab_size} tokens but the model only {model.config.vocab_size}")
        info = {"kind": "hf", "path": str(path.resolve()), "weights_sha256": file_sha256(path / "model.safetensors")}
        return model, tok, info
    if tokenizer is not None:
        raise ConfigError("a tokenizer is only given with a Hugging Face base (a nanoframe run carries its own)")
    model, tok, state, folder = load_for_inference(path, merge=True)
    info = {"kind": "nanoframe", "path": str(Path(folder).resolve()), "step": state["step"],
            "weights_sha256": file_sha256(Path(folder) / "model.safetensors")}
    return model, tok, info


def crop_block_size(model, block_size):
    """Shorten the context to block_size positions (keeps the first rows of a learned wpe), as nanoGPT does."""
    cfg = model.config
    if block_size > cfg.block_size:
        raise DataError(f"block_size {block_size} exceeds the base model's {cfg.block_size} positions")
    if block_size < cfg.block_size:
        if "wpe" in model.transformer:                 # learned positions; rotary ones have no table
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
            raise ConfigError(f"freeze pattern {pat!r} matches no parameter (names look like "
                             f"{named[0][0]!r}, {named[-1][0]!r})")
        chosen.update((id(p), p) for _, p in hits)
    n_layer = len(model.transformer.h)
    if not 0 <= first_n_layers <= n_layer:
        raise ConfigError(f"cannot freeze the first {first_n_layers} blocks: the model has {n_layer}")
    prefixes = tuple(f"transformer.h.{i}." for i in range(first_n_layers))
    if embeddings:
        prefixes += ("transformer.wte.", "transformer.wpe.")
    chosen.update((id(p), p) for n, p in named if prefixes and n.startswith(prefixes))
    for p in chosen.values():
        p.requires_grad_(False)
    if not any(p.requires_grad for p in model.parameters()):
        raise ConfigError("freezing left no trainable parameter")
    return sorted({n for n, p in model.named_parameters() if id(p) in chosen})


def _text_data(paths, glob, val_fraction):
    """(train_docs, val_docs, source): text files split by document, or the stdlib package held out
    of the default pretraining corpus, every file split by position."""
    if paths:
        docs = list(D.documents(D.find_files(paths, glob)))
        train, val = D.split_documents(docs, val_fraction)
        return train, val, "files: " + ", ".join(map(str, paths))
    _, held, _ = D.stdlib_corpus()
    train, val = D.split_by_position(held, val_fraction)
    return train, val, f"python stdlib package {D.DEFAULT_HOLDOUT!r} (held out of pretraining), split by position"


def finetune(base, out_dir, data=(), *, hf=False, tokenizer=None, lora=None, freeze_patterns=(),
             freeze_layers=0, freeze_embeddings=False, train_overrides=None, model_overrides=None,
             val_fraction=0.1, glob="**/*.txt", show_progress=True, log=_log, resume=False):
    """Fine-tune `base` into run folder `out_dir` (or with resume=True continue that run); returns
    a summary dict.

    lora: None, or a dict (targets, r, alpha, dropout) for LoRA. train_overrides: TrainConfig
    fields over FINETUNE_DEFAULTS; model_overrides: only dropout and block_size (<= the base's)
    may change. On resume, base and data come from the run itself, and only training fields may
    change. The summary holds val_loss_before (step 0, same val set), val_loss_after (best),
    trainable/total parameters, seconds and the run's paths.
    """
    if dist.get_rank() > 0:
        return _follow(Run(out_dir))
    with dist.leading():
        return _finetune(base, out_dir, data, hf, tokenizer, lora, freeze_patterns, freeze_layers, freeze_embeddings,
                         train_overrides, model_overrides, val_fraction, glob, show_progress, log, resume)


def _finetune(base, out_dir, data, hf, tokenizer, lora, freeze_patterns, freeze_layers, freeze_embeddings,
              train_overrides, model_overrides, val_fraction, glob, show_progress, log, resume):
    import time

    run = Run(out_dir)
    model_overrides = dict(model_overrides or {})
    bad = sorted(set(model_overrides) - {"dropout", "block_size"})
    if bad:
        raise ConfigError(f"fine-tuning keeps the base model's shape: cannot change {bad} (only dropout, block_size)")
    t0 = time.perf_counter()
    if not resume:
        run.check_writable_target()
    elif not run.exists():
        raise CheckpointError(f"cannot resume {run.root}: it is not a nanoframe run")
    with run:
        if resume:
            model, tok, trainer, config = _resume(run, model_overrides, train_overrides, show_progress, log)
        else:
            model, tok, trainer, config = _start(run, base, data, hf, tokenizer, lora, freeze_patterns, freeze_layers,
                                                 freeze_embeddings, train_overrides, model_overrides, val_fraction,
                                                 glob, show_progress, log)
        summary = trainer.train()
        return _finish(run, model, tok, config, summary, time.perf_counter() - t0)


def _start(run, base, data, hf, tokenizer, lora, freeze_patterns, freeze_layers, freeze_embeddings,
           train_overrides, model_overrides, val_fraction, glob, show_progress, log):
    from nanoframe.nn.lora import apply_lora, lora_config
    from nanoframe.training.trainer import Trainer

    run.reset()                          # refused if the folder holds trained weights
    if lora is not None and (freeze_patterns or freeze_layers or freeze_embeddings):
        raise ConfigError("LoRA already freezes the base model; do not combine it with freezing options")
    mode = "lora" if lora is not None else "frozen" if (freeze_patterns or freeze_layers or freeze_embeddings) else "full"
    train_cfg = TrainConfig.from_dict({**FINETUNE_DEFAULTS["lora" if lora is not None else "full"],
                                       **(train_overrides or {})})
    manual_seed(train_cfg.seed)
    model, tok, base_info = load_base(base, hf=hf, tokenizer=tokenizer)
    if "block_size" in model_overrides:
        crop_block_size(model, model_overrides["block_size"])
    if "dropout" in model_overrides:
        set_dropout(model, model_overrides["dropout"])
    tok_sha = run.install_tokenizer(tok)
    frozen, lcfg = [], None
    if lora is not None:
        lcfg = lora_config(**lora)
        wrapped = apply_lora(model, **lcfg)
        matched = list(dict.fromkeys(name.rpartition(".")[2] for name in wrapped))   # the names that matched, in order
        log(f"LoRA r={lcfg['r']} alpha={lcfg['alpha']:g} on {len(wrapped)} layers ({', '.join(matched)})")
    elif mode == "frozen":
        frozen = freeze(model, freeze_patterns, freeze_layers, freeze_embeddings)
        log(f"froze {len(frozen)} parameter tensors")

    paths = list(data or [])
    block, batch = model.config.block_size, train_cfg.batch_size
    if paths and D.is_instruction_data(paths):
        data_obj = D.InstructionData.from_jsonl(paths, tok, block, batch, train_cfg.seed, val_fraction)
        data_obj.save(run.own_data_dir)
        record = run.data_record(run.own_data_dir, "instructions", "instructions: " + ", ".join(map(str, paths)))
    else:
        train, val, source = _text_data(paths, glob, val_fraction)
        D.prepare(train, val, tok, run.own_data_dir, source, show_progress=show_progress)
        data_obj = D.TokenData(run.own_data_dir, block, batch, seed=train_cfg.seed)
        record = run.data_record(run.own_data_dir, "tokens", source)
    log(f"data: {data_obj.describe()}")
    config = run.write_config({
        "kind": "finetune", "model": model.config.to_dict(), "train": train_cfg.to_dict(),
        "tokenizer": {"file": "tokenizer.json", "sha256": tok_sha}, "data": record,
        "finetune": {"mode": mode, "base": base_info, "lora": lcfg, "frozen": frozen, "val_fraction": val_fraction},
    })
    trainable, total = count_parameters(model)
    log(f"base: {base_info['kind']} {base_info['path']}; {mode} fine-tuning of {trainable:,} / {total:,} "
        f"parameters ({100 * trainable / total:.2f}%)")
    dist.release_followers({"resume": False})
    trainer = Trainer(model, data_obj, train_cfg, run, extra_state=_extra_state(config), show_progress=show_progress)
    return model, tok, trainer, config


def _resume(run, model_overrides, train_overrides, show_progress, log):
    from nanoframe.training.pretrain import _check_hashes
    from nanoframe.training.trainer import Trainer

    config = run.read_config()
    if config["kind"] != "finetune" or config.get("legacy"):
        what = "a fine-tune written by nanoframe 0.1" if config.get("legacy") else f"a {config['kind']} run"
        raise CheckpointError(f"{run.root} is {what}: "
                              + ("resume it as a pretraining run" if config["kind"] == "pretrain"
                                 else "it cannot be resumed as a fine-tune"))
    run.check_resumable(config, train_overrides or {})
    changed = sorted(k for k, v in model_overrides.items() if config["model"].get(k) != v)
    if changed:
        raise ConfigError(f"the run in {run.root} has another model config; cannot change {changed} on resume")
    run.check_model_config(config)
    train_cfg = TrainConfig.from_dict({**config["train"], **(train_overrides or {})})
    config["train"] = train_cfg.to_dict()
    run.write_config(config)
    tok = run.load_tokenizer(config["tokenizer"].get("sha256"))
    model, data_obj = _model_and_data(run, config, train_cfg)
    dist.release_followers({"resume": True})
    extra = _extra_state(config)
    trainer = Trainer(model, data_obj, train_cfg, run, extra_state=extra, show_progress=show_progress)
    state = trainer.resume()
    _check_hashes(state, extra, run)
    log(f"resuming {run.root} from step {state['step']}")
    return model, tok, trainer, config


def _model_and_data(run, config, train_cfg):
    """The run's model (untrained weights; shape, LoRA adapters and frozen parameters from
    config.json) and its data, as a resume or a rank > 0 rebuilds them."""
    from nanoframe.models import GPT, GPTConfig
    from nanoframe.nn.lora import apply_lora

    ft = config["finetune"]
    manual_seed(train_cfg.seed)
    model = GPT(GPTConfig.from_dict(config["model"]))
    if ft.get("lora"):
        apply_lora(model, **ft["lora"])
    elif ft.get("frozen"):
        freeze(model, ft["frozen"])           # parameter names hold no fnmatch wildcards
    data_dir = run.data_dir(config)           # before anything else reads config["data"]
    block, batch = model.config.block_size, train_cfg.batch_size
    if config["data"]["kind"] == "instructions":
        data_obj = D.InstructionData.load(data_dir, batch, train_cfg.seed, model.config.vocab_size, block)
    else:
        run.check_data(config, data_dir)
        data_obj = D.TokenData(data_dir, block, batch, seed=train_cfg.seed)
    return model, data_obj


def _follow(run):
    """A rank > 0: wait for rank 0 to prepare (or reopen) the run, rebuild its model and data from
    config.json, and train; rank 0 alone writes, so this returns the training summary only."""
    from nanoframe.training.pretrain import leader_config
    from nanoframe.training.trainer import Trainer

    job = dist.wait_for_leader()
    config = leader_config(run)
    train_cfg = TrainConfig.from_dict(config["train"])
    model, data_obj = _model_and_data(run, config, train_cfg)
    trainer = Trainer(model, data_obj, train_cfg, run, extra_state=_extra_state(config), show_progress=False)
    if job["resume"]:
        trainer.resume()
    return {**trainer.train(), "model": model}


def _extra_state(config):
    ft = config["finetune"]
    return {"tokenizer_sha256": config["tokenizer"].get("sha256"), "data_meta_sha256": (config.get("data") or {}).get("meta_sha256"),
            "lora": ft.get("lora"), "base": ft["base"], "finetune": ft["mode"]}


def _finish(run, model, tok, config, summary, seconds):
    """Leave the model at its best weights, write the LoRA adapter, and sum the run up."""
    from nanoframe.training.checkpoint import load_checkpoint
    from nanoframe.training.lora import save_adapter

    load_checkpoint(run.weights_folder(), model)
    ft = config["finetune"]
    adapter = None
    if ft.get("lora"):
        adapter = str(save_adapter(model, run.adapter_path, ft["lora"], base_sha256=ft["base"].get("weights_sha256")))
    vals = [r["val_loss"] for r in run.read_metrics() if "val_loss" in r]
    before, after = (vals[0] if vals else None), summary["best_val_loss"]
    trainable, total = count_parameters(model)
    return {
        **summary, "mode": ft["mode"], "val_loss_before": before, "val_loss_after": after,
        "improvement": None if before is None or not math.isfinite(after) else before - after,
        "trainable_parameters": trainable, "total_parameters": total, "seconds": seconds,
        "run": str(run.root), "adapter": adapter, "model": model, "tokenizer": tok,
    }


def count_parameters(model):
    """(trainable, total) scalar parameter counts, tied weights counted once."""
    params = list(model.parameters())
    return (sum(p.array.size for p in params if p.requires_grad), sum(p.array.size for p in params))


# ---- lora merge ----------------------------------------------------------------------------------------
def merge(base, adapter, out, *, tokenizer=None, force=False, log=_log):
    """Fold a LoRA adapter (a LoRA run folder or an adapter file) into its base, written as a new run
    folder of kind "merge" that `sample` and `finetune --from` read. The base must be the one the
    adapter was trained on (the SHA-256 of its weights, recorded in the adapter run), unless force."""
    from nanoframe.io import load_safetensors
    from nanoframe.models.hf import is_hf_folder
    from nanoframe.nn.lora import apply_lora, merge_lora
    from nanoframe.training.lora import load_adapter_tensors, read_adapter

    out_run, adapter = Run(out), Path(adapter)
    hf = is_hf_folder(base)
    adapter_file = adapter if adapter.is_file() else open_checkpoint(adapter)[1] / "model.safetensors"
    identity = {"base_weights_sha256": file_sha256(_weights_file(base, hf)), "adapter_sha256": file_sha256(adapter_file)}
    if not out_run.is_empty() and not (out_run.exists() and (out_run.trained_step() is None
                                                             or _same_merge(out_run, identity))):
        raise CheckpointError(f"{out} exists and is not empty; choose a new folder for the merged model")
    if adapter.is_file():
        lcfg, tensors, meta = read_adapter(adapter)
        recorded = meta.get("base_weights_sha256")
    else:
        arun, folder = open_checkpoint(adapter)
        from nanoframe.training.checkpoint import read_state

        astate = read_state(folder)
        if not astate.get("lora"):
            raise CheckpointError(f"{adapter} is not a LoRA run (its state.json has no \"lora\" entry)")
        lcfg = astate["lora"]
        tensors = {k: v for k, v in load_safetensors(folder / "model.safetensors").items()
                   if k.endswith((".lora_A", ".lora_B"))}
        recorded = (astate.get("base") or {}).get("weights_sha256")
    with out_run:                # refused at once if another merge writes there
        if not _same_merge(out_run, identity):
            out_run.reset()      # what an interrupted merge left (it wrote no best/ yet)
        model, tok, base_info = load_base(base, hf=hf, tokenizer=tokenizer if hf else None)
        if recorded and base_info["weights_sha256"] != recorded:
            if not force:
                raise CheckpointError(f"{base} is not the base {adapter} was trained on (the SHA-256 of its "
                                      "weights differs); force the merge to do it anyway")
            log(f"warning: merging into another base than {adapter} was trained on (forced)")
        apply_lora(model, **lcfg)
        load_adapter_tensors(model, tensors, str(adapter))
        merge_lora(model)
        for name, p in model.named_parameters():
            if not np.isfinite(p.array).all():
                raise CheckpointError(f"merging {adapter} gives non-finite weights in {name} (is its LoRA alpha "
                                      f"{lcfg['alpha']:g} sane?); nothing was written")
        save_run(out_run, model, tok, kind="merge",
                 extra_config={"merge": {"base": base_info, "adapter": str(adapter.resolve()), "lora": lcfg,
                                         **identity}},
                 extra_state={"base": base_info})
    return {"run": str(out_run.root), "model": model, "tokenizer": tok, "base": base_info}


def _weights_file(base, hf):
    """The weights file a base is loaded from (what its identity hash is taken of)."""
    if hf:
        return Path(base) / "model.safetensors"
    return open_checkpoint(base)[1] / "model.safetensors"


def _same_merge(run, identity):
    """True when `run` is a merge of this very base and adapter (a killed merge run again: the
    result is the same, so it may be written again)."""
    try:
        merge = run.read_config().get("merge") if run.config_path.is_file() else None
    except CheckpointError:
        return False
    return isinstance(merge, dict) and all(merge.get(k) == v for k, v in identity.items())


def generate_completion(model, tokenizer, prompt, max_new_tokens=32):
    """Greedy completion of a prompt, stopped at the end-of-text token (not included)."""
    ids = tokenizer.encode_ordinary(prompt)
    ids = ids[-model.config.block_size:]
    out = model.generate(np.asarray([ids], np.int64), max_new_tokens, temperature=0,
                         stop_tokens=tokenizer.eot_id)
    new = [t for t in np.asarray(out)[0, len(ids):].tolist() if t != tokenizer.eot_id]
    return tokenizer.decode(new)
