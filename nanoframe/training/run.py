"""The run folder and the one object that owns it.

    RUN/
      config.json          what the run is: one versioned schema for pretraining, fine-tuning and
                           merges (model, training, data, tokenizer hash, fine-tune base and mode)
      tokenizer.json       always a copy: the run samples and resumes wherever it is moved
      data/                token files (train.bin, val.bin, meta.json) or packed instructions
      metrics.jsonl        one JSON line per logged step and per evaluation
      checkpoints/step_NNNNNN/   the last few step checkpoints (see checkpoint.py)
      best/                the best weights on validation
      adapter.safetensors  a LoRA run's best adapter alone
      .nanoframe.lock      held (flock) by the one process that trains, fine-tunes or merges into it

Every path stored in the run is relative to RUN, so a run can be renamed, moved or copied. Only
one process writes a run at a time; a second one is refused before it touches anything. A folder
that exists, is not empty and is not a nanoframe run is never written into. Every file is written
atomically, and a crash at any instant leaves the last good state: `recover` finishes an
interrupted best/ swap, a partial last line of metrics.jsonl is dropped with a warning, stray
folders in checkpoints/ are ignored, and a damaged latest checkpoint falls back to the one before.
"""
import json
import math
import os
import re
import shutil
import stat
import warnings
from pathlib import Path

from nanoframe.errors import CheckpointError, ConfigError, DataError, bounded
from nanoframe.io import atomic_open, atomic_write_text, file_sha256, read_json
from nanoframe.schema import field
from nanoframe.training import checkpoint as ckpt

FORMAT, VERSION = "nanoframe.run", 1
CONFIG, TOKENIZER, METRICS, DATA = "config.json", "tokenizer.json", "metrics.jsonl", "data"
CHECKPOINTS, BEST, ADAPTER, LOCK = "checkpoints", "best", "adapter.safetensors", ".nanoframe.lock"
KINDS = ("pretrain", "finetune", "merge")
_STEP_DIR = re.compile(r"step_(\d{6,})")


class RunWarning(UserWarning):
    """Something in a run folder was repaired or skipped (a partial metrics line, a damaged
    checkpoint); the run goes on."""


def warn(message):
    warnings.warn(message, RunWarning, stacklevel=2)


class RunLockedError(CheckpointError):
    """Another process holds the run's lock."""


