"""Pretraining a GPT into a run folder: the driver behind `nanoframe train`.

    corpus (files, folders, or the offline stdlib) -> tokenizer (trained, or a file)
      -> RUN/data/ token files (or a shared --data-dir) -> GPT(preset + overrides) -> Trainer

`pretrain(out, ...)` starts a run; `pretrain(out, resume=True)` continues one from its newest
good checkpoint, bit-identically, wherever the run folder has been moved.

Under mpiexec, rank 0 does all of the above that writes (the lock, tokenizer, data, config.json)
while the other ranks wait; then they read what it wrote and every rank trains (trainer.py).
"""
import sys
from pathlib import Path

from nanoframe import data as D
from nanoframe import distributed as dist
from nanoframe.tokenizer.loading import DEFAULT_VOCAB_SIZE
from nanoframe.errors import CheckpointError, ConfigError, DataError
from nanoframe.models import GPT, GPTConfig
from nanoframe.random import manual_seed
from nanoframe.training.config import TrainConfig, choose_preset
from nanoframe.training.run import Run, migrate_legacy
from nanoframe.training.trainer import Trainer


def _log(msg):
    print(msg, file=sys.stderr)


def pretrain(out, data=(), *, data_dir=None, glob="**/*.txt", tokenizer=None, vocab_size=DEFAULT_VOCAB_SIZE, preset=None,
             model_overrides=None, train_overrides=None, resume=False, show_progress=True, log=_log, arch=None):
    """Pretrain (or with resume=True continue) the run in folder `out`; returns a summary dict with
    the trained "model" and its "tokenizer".

    data: text files/folders (default: the Python standard library, offline). data_dir: a folder
    written by `nanoframe prepare` instead. tokenizer: "bpe", "char" or a tokenizer file (default:
    bpe for the stdlib, char for files). model_overrides / train_overrides: GPTConfig / TrainConfig
    fields over the preset ("default" for the stdlib, "tiny" for files). arch: "gpt2" or "llama"
    applied over the preset's shape (training.config.choose_preset). On resume only training
    fields may change, and data_dir may point to where a shared data folder has moved.
    """
    if dist.get_rank() > 0:
        return _follow(Run(out))
    with dist.leading():
        return _lead(out, data, data_dir, glob, tokenizer, vocab_size, preset, arch, model_overrides,
                     train_overrides, resume, show_progress, log)


def _lead(out, data, data_dir, glob, tokenizer, vocab_size, preset, arch, model_overrides, train_overrides, resume,
          show_progress, log):
    run = Run(out)
    model_overrides, train_overrides = dict(model_overrides or {}), dict(train_overrides or {})
    if resume:
        return _resume(run, data_dir, model_overrides, train_overrides, show_progress, log)
    preset_model, preset_train = choose_preset(preset, arch, stdlib=not data and not data_dir)
    run.check_writable_target()
    with run:
        run.reset()                      # refused if the folder holds trained weights
        if data_dir is None:
            data_dir = run.own_data_dir
            train, val, source = _corpus(data, glob)
            tok = _tokenizer(tokenizer, train + val if tokenizer == "char" or (tokenizer is None and data) else train,
                             data, vocab_size, show_progress, log)
            D.prepare(train, val, tok, data_dir, source, show_progress=show_progress)
        elif data or tokenizer is not None:
            raise ConfigError("a prepared data folder carries its tokenizer: give the data folder alone, "
                              "without text files or a tokenizer")
        meta = D.load_meta(data_dir)
        tok_sha = run.install_tokenizer(D.tokens.tokenizer_path(data_dir, meta))
        tok = run.load_tokenizer()
        if meta.get("tokenizer_sha256") not in (None, tok_sha):
            raise DataError(f"{data_dir}: its tokenizer file is not the one meta.json was written with; prepare it again")
        model_cfg = GPTConfig.from_dict({**preset_model, "vocab_size": meta["vocab_size"], **model_overrides})
        train_cfg = TrainConfig.from_dict({**preset_train, **train_overrides})
        config = run.write_config({"kind": "pretrain", "model": model_cfg.to_dict(), "train": train_cfg.to_dict(),
                                   "tokenizer": {"file": "tokenizer.json", "sha256": tok_sha},
                                   "data": run.data_record(data_dir, "tokens", meta.get("source", ""))})
        return _train(run, config, data_dir, tok, None, show_progress, log)