class Run:
    """A run folder: its layout, lock, config.json, tokenizer copy, metrics and checkpoints."""

    def __init__(self, root):
        self.root = Path(root)
        self._lock_file = None

    def __repr__(self):
        return f"Run({str(self.root)!r})"

    # ---- layout ---------------------------------------------------------------------------------
    @property
    def config_path(self):
        return self.root / CONFIG

    @property
    def tokenizer_path(self):
        return self.root / TOKENIZER

    @property
    def metrics_path(self):
        return self.root / METRICS

    @property
    def best_dir(self):
        return self.root / BEST

    @property
    def adapter_path(self):
        return self.root / ADAPTER

    @property
    def own_data_dir(self):
        return self.root / DATA

    def checkpoint_dir(self, step):
        return self.root / CHECKPOINTS / f"step_{step:06d}"

    # ---- what the folder is -----------------------------------------------------------------------
    def exists(self):
        """True when the folder is a nanoframe run (versioned, 0.1's layout, or one we started)."""
        if (self.root / LOCK).is_file() or self.config_path.is_file():
            return True
        return bool(self.list_checkpoints()) or ckpt.is_complete(self.best_dir)

    def check_writable_target(self):
        """Refuse a folder that exists, is not empty and is not a nanoframe run."""
        if self.root.is_symlink() and not self.root.exists():
            raise CheckpointError(f"{self.root} is a symbolic link to {os.readlink(self.root)}, which does not exist")
        if self.root.exists() and not self.root.is_dir():
            raise CheckpointError(f"{self.root} is a file, not a folder")
        if self.root.is_dir() and not self.exists() and not self._only_prepared_data():
            raise CheckpointError(f"{self.root} exists, is not empty and is not a nanoframe run; "
                                  "choose another folder (nanoframe never writes into a folder it does not own)")
        if self.config_path.is_file():
            self.read_config()       # a damaged config.json is reported before anything is written

    def is_empty(self):
        """True when the folder does not exist or holds nothing but (possibly) our lock file."""
        return not self.root.exists() or (self.root.is_dir() and all(e.name == LOCK for e in self.root.iterdir()))

    def _only_prepared_data(self):
        """True for an empty folder, or one holding nothing but data/ with a nanoframe meta.json
        (what the Python API prepares before it hands the folder to a Trainer)."""
        entries = list(self.root.iterdir())
        if not entries:
            return True
        return [e.name for e in entries] == [DATA] and (self.own_data_dir / "meta.json").is_file()

    # ---- the lock ---------------------------------------------------------------------------------
    def lock(self):
        """Take the run's exclusive lock (creating the folder); refuse at once if another process has it.

        fcntl.flock where there is one (released by the kernel when the process dies, kill -9
        included); elsewhere an O_EXCL lock file that records the pid and is taken over when stale."""
        if self._lock_file is not None:
            return self
        self.root.mkdir(parents=True, exist_ok=True)
        path = self.root / LOCK
        try:
            import fcntl
        except ImportError:
            self._lock_file = _pid_lock(path)
            self.recover()
            return self
        f = _open_lock_file(path)
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            f.seek(0)
            holder = f.read().strip()[:20]
            f.close()
            raise RunLockedError(f"{self.root} is in use by another nanoframe process (pid {holder or '?'}); "
                                 "wait for it to finish or choose another folder") from None
        f.seek(0)
        f.truncate()
        f.write(f"{os.getpid()}\n")
        f.flush()
        self._lock_file = f
        self.recover()
        return self

    def unlock(self):
        f, self._lock_file = self._lock_file, None
        if f is None:
            return
        if isinstance(f, Path):
            f.unlink(missing_ok=True)
        else:
            f.close()                  # closing the descriptor releases the flock

    @property
    def locked(self):
        return self._lock_file is not None

    def __enter__(self):
        return self.lock()

    def __exit__(self, *exc):
        self.unlock()
        return False

    def recover(self):
        """Repair what a crash can leave (under the lock): an interrupted best/ or checkpoint swap,
        leftover temporary files."""
        ckpt.recover(self.best_dir)
        root = self.root / CHECKPOINTS
        if root.is_dir():
            for p in root.iterdir():
                if p.is_dir() and p.name.endswith((".tmp", ".old")) and _STEP_DIR.fullmatch(p.name[:-4]):
                    ckpt.recover(p.with_name(p.name[:-4]))
        for p in self.root.glob(".*.tmp"):
            p.unlink(missing_ok=True)

    # ---- config.json ------------------------------------------------------------------------------
    def write_config(self, config):
        """Write config.json (atomically) after validating it."""
        config = {"format": FORMAT, "version": VERSION, **config}
        _validate_config(config, str(self.config_path))
        atomic_write_text(self.config_path, json.dumps(config, indent=2, allow_nan=False) + "\n")
        return config

    def read_config(self):
        """The validated config.json; a run written by nanoframe 0.1 is read into today's schema
        (its absolute paths kept, marked "legacy")."""
        where = str(self.config_path)
        raw = read_json(self.config_path, f"{self.root} is not a nanoframe run (no {CONFIG})", CheckpointError)
        if isinstance(raw, dict) and "format" not in raw and "model" in raw:
            raw = _from_legacy(raw)
        _validate_config(raw, where)
        return raw

    # ---- tokenizer ----------------------------------------------------------------------------------
    def install_tokenizer(self, source):
        """Copy a tokenizer file (or save a tokenizer object) into the run; returns its SHA-256."""
        if isinstance(source, (str, os.PathLike)):
            with open(source, "rb") as src, atomic_open(self.tokenizer_path, "wb") as dst:
                shutil.copyfileobj(src, dst)
        else:
            source.save(self.tokenizer_path)
        return file_sha256(self.tokenizer_path)

    def load_tokenizer(self, expected_sha=None, config=None):
        """The run's tokenizer, checked against the hash recorded when the run (or checkpoint) was made."""
        from nanoframe.data import load_tokenizer

        path = self.tokenizer_path
        if config is not None and config.get("legacy"):
            path = Path(config["tokenizer"]["file"])
        if not path.is_file():
            raise CheckpointError(f"{self.root} has no {TOKENIZER}: the run cannot be sampled or resumed")
        if expected_sha and file_sha256(path) != expected_sha:
            raise CheckpointError(f"{path} is not the tokenizer this run was trained with (its SHA-256 differs); "
                                  "restore the original file")
        return load_tokenizer(path)

    # ---- data ----------------------------------------------------------------------------------------
    def data_dir(self, config, override=None):
        """The data folder of a run: its own data/, or the shared folder it was started on (stored
        relative to the run, with the absolute path as a fallback); `override` when moved."""
        data = config.get("data")
        if override is not None:
            return Path(override)
        if data is None:
            raise CheckpointError(f"{self.config_path} records no data folder: the run cannot be resumed "
                                  "from the command line (pass --data-dir)")
        candidates = [self.root / data["dir"]] + ([Path(data["dir_absolute"])] if data.get("dir_absolute") else [])
        existing = [c for c in candidates if c.is_dir()]
        recorded = data.get("meta_sha256")
        for c in existing:           # a copied run may sit next to another project's folder of that name
            if recorded and (c / "meta.json").is_file() and file_sha256(c / "meta.json") == recorded:
                return c
        if existing:
            return existing[0]       # check_data says why it is not the one
        raise DataError(f"the data folder of {self.root} ({data['dir']}) is gone; give the data folder's new place to resume")

    def data_record(self, data_dir, kind, source=""):
        """config.json's "data" entry for a data folder: its path relative to the run (plus the
        absolute path when it lies outside, as a fallback) and the SHA-256 of its meta.json."""
        d = Path(data_dir).resolve()
        record = {"kind": kind, "dir": os.path.relpath(d, self.root.resolve()), "source": source}
        if not d.is_relative_to(self.root.resolve()):
            record["dir_absolute"] = str(d)
        if (d / "meta.json").is_file():
            record["meta_sha256"] = file_sha256(d / "meta.json")
        return record

    def trained_step(self):
        """The step of the weights this run could resume or is the product of (its newest step
        checkpoint, or the best/ of a merge), or None. The best/ of an attempt interrupted before its
        first step checkpoint does not count: that attempt cannot be resumed, only started again."""
        last = self.last_step()
        if last is not None:
            return last
        best = ckpt.readable(self.best_dir)
        if best is None:
            return None
        try:
            step = ckpt.read_state(best)["step"]
        except CheckpointError:
            return None
        kind = None
        if self.config_path.is_file():
            try:
                kind = self.read_config()["kind"]
            except CheckpointError:
                pass
        return step if kind == "merge" else None

    def check_fresh_start(self):
        """Refuse to start a new run over one that holds trained weights."""
        step = self.trained_step()
        if step is not None:
            raise CheckpointError(f"{self.root} already holds a run (weights of step {step}): resume it, or choose "
                                  "another folder for a new run")

    def check_resumable(self, config, train_overrides):
        """Before anything is written for a resume: a step checkpoint to continue from, training
        options that can apply from there (not a max_iters below it, not a seed it would ignore)."""
        last = None
        for folder in reversed(self.list_checkpoints()):   # the newest one a resume can start from
            try:
                last = ckpt.read_state(folder)["step"]
                break
            except CheckpointError:
                continue
        if last is None:
            raise CheckpointError(f"cannot resume {self.root}: it has no step checkpoint yet (it was interrupted "
                                  "before the first); start it again from the beginning")
        if "max_iters" in train_overrides and train_overrides["max_iters"] < last:
            raise ConfigError(f"max_iters {train_overrides['max_iters']} is below step {last}, which the run in "
                              f"{self.root} has reached; give a larger max_iters to train on")
        seed = (config.get("train") or {}).get("seed")
        if "seed" in train_overrides and train_overrides["seed"] != seed:
            raise ConfigError(f"the seed of {self.root} is {seed}; a resumed run continues from the random states of "
                              "its checkpoint, so another seed would be ignored")

    def reset(self):
        """Start over in a run with nothing to resume (an attempt interrupted before its first step
        checkpoint, or a merge interrupted before it wrote best/). The best/ such an attempt may have
        written is kept as best.interrupted (with a warning), never deleted; the rest goes."""
        self.check_fresh_start()
        best = ckpt.readable(self.best_dir)
        if best is not None and ckpt.read_state(best)["step"] > 0:
            kept = self.root / (BEST + ".interrupted")
            shutil.rmtree(kept, ignore_errors=True)
            os.replace(best, kept)
            warn(f"kept the best weights of the interrupted attempt (step {ckpt.read_state(kept)['step']}) "
                 f"as {kept}")
        for name in (BEST, BEST + ".old", BEST + ".tmp"):
            shutil.rmtree(self.root / name, ignore_errors=True)
        self.adapter_path.unlink(missing_ok=True)
        self.metrics_path.unlink(missing_ok=True)

    def check_data(self, config, data_dir):
        """Refuse a data folder that is not the one the run was started on: re-prepared (meta.json
        changed) or tokenized with another tokenizer."""
        from nanoframe.data import load_meta

        meta_path = Path(data_dir) / "meta.json"
        meta = load_meta(data_dir)
        tok_sha = config["tokenizer"].get("sha256")
        if tok_sha and meta.get("tokenizer_sha256") not in (None, tok_sha):
            raise DataError(f"{meta_path}: the data was prepared with another tokenizer than the run's "
                            f"({self.tokenizer_path}); it would train on garbage. Re-prepare it or start a new run")
        recorded = (config.get("data") or {}).get("meta_sha256")
        if recorded and file_sha256(meta_path) != recorded:
            raise DataError(f"{meta_path} changed since this run started (the folder was re-prepared); "
                            "resuming would train on other tokens. Restore it or start a new run")
        return meta

    # ---- metrics -------------------------------------------------------------------------------------
    def log_metrics(self, record):
        with open(self.metrics_path, "a", encoding="utf-8") as f:
            f.write(json.dumps(record, allow_nan=False) + "\n")

    def read_metrics(self):
        """The records of metrics.jsonl. A partial last line (what a full disk or a crash leaves) and
        malformed lines are skipped with a warning naming the file and line."""
        path = self.metrics_path
        if not path.is_file():
            return []
        records = []
        with open(path, "rb") as f:
            for lineno, line in enumerate(f, 1):
                if not line.strip():
                    continue
                last = not line.endswith(b"\n")     # no newline after it: cut off mid-write
                try:
                    rec = json.loads(line.decode("utf-8"))
                    field(rec, "step", f"{path}:{lineno}", int, low=0)
                except (ValueError, RecursionError):
                    warn(f"{path}:{lineno}: {'dropped a partial last line' if last else 'skipped a malformed line'}")
                    continue
                records.append(rec)
        return records

    def truncate_metrics(self, step):
        """Keep the records of steps before `step` (a resumed run redoes the rest); atomic."""
        keep = [r for r in self.read_metrics() if r["step"] < step]
        atomic_write_text(self.metrics_path, "".join(json.dumps(r) + "\n" for r in keep))

    # ---- checkpoints -------------------------------------------------------------------------------
    def list_checkpoints(self):
        """Complete step checkpoints, oldest first; other folders (step_000030.bak, copies) are ignored."""
        root = self.root / CHECKPOINTS
        if not root.is_dir():
            return []
        found = []
        for p in root.iterdir():
            m = _STEP_DIR.fullmatch(p.name)
            if m and p.is_dir() and ckpt.is_complete(p):
                found.append((int(m.group(1)), p))
        return [p for _, p in sorted(found)]

    def save_checkpoint(self, step, model, optimizer, state, keep):
        folder = ckpt.save_checkpoint(self.checkpoint_dir(step), model, optimizer, state)
        for old in self.list_checkpoints()[:-keep]:
            shutil.rmtree(old, ignore_errors=True)
        return folder

    def save_best(self, model, state):
        return ckpt.save_checkpoint(self.best_dir, model, None, state)

    def load_latest(self, model, optimizer):
        """(folder, state) of the newest step checkpoint that loads; a damaged one is skipped with a
        warning naming it and the one used instead."""
        found = self.list_checkpoints()
        if not found:
            raise CheckpointError(f"{self.root} has no checkpoint to resume from")
        failed = None
        for folder in reversed(found):
            try:
                _, state = ckpt.load_checkpoint(folder, model, optimizer)
            except CheckpointError as e:
                warn(f"{folder} is damaged ({bounded(e, 200)}); trying the checkpoint before it")
                failed = failed or folder
                continue
            if failed is not None:
                warn(f"resuming from {folder} instead of the damaged {failed}")
                for newer in found[found.index(folder) + 1:]:
                    damaged = newer.with_name(newer.name + ".damaged")      # kept, but never latest again
                    if not damaged.exists():
                        os.replace(newer, damaged)
            return folder, state
        raise CheckpointError(f"no checkpoint of {self.root} can be loaded (the newest, {found[-1]}, and every "
                              "earlier one are damaged)")

    def check_model_config(self, config):
        """Before a model is allocated from config.json to resume: the newest checkpoint whose
        state.json and weight shapes are sound must have been trained with the same model (and LoRA)
        config, so nothing is allocated from a config.json that a file does not back."""
        lora = (config.get("finetune") or {}).get("lora")
        for folder in reversed(self.list_checkpoints()):
            try:
                state = ckpt.read_state(folder)
                ckpt.check_fit(folder, state)
            except CheckpointError:
                continue                   # load_latest reports it (and falls back) when it gets there
            if not _same_model(state["model_config"], config["model"]) or (state.get("lora") or None) != (lora or None):
                raise CheckpointError(f"{self.config_path}: the model config differs from the one {folder} was "
                                      "trained with; restore config.json")
            return
        raise CheckpointError(f"no checkpoint of {self.root} can be loaded (every one is damaged)")

    def weights_folder(self):
        """The checkpoint to sample or fine-tune from: best/ (or best.old mid-swap), else the newest step."""
        best = ckpt.readable(self.best_dir)
        if best is not None:
            return best
        found = self.list_checkpoints()
        if found:
            return found[-1]
        raise CheckpointError(f"{self.root} holds no complete checkpoint")

    def last_step(self):
        found = self.list_checkpoints()
        return int(_STEP_DIR.fullmatch(found[-1].name).group(1)) if found else None


def save_run(folder, model, tokenizer, kind="merge", extra_config=None, extra_state=None):
    """Write `model` and `tokenizer` as a new run folder holding best/ only: a starting point that
    `nanoframe sample`, `finetune --from` and `load_for_inference` read (a LoRA model keeps its
    adapters). `folder` must be new or empty, or a Run whose lock the caller holds.

    kind "merge" (the default) is config.json's kind for weights written as they are rather than
    trained in the folder: it needs no training config, and its best/ counts as trained weights, so
    a later `train --out` there is refused instead of deleting them. (The default was "pretrain",
    whose schema requires a training config, so save_run(folder, model, tok) always failed.)"""
    from nanoframe.nn.lora import lora_config_of

    run = folder if isinstance(folder, Run) else Run(folder)
    owns_lock = not run.locked
    if owns_lock:
        if not run.is_empty():
            raise CheckpointError(f"{run.root} exists and is not empty; choose a new folder")
        run.lock()
    try:
        sha = run.install_tokenizer(tokenizer)
        config = run.write_config({"kind": kind, "model": model.config.to_dict(),
                                   "tokenizer": {"file": TOKENIZER, "sha256": sha}, **(extra_config or {})})
        run.save_best(model, {"step": 0, "model_config": model.config.to_dict(), "tokenizer_sha256": sha,
                              "lora": lora_config_of(model), **(extra_state or {})})
    finally:
        if owns_lock:
            run.unlock()
    return run, config