def _resume(run, data_dir, model_overrides, train_overrides, show_progress, log):
    if not run.exists():
        raise CheckpointError(f"cannot resume {run.root}: it is not a nanoframe run")
    with run:
        config = run.read_config()
        if config["kind"] != "pretrain":
            raise CheckpointError(f"{run.root} is a {config['kind']} run: resume it as a fine-tune")
        run.check_resumable(config, train_overrides)
        if config.get("legacy"):
            config = migrate_legacy(run, config)
        saved = GPTConfig.from_dict(config["model"]).to_dict()     # a config from before a field existed: its default
        changed = sorted(k for k, v in model_overrides.items() if saved.get(k) != v)
        if changed:
            raise ConfigError(f"the run in {run.root} has another model config; cannot change {changed} on resume")
        run.check_model_config(config)
        train_cfg = TrainConfig.from_dict({**config["train"], **train_overrides})
        moved = data_dir is not None
        data_dir = run.data_dir(config, data_dir)
        run.check_data(config, data_dir)
        if moved:                        # a shared data folder given at its new place: remember it
            config["data"] = run.data_record(data_dir, "tokens", (config.get("data") or {}).get("source", ""))
        config["train"] = train_cfg.to_dict()
        run.write_config(config)
        tok = run.load_tokenizer(config["tokenizer"].get("sha256"))
        return _train(run, config, data_dir, tok, "resume", show_progress, log)


def _follow(run):
    """A rank > 0: wait for rank 0 to prepare the run, then train from what it wrote."""
    job = dist.wait_for_leader()
    config = leader_config(run, job["data_dir"])
    tok = run.load_tokenizer(config["tokenizer"].get("sha256"))
    return _train(run, config, Path(job["data_dir"]), tok, job["resume"], False, lambda msg: None)


def leader_config(run, data_dir=None):
    """A rank > 0: the config.json (and data folder) that rank 0 has just written, or one line
    saying why this rank cannot see them (on another machine without the shared filesystem)."""
    missing = [str(p) for p in (run.config_path, data_dir) if p is not None and not Path(p).exists()]
    if missing:
        raise CheckpointError(f"this machine ({dist.hostname()}) cannot see {missing[0]}, which rank 0 wrote: the "
                              "run folder and the data must be on a filesystem that every machine mounts at the "
                              "same path")
    return run.read_config()


def _train(run, config, data_dir, tok, resume, show_progress, log):
    dist.release_followers({"data_dir": str(Path(data_dir).resolve()), "resume": bool(resume)})
    model_cfg, train_cfg = GPTConfig.from_dict(config["model"]), TrainConfig.from_dict(config["train"])
    if tok.vocab_size > model_cfg.vocab_size:
        raise ConfigError(f"the tokenizer has {tok.vocab_size} tokens but vocab_size is {model_cfg.vocab_size}")
    manual_seed(train_cfg.seed)
    model = GPT(model_cfg)
    data = D.TokenData(data_dir, model_cfg.block_size, train_cfg.batch_size, seed=train_cfg.seed)
    extra = {"tokenizer_sha256": config["tokenizer"].get("sha256"), "data_meta_sha256": (config.get("data") or {}).get("meta_sha256")}
    trainer = Trainer(model, data, train_cfg, run, extra_state=extra, show_progress=show_progress)
    if resume:
        state = trainer.resume()
        _check_hashes(state, extra, run)
        log(f"resuming {run.root} from step {state['step']}")
    log(f"model: {model.num_parameters(non_embedding=False):,} parameters "
        f"({model.num_parameters(non_embedding=True):,} non-embedding); {model_cfg}")
    log(f"data: {data.describe()}")
    summary = trainer.train()
    return {**summary, "model": model, "tokenizer": tok, "run": str(run.root)}


def _check_hashes(state, current, run):
    """A checkpoint records the tokenizer and data it was trained on; refuse to continue on others."""
    for key, what in (("tokenizer_sha256", "tokenizer"), ("data_meta_sha256", "data folder (meta.json)")):
        if state.get(key) and current.get(key) and state[key] != current[key]:
            raise CheckpointError(f"the checkpoint in {run.root} was trained with another {what} than the run now "
                                  "has; restore the original or start a new run")


def _corpus(data, glob):
    """(train_docs, val_docs, source) for data paths, or the stdlib corpus when none are given."""
    if data:
        docs = list(D.documents(D.find_files(data, glob)))
        train, val = D.split_documents(docs)
        return train, val, "files: " + ", ".join(str(p) for p in data)
    return D.stdlib_corpus()


def _tokenizer(spec, docs, data, vocab_size, show_progress, log):
    """A tokenizer from a file path, or trained now ("bpe" / "char") on the given docs."""
    kind = spec or ("char" if data else "bpe")
    if kind not in ("bpe", "char"):
        return D.load_tokenizer(kind)
    log(f"training a {kind} tokenizer" + (f" (vocab {vocab_size})" if kind == "bpe" else ""))
    return D.train_tokenizer(kind, docs, vocab_size, show_progress=show_progress)