def _same_model(a, b):
    """Two model_config dicts describe one model: compared with their defaults filled in, so a run
    written before a GPTConfig field existed matches the checkpoints written after."""
    from nanoframe.models.gpt import GPTConfig

    return GPTConfig.from_dict(a) == GPTConfig.from_dict(b)


# ---- opening runs and checkpoints for reading ------------------------------------------------------
def open_checkpoint(path):
    """(run, folder) for a run folder (best/ preferred, else the newest step) or a checkpoint folder
    inside a run (RUN/best, RUN/checkpoints/step_N)."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"no such run or checkpoint: {path}")
    if ckpt.is_complete(path):
        parent = path.parent.parent if path.parent.name == CHECKPOINTS else path.parent
        return Run(parent), path
    run = Run(path)
    if not run.exists():
        raise CheckpointError(f"{path} is neither a nanoframe run nor a checkpoint folder")
    return run, run.weights_folder()


def load_for_inference(path, merge=False):
    """(model, tokenizer, state, folder) of a run or checkpoint, every file validated. A LoRA run
    comes back as base + adapters (merged into plain Linears with merge=True)."""
    from nanoframe.nn.lora import merge_lora

    run, folder = open_checkpoint(path)
    model, state = ckpt.load_checkpoint(folder)
    config = run.read_config() if run.config_path.is_file() else None
    if config is None and state.get("tokenizer"):            # a 0.1 checkpoint: absolute tokenizer path
        config = _from_legacy({"model": state["model_config"], "tokenizer": state["tokenizer"]})
    if config is None:
        raise CheckpointError(f"{folder} is not inside a run folder with its {TOKENIZER}")
    tok = run.load_tokenizer(state.get("tokenizer_sha256"), config)
    frozen = set((config.get("finetune") or {}).get("frozen") or ())
    for name, p in model.named_parameters():         # a frozen fine-tune reports what it trained
        if name in frozen:
            p.requires_grad_(False)
    if tok.vocab_size > model.config.vocab_size:
        raise CheckpointError(f"{run.tokenizer_path} has {tok.vocab_size} tokens but the model only "
                              f"{model.config.vocab_size}")
    if merge and state.get("lora"):
        merge_lora(model)
    return model, tok, state, folder


# ---- schema ---------------------------------------------------------------------------------------------
def _validate_config(config, where):
    """config.json's schema: every field typed and in range (CheckpointError naming file and field)."""
    from nanoframe.models.gpt import GPTConfig
    from nanoframe.training.config import TrainConfig

    err = CheckpointError
    if not isinstance(config, dict):
        raise err(f"{where}: expected a JSON object, got {type(config).__name__}")
    bad = _non_finite(config)
    if bad:
        raise err(f"{where}: field {bad!r} is not a finite number")
    if not config.get("legacy"):
        field(config, "format", where, str, choices={FORMAT}, error=err)
        field(config, "version", where, int, choices={VERSION}, error=err)
    field(config, "kind", where, str, choices=set(KINDS), error=err)
    trains = config.get("kind") in ("pretrain", "finetune")      # a merge has no training config
    for key, cls in (("model", GPTConfig), ("train", TrainConfig)):
        d = field(config, key, where, dict, optional=key == "train" and not trains, error=err)
        if d is not None:
            try:
                cls.from_dict(d)
            except (ConfigError, TypeError, ValueError) as e:
                raise err(f"{where}: field {key!r}: {bounded(e)}") from None
    tok = field(config, "tokenizer", where, dict, error=err)
    field(tok, "file", f"{where}: tokenizer", str, error=err)
    field(tok, "sha256", f"{where}: tokenizer", str, optional=True, none_ok=True, error=err)
    data = field(config, "data", where, dict, optional=True, none_ok=True, error=err)
    if data is not None:
        field(data, "kind", f"{where}: data", str, choices={"tokens", "instructions"}, error=err)
        field(data, "dir", f"{where}: data", str, error=err)
        for key in ("dir_absolute", "meta_sha256", "source"):
            field(data, key, f"{where}: data", str, optional=True, none_ok=True, error=err)
    ft = field(config, "finetune", where, dict, optional=config["kind"] != "finetune",
               none_ok=config["kind"] != "finetune", error=err)
    if ft is not None:
        field(ft, "mode", f"{where}: finetune", str, choices={"full", "frozen", "lora"}, error=err)
        frozen = field(ft, "frozen", f"{where}: finetune", list, optional=True, default=[], error=err)
        if not all(isinstance(n, str) for n in frozen):
            raise err(f"{where}: finetune: field 'frozen' must be a list of parameter names, "
                      f"got {bounded(repr(frozen), 80)}")
        field(ft, "val_fraction", f"{where}: finetune", float, optional=True, low=0.0, high=0.9, error=err)
        base = field(ft, "base", f"{where}: finetune", dict, error=err)
        field(base, "kind", f"{where}: finetune.base", str, choices={"nanoframe", "hf"}, error=err)
        field(base, "weights_sha256", f"{where}: finetune.base", str, optional=True, error=err)


def _non_finite(node, path=""):
    """The dotted path of the first NaN or inf anywhere in a JSON value, or None."""
    if isinstance(node, float) and not math.isfinite(node):
        return path or "<root>"
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for k, v in items:
        found = _non_finite(v, f"{path}.{k}" if path else str(k))
        if found:
            return found
    return None


def _from_legacy(raw):
    """A nanoframe 0.1 config.json (absolute paths, two schemas) in today's schema, marked legacy."""
    kind = "finetune" if raw.get("finetune") else "pretrain"
    tok = raw.get("tokenizer")
    out = {"legacy": True, "kind": kind, "model": raw.get("model"), "train": raw.get("train"),
           "tokenizer": {"file": tok if isinstance(tok, str) else "", "sha256": None}}
    if isinstance(raw.get("data_dir"), str):
        out["data"] = {"kind": "tokens", "dir": raw["data_dir"]}
    if kind == "finetune" and isinstance(raw.get("base"), dict):
        out["finetune"] = {"mode": "lora" if raw.get("lora") else "full",
                           "base": {"kind": raw["base"].get("kind", "nanoframe")}}
    return out


def migrate_legacy(run, config):
    """Bring a run written by nanoframe 0.1 to today's schema (under its lock): its tokenizer is
    copied in and its data folder recorded relative to it. Its checkpoints load as they are."""
    src = Path(config["tokenizer"]["file"])
    if config["kind"] != "pretrain":
        raise CheckpointError(f"{run.root} is a fine-tune written by nanoframe 0.1, which cannot be resumed; "
                              "sample it or fine-tune from it instead")
    if not src.is_file():
        raise CheckpointError(f"{run.root} was written by nanoframe 0.1 and its tokenizer {src} is gone")
    sha = run.install_tokenizer(src)
    data_dir = Path(config["data"]["dir"])
    return run.write_config({"kind": "pretrain", "model": config["model"], "train": config["train"],
                             "tokenizer": {"file": TOKENIZER, "sha256": sha},
                             "data": run.data_record(data_dir, "tokens") if data_dir.is_dir()
                             else {"kind": "tokens", "dir": str(data_dir)}})


def _open_lock_file(path):
    """The lock file opened for reading and writing, created if missing; never through a symlink
    (a planted link would make the pid overwrite another file) and never anything but a regular file."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0), 0o644)
    except OSError as e:
        raise CheckpointError(f"cannot open the lock file {path}: {e.strerror}"
                              + (" (it is a symbolic link; remove it)" if os.path.islink(path) else "")) from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise CheckpointError(f"the lock file {path} is not a regular file; remove it")
    return os.fdopen(fd, "r+")


def _pid_lock(path):
    """Where fcntl is missing: an O_EXCL lock file holding our pid, taken over when its pid is gone."""
    for _ in range(2):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            try:
                pid = int(path.read_text().strip())
                os.kill(pid, 0)
            except (ValueError, OSError):
                path.unlink(missing_ok=True)     # stale: its process is gone
                continue
            raise RunLockedError(f"{path.parent} is in use by another nanoframe process (pid {pid}); "
                                 "wait for it to finish or choose another --out") from None
        os.write(fd, f"{os.getpid()}\n".encode())
        os.close(fd)
        return path
    raise RunLockedError(f"could not take the lock {path}")
