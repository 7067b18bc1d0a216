"""The `nanoframe` command: tokenizer, prepare, train, finetune, lora merge, sample, info, plot.

The command only parses arguments and calls the library (training/pretrain.py, finetune.py,
run.py). Every error a user can cause (a nanoframe.errors.NanoframeError: a missing file, an empty
corpus, a bad option or file) ends with one line on stderr and exit code 2, as do operating-system
errors (a full disk, a permission); anything else is a bug in nanoframe and keeps its traceback.
Set NANOFRAME_DEBUG=1 to see the traceback of a user error too.

`mpiexec -n N nanoframe train|finetune ...` trains on N processes (nanoframe.distributed): rank 0
prints and writes; an error is printed once (by the rank it happened on) and the process leaves
without MPI_Finalize, so mpiexec stops the whole job instead of leaving ranks waiting.
"""
import argparse
import json
import math
import os
import sys
import textwrap
import time
import warnings
from dataclasses import fields

import numpy as np

from nanoframe.tokenizer.loading import DEFAULT_VOCAB_SIZE
from nanoframe.errors import NanoframeError, bounded

DEFAULT_RUN = "runs/default"
# what `nanoframe sample` draws by default, and the sample printed after training
SAMPLE = {"max_new_tokens": 200, "temperature": 0.8, "top_k": 50}


class UsageError(NanoframeError):
    """A bad command line."""


class _Parser(argparse.ArgumentParser):
    """argparse with errors on one line (not usage + message)."""

    def error(self, message):
        raise UsageError(f"{message} (see `{self.prog} --help`)")


# ---- option types: every number is checked where it is parsed ---------------------------------------
def _int_at_least(low):
    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be >= {low}, got {value}")
        return value
    return parse


def _finite_float(low=None, high=None):
    def parse(text):
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"must be a finite number, got {text}")
        if (low is not None and value < low) or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"must be in [{low}, {high}], got {value}")
        return value
    return parse


# ---- config overrides ------------------------------------------------------------------------------
def _parse_value(field, text):
    """Convert an override string to the dataclass field's type."""
    kind = field.type if isinstance(field.type, type) else type(field.default)
    try:
        if kind is bool:
            if text.lower() not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError
            return text.lower() in ("true", "1", "yes")
        return kind(text) if kind is not int else int(text)
    except ValueError:
        raise UsageError(f"--{field.name}: expected {kind.__name__}, got {text!r}") from None


def parse_overrides(tokens, *config_classes):
    """['--n_layer', '2', '--lr=3e-4'] -> one dict per config class; unknown keys are refused."""
    by_name = [{f.name: f for f in fields(c)} for c in config_classes]
    out = [{} for _ in config_classes]
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        if not tok.startswith("--"):
            raise UsageError(f"unexpected argument {tok!r}")
        key, eq, value = tok[2:].partition("=")
        key = key.replace("-", "_")
        if not eq:
            if i + 1 >= len(tokens):
                raise UsageError(f"--{key} needs a value")
            value, i = tokens[i + 1], i + 1
        i += 1
        for names, dest in zip(by_name, out):
            if key in names:
                dest[key] = _parse_value(names[key], value)
                break
        else:
            known = sorted(set().union(*by_name))
            raise UsageError(f"unknown option --{key}; config options are: {', '.join(known)}")
    return out


def _refuse_on_resume(args, names):
    """--resume continues a run as it was set up: options it would ignore are refused, not dropped."""
    given = [n for n in names if getattr(args, n) not in (None, False, [], ())]
    if given:
        flags = ", ".join("--" + n.replace("_", "-") for n in given)
        raise UsageError(f"--resume continues the run with its own setup; {flags} cannot be given with it")


# ---- commands --------------------------------------------------------------------------------------
def cmd_prepare(args):
    from nanoframe import data as D
    from nanoframe.training.pretrain import _corpus, _tokenizer

    train, val, source = _corpus(args.data, args.glob)
    docs = train + val if args.tokenizer == "char" else train
    tok = _tokenizer(args.tokenizer, docs, args.data, args.vocab_size, not args.no_progress, _log)
    meta = D.prepare(train, val, tok, args.out, source, show_progress=not args.no_progress)
    print(json.dumps(meta, indent=2))


def cmd_train(args, extra):
    from nanoframe.models import GPTConfig
    from nanoframe.training.config import TrainConfig
    from nanoframe.training.pretrain import pretrain

    model_over, train_over = parse_overrides(extra, GPTConfig, TrainConfig)
    if args.resume:
        _refuse_on_resume(args, ["data", "tokenizer", "preset", "arch", "vocab_size", "glob"])
    s = pretrain(args.out, args.data or (), data_dir=args.data_dir, glob=args.glob or "**/*.txt",
                 tokenizer=args.tokenizer, vocab_size=args.vocab_size or DEFAULT_VOCAB_SIZE, preset=args.preset,
                 arch=args.arch,
                 model_overrides=model_over, train_overrides=train_over, resume=args.resume,
                 show_progress=not args.no_progress, log=_log)
    if _follower():
        return
    print(f"done: {s['steps']} steps in {s['seconds']:.0f} s, {s['tokens_per_sec']:,.0f} tokens/s, "
          f"val loss {s['val_loss']:.4f} (best {s['best_val_loss']:.4f}); checkpoint {s['checkpoint']}")
    if not args.no_sample:
        text = _sample_text(s["model"], s["tokenizer"], "", **SAMPLE, seed=0)
        print("\n--- sample ---\n" + text)


def _encode(tok, text, option):
    """The ids of a command-line text; text the tokenizer cannot encode names the option."""
    try:
        return tok.encode_ordinary(text)
    except ValueError as e:
        raise UsageError(f"{option}: {bounded(e, 200)}") from None


def _sample_text(model, tok, prompt, max_new_tokens, temperature, top_k, seed, top_p=None):
    ids = _encode(tok, prompt, "--prompt") if prompt else [tok.eot_id if tok.eot_id is not None else 0]
    idx = np.asarray([ids], dtype=np.int64)
    out = model.generate(idx, max_new_tokens, temperature=temperature, top_k=top_k, top_p=top_p, seed=seed)
    new = np.asarray(out)[0, idx.shape[1]:].tolist()
    return (prompt if prompt else "") + tok.decode(new)


def cmd_sample(args):
    from nanoframe.training.run import load_for_inference

    model, tok, state, folder = load_for_inference(args.run)
    _log(f"sampling from {folder} (step {state['step']})")
    for k in range(args.num_samples):
        seed = None if args.seed is None else args.seed + k
        print(_sample_text(model, tok, args.prompt, args.max_new_tokens, args.temperature, args.top_k, seed,
                           args.top_p), flush=True)
        if k + 1 < args.num_samples:
            print("---")


def cmd_info(args):
    from nanoframe.training.run import load_for_inference, open_checkpoint

    model, tok, state, folder = load_for_inference(args.checkpoint)
    run = open_checkpoint(args.checkpoint)[0]
    info = {
        "kind": run.read_config()["kind"] if run.config_path.is_file() else None,
        "checkpoint": str(folder),
        "step": state["step"],
        "val_loss": state.get("val_loss"),
        "best_val_loss": state.get("best_val_loss"),
        "parameters": model.num_parameters(non_embedding=False),
        "non_embedding_parameters": model.num_parameters(non_embedding=True),
        "model_config": state["model_config"],
        "train_config": state.get("train_config"),
        "vocab_size": tok.vocab_size,
    }
    if state.get("base"):
        info.update(base=state["base"], finetune=state.get("finetune"),
                    trainable_parameters=model.num_parameters(non_embedding=False, trainable_only=True))
    if state.get("lora"):
        info["lora"] = state["lora"]
    print(json.dumps(info, indent=2))


def cmd_finetune(args, extra):
    from nanoframe.models import GPTConfig
    from nanoframe.training.config import TrainConfig
    from nanoframe.training.finetune import finetune, generate_completion
    from nanoframe.nn.lora import DEFAULT_LORA_TARGETS, lora_config

    model_over, train_over = parse_overrides(extra, GPTConfig, TrainConfig)
    if args.resume:
        if not args.out:
            raise UsageError("--resume needs --out RUN: the fine-tune to continue")
        _refuse_on_resume(args, ["from_run", "from_hf", "tokenizer", "data", "glob", "val_fraction", "lora",
                                 "lora_targets", "lora_r", "lora_alpha", "lora_dropout", "freeze", "freeze_layers",
                                 "freeze_embeddings"])
        lora = None
    else:
        if bool(args.from_run) == bool(args.from_hf):
            raise UsageError("give exactly one starting point: --from RUN_OR_CHECKPOINT or --from-hf DIR")
        if not args.lora and any(v is not None for v in (args.lora_targets, args.lora_r, args.lora_alpha,
                                                          args.lora_dropout)):
            raise UsageError("--lora-targets, --lora-r, --lora-alpha and --lora-dropout need --lora")
        lora = lora_config(args.lora_targets or DEFAULT_LORA_TARGETS, args.lora_r or 8,
                           16.0 if args.lora_alpha is None else args.lora_alpha,
                           args.lora_dropout or 0.0) if args.lora else None
    args.out = out = args.out or ("runs/finetune-lora" if args.lora else "runs/finetune")   # Ctrl-C names it too
    s = finetune(args.from_hf or args.from_run, out, args.data or (), hf=bool(args.from_hf), tokenizer=args.tokenizer,
                 lora=lora, freeze_patterns=args.freeze or (), freeze_layers=args.freeze_layers or 0,
                 freeze_embeddings=args.freeze_embeddings, train_overrides=train_over, model_overrides=model_over,
                 val_fraction=0.1 if args.val_fraction is None else args.val_fraction, glob=args.glob or "**/*.txt",
                 show_progress=not args.no_progress, log=_log, resume=args.resume)
    if _follower():
        return
    before = "n/a" if s["val_loss_before"] is None else f"{s['val_loss_before']:.4f}"
    print(f"done: {s['steps']} steps ({s['stopped']}) in {s['seconds']:.0f} s; val loss {before} "
          f"before -> {s['val_loss_after']:.4f} best; trained {s['trainable_parameters']:,} "
          f"of {s['total_parameters']:,} parameters; run {s['run']}" + (f"; adapter {s['adapter']}" if s["adapter"] else ""))
    if not args.no_sample:
        model, tok = s["model"], s["tokenizer"]
        if args.data and all(str(p).endswith(".jsonl") for p in args.data):
            from nanoframe.data.instructions import first_prompt

            prompt = first_prompt(args.data[0])
            print("\n--- greedy completion of the first prompt ---\n" + prompt + generate_completion(model, tok, prompt, 64))
        else:
            print("\n--- sample ---\n" + _sample_text(model, tok, "", **SAMPLE, seed=0))


def cmd_lora(args):
    from nanoframe.training.finetune import merge

    s = merge(args.base, args.adapter, args.out, tokenizer=args.tokenizer, force=args.force, log=_log)
    print(f"wrote {s['run']}: {s['base']['path']} + {args.adapter} merged "
          f"({s['model'].num_parameters(non_embedding=False):,} parameters)")


def cmd_plot(args):
    from nanoframe.io import atomic_write_text
    from nanoframe.plot import loss_curve_svg, split_metrics
    from nanoframe.training.run import Run

    run = Run(args.run)
    if not run.metrics_path.is_file():
        raise UsageError(f"{args.run} has no metrics.jsonl")
    train, val = split_metrics(run.read_metrics())
    out = args.out or str(run.root / "loss.svg")
    atomic_write_text(out, loss_curve_svg(train, val, title=f"loss: {args.run}"))
    print(out)


def cmd_tokenizer(args):
    from nanoframe import data as D
    from nanoframe.training.pretrain import _tokenizer

    if args.action == "train":
        docs = list(D.documents(D.find_files(args.data, args.glob)))
        if not docs:
            raise D.DataError("the corpus is empty: no non-empty text files")
        tok = _tokenizer(args.kind, docs, args.data, args.vocab_size, not args.no_progress, _log)
        tok.save(args.out)
        print(f"wrote {args.out} (vocab {tok.vocab_size})")
        return
    tok = D.load_tokenizer(args.tokenizer)
    if args.action == "encode":
        text = D.read_text(args.file) if args.file else (args.text if args.text is not None else sys.stdin.read())
        try:
            ids = tok.encode(text, allowed_special="all")
        except ValueError as e:
            raise UsageError(f"{'--file' if args.file else '--text'}: {bounded(e, 200)}") from None
        print(" ".join(map(str, ids)))
    else:
        raw = args.ids if args.ids else sys.stdin.read().split()
        try:
            ids = [int(x) for x in raw]
        except ValueError as e:
            raise UsageError(f"decode expects integer ids: {e}") from None
        try:
            text = tok.decode(ids)
        except ValueError as e:
            raise UsageError(f"decode: {bounded(e, 200)}") from None
        sys.stdout.write(text + "\n")


def _log(msg):
    print(msg, file=sys.stderr)


# ---- several processes (mpiexec) ------------------------------------------------------------------------
def _start_distributed(args):
    """Join the MPI job when mpiexec started this `train` or `finetune`."""
    from nanoframe import distributed as dist

    if args.command in ("train", "finetune") and dist.launched_by_mpiexec():
        dist.init()
        dist.set_stop_message(lambda: _resume_hint(args, f"mpiexec -n {dist.get_world_size()} "))


def _not_this_rank(args):
    """True on ranks > 0 when mpiexec started a command other than train/finetune (sample, lora
    merge, prepare...): rank 0 alone runs it, so one process writes its files and prints its output;
    it says so in one line. No MPI is joined for these commands."""
    from nanoframe import distributed as dist

    if args.command in ("train", "finetune") or not dist.launched_by_mpiexec():
        return False
    rank, size = dist.launcher_rank_and_size()
    if size > 1 and rank == 0:
        name = " ".join(filter(None, (args.command, getattr(args, "action", None))))
        print(f"nanoframe: note: `{name}` runs in one process; rank 0 of the {size} that mpiexec started "
              "runs it, the others exit", file=sys.stderr)
    return rank > 0


def _follower():
    """True on ranks > 0 of a distributed job: they train but print nothing."""
    from nanoframe import distributed as dist

    return dist.get_rank() > 0


def _distributed():
    from nanoframe import distributed as dist

    return dist.is_distributed()


QUIET_RANK_EXIT_DELAY = 3.0   # seconds


def _report(line, error=None):
    """Print an error line; on a rank > 0 only when rank 0 does not print the same (see
    distributed.collective_error) and then prefixed with the rank."""
    from nanoframe import distributed as dist

    rank = dist.get_rank() if dist.is_initialized() else dist.launcher_rank_and_size()[0]   # before init too
    if rank > 0:
        if getattr(error, "quiet", False):
            # rank 0 prints this same line: leave after it, since mpiexec drops the other ranks'
            # output once one rank has exited non-zero (rank 0's exit ends this process sooner)
            time.sleep(QUIET_RANK_EXIT_DELAY)
            return
        line = line.replace("nanoframe: ", f"nanoframe: rank {rank}: ", 1)
    print(line, file=sys.stderr)


# ---- argument parsing ------------------------------------------------------------------------------
def _fields_help(*config_classes, only=None):
    """One line per config field: --name (default): meaning, for a command's --help."""
    lines = []
    for cls in config_classes:
        for f in fields(cls):
            if only is None or f.name in only:
                lines.append(f"  --{f.name} ({f.default!r}): {f.metadata.get('help', '')}")
    return "\n".join(lines)


MFU_HELP = textwrap.fill("The progress bar shows tokens/s and MFU: the model's training FLOPs per second (6 N + 12 L T C per "
            "token, N the non-embedding parameters) over this machine's float32 GEMM throughput through NumPy's "
            "BLAS, measured at start and again at evaluations (at most every 30 s), the highest measurement kept.", 100)


class _Formatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Defaults shown after each option that has one, and epilogs kept as written (one field a line)."""

    def _get_help_string(self, action):
        if action.default in (None, False):           # no default, or a flag: nothing to show
            return action.help
        return super()._get_help_string(action)


def _presets_help():
    from nanoframe.training.config import PRESETS, describe_preset

    return "\n".join("  " + describe_preset(name) for name in PRESETS)


def build_parser():
    from nanoframe.models import GPTConfig
    from nanoframe.training.config import ARCHITECTURES, PRESETS, TrainConfig

    fmt = _Formatter
    p = _Parser(prog="nanoframe", description="Train and sample small GPTs on a CPU with NumPy.")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    tk = sub.add_parser("tokenizer", help="train a tokenizer, encode or decode text")
    tsub = tk.add_subparsers(dest="action", required=True, parser_class=_Parser)
    tt = tsub.add_parser("train", help="train a BPE (or char) tokenizer on text files", formatter_class=fmt)
    tt.add_argument("--data", nargs="+", required=True, help="text files or folders")
    tt.add_argument("--glob", default="**/*.txt", help="files to take from folders")
    tt.add_argument("--vocab-size", type=_int_at_least(257), default=DEFAULT_VOCAB_SIZE, help="BPE vocabulary size")
    tt.add_argument("--kind", choices=["bpe", "char"], default="bpe", help="tokenizer kind")
    tt.add_argument("--out", required=True, help="tokenizer file to write (JSON)")
    tt.add_argument("--no-progress", action="store_true", help="no progress bar")
    te = tsub.add_parser("encode", help="print the ids of a text")
    te.add_argument("--tokenizer", required=True, help="tokenizer file")
    te.add_argument("--text", help="text to encode (default: --file or stdin)")
    te.add_argument("--file", help="file to encode")
    td = tsub.add_parser("decode", help="print the text of ids")
    td.add_argument("--tokenizer", required=True, help="tokenizer file")
    td.add_argument("ids", nargs="*", help="ids (default: read from stdin)")

    pr = sub.add_parser("prepare", help="tokenize a corpus into train.bin / val.bin", formatter_class=fmt)
    pr.add_argument("--data", nargs="*", help="text files or folders (default: the Python stdlib)")
    pr.add_argument("--glob", default="**/*.txt", help="files to take from folders")
    pr.add_argument("--out", required=True, help="data folder to write")
    pr.add_argument("--tokenizer", default="bpe", help="bpe, char, or a tokenizer file")
    pr.add_argument("--vocab-size", type=_int_at_least(257), default=DEFAULT_VOCAB_SIZE, help="BPE vocabulary size")
    pr.add_argument("--no-progress", action="store_true", help="no progress bar")

    tr = sub.add_parser("train", help="pretrain a GPT (default: on the Python stdlib, offline)", formatter_class=fmt,
                        epilog="Presets (model and schedule):\n" + _presets_help() + "\n\nModel fields (--field value "
                               "over the preset; the defaults shown are GPTConfig's):\n"
                               + _fields_help(GPTConfig) + "\n\nTraining fields (over the preset's schedule):\n"
                               + _fields_help(TrainConfig) + "\n\n" + MFU_HELP)
    tr.add_argument("--data", nargs="*", help="text files or folders (default: the Python stdlib)")
    tr.add_argument("--glob", help="files to take from folders (default **/*.txt)")
    tr.add_argument("--data-dir", help="a folder written by `nanoframe prepare` (on --resume: where it is now)")
    tr.add_argument("--out", default=DEFAULT_RUN, help="run folder")
    tr.add_argument("--preset", choices=list(PRESETS),
                    help="model and schedule (default: 'default' for the stdlib, 'tiny' for --data)")
    tr.add_argument("--arch", choices=list(ARCHITECTURES),
                    help="gpt2 or llama (RMSNorm, SwiGLU, RoPE, no biases) over the preset's shape; alone on the "
                         "stdlib, llama picks the 'llama' preset (the default run's parameter count)")
    tr.add_argument("--tokenizer", help="bpe, char, or a tokenizer file (default: bpe for the stdlib, char for --data)")
    tr.add_argument("--vocab-size", type=_int_at_least(257), help=f"BPE vocabulary size (default {DEFAULT_VOCAB_SIZE})")
    tr.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    tr.add_argument("--no-sample", action="store_true", help="skip the sample printed at the end")
    tr.add_argument("--no-progress", action="store_true", help="no progress bar")

    sa = sub.add_parser("sample", help="generate text from a run or checkpoint", formatter_class=fmt)
    sa.add_argument("run", help="a run folder (best/ is used) or a checkpoint folder")
    sa.add_argument("--prompt", default="", help="text to continue")
    sa.add_argument("--max-new-tokens", type=_int_at_least(0), default=SAMPLE["max_new_tokens"], help="tokens to generate")
    sa.add_argument("--temperature", type=_finite_float(0.0), default=SAMPLE["temperature"], help="0 is greedy")
    sa.add_argument("--top-k", type=_int_at_least(1), default=SAMPLE["top_k"], help="keep the k most likely tokens")
    sa.add_argument("--top-p", type=_finite_float(1e-9, 1.0), default=None, help="nucleus sampling threshold")
    sa.add_argument("--seed", type=_int_at_least(0), default=None, help="seed of the sampler (default: random)")
    sa.add_argument("--num-samples", type=_int_at_least(1), default=1, help="how many samples")

    inf = sub.add_parser("info", help="show a checkpoint's config, size, step and val loss")
    inf.add_argument("checkpoint", help="a run folder or a checkpoint folder")

    ft = sub.add_parser("finetune", help="fine-tune a nanoframe run or a Hugging Face gpt2/llama/qwen2 (full, frozen or LoRA)",
                        formatter_class=fmt,
                        epilog="Without --data the stdlib package held out of the default pretraining run is used. "
                               ".jsonl files are instruction data: {\"prompt\", \"completion\"} or {\"messages\": [...]} "
                               "per line.\n\nModel fields that may change (--field value):\n"
                               + _fields_help(GPTConfig, only=("dropout", "block_size")) + " (<= the base's)\n\n"
                               "Training fields (defaults here are TrainConfig's; a fine-tune starts from "
                               "its own schedule, see nanoframe.training.config.FINETUNE_DEFAULTS):\n"
                               + _fields_help(TrainConfig) + "\n\n" + MFU_HELP)
    src = ft.add_mutually_exclusive_group()
    src.add_argument("--from", dest="from_run", metavar="RUN", help="a nanoframe run or checkpoint folder")
    src.add_argument("--from-hf", metavar="DIR", help="a Hugging Face gpt2, llama or qwen2 folder (config.json + "
                                                      "model.safetensors)")
    ft.add_argument("--tokenizer", help="with --from-hf: a tokenizer file, or a folder with tokenizer.json, "
                                        "vocab.json/merges.txt or encoder.json/vocab.bpe (default: the model folder)")
    ft.add_argument("--data", nargs="*", help="text files/folders, or .jsonl instruction files (default: stdlib holdout)")
    ft.add_argument("--glob", help="files to take from folders (default **/*.txt)")
    ft.add_argument("--out", help="run folder (default runs/finetune or runs/finetune-lora)")
    ft.add_argument("--resume", action="store_true", help="continue the fine-tune in --out from its last checkpoint")
    ft.add_argument("--val-fraction", type=_finite_float(0.0, 0.9), help="share of the data held out (default 0.1)")
    ft.add_argument("--lora", action="store_true", help="train LoRA adapters instead of the weights")
    ft.add_argument("--lora-targets", help="comma-separated layer names, e.g. q_proj,v_proj (default: every Linear "
                                           "of the blocks: c_attn,c_proj,c_fc for GPT-2, q_proj,k_proj,v_proj,o_proj,"
                                           "gate_proj,up_proj,down_proj for Llama-style models)")
    ft.add_argument("--lora-r", type=_int_at_least(1), help="adapter rank (default 8)")
    ft.add_argument("--lora-alpha", type=_finite_float(), help="adapter scale alpha (default 16)")
    ft.add_argument("--lora-dropout", type=_finite_float(0.0, 0.99), help="dropout on the adapter input (default 0)")
    ft.add_argument("--freeze", nargs="+", metavar="PATTERN", help="freeze parameters matching fnmatch patterns")
    ft.add_argument("--freeze-layers", type=_int_at_least(0), metavar="N", help="freeze the first N blocks")
    ft.add_argument("--freeze-embeddings", action="store_true", help="freeze wte (= tied lm_head) and wpe")
    ft.add_argument("--no-sample", action="store_true", help="skip the sample printed at the end")
    ft.add_argument("--no-progress", action="store_true", help="no progress bar")

    lo = sub.add_parser("lora", help="LoRA adapter tools")
    losub = lo.add_subparsers(dest="action", required=True, parser_class=_Parser)
    lm = losub.add_parser("merge", help="fold an adapter into its base: a run folder `sample` can read")
    lm.add_argument("--base", required=True, help="the base run/checkpoint (or Hugging Face folder)")
    lm.add_argument("--adapter", required=True, help="a LoRA run folder or an adapter .safetensors file")
    lm.add_argument("--out", required=True, help="run folder to write (new or empty)")
    lm.add_argument("--tokenizer", help="with a Hugging Face base: its tokenizer file or folder")
    lm.add_argument("--force", action="store_true", help="merge even if --base is not the base the adapter was trained on")

    pl = sub.add_parser("plot", help="write a run's loss curves as SVG")
    pl.add_argument("run", help="a run folder")
    pl.add_argument("--out", help="SVG path (default RUN/loss.svg)")
    return p


def _one_line_warnings(message, category, filename, lineno, file=None, line=None):
    return f"nanoframe: warning: {message}\n"


def main(argv=None):
    from nanoframe.runtime import tune_malloc

    tune_malloc()   # opt-in malloc tuning: a nanoframe command owns its process (nanoframe.runtime)
    format_before, warnings.formatwarning = warnings.formatwarning, _one_line_warnings
    try:
        code = _main(argv)
    except SystemExit as e:                     # sys.exit on one rank: it must not wait in MPI_Finalize
        if not _distributed():
            raise
        if e.code is not None and not isinstance(e.code, int):
            _report(f"nanoframe: error: {bounded(str(e.code), 1000)}")
        code = e.code if isinstance(e.code, int) else 0 if e.code is None else 1
    finally:
        warnings.formatwarning = format_before
    if _distributed() and code != 0:
        from nanoframe import distributed as dist

        dist.exit_now(code)             # MPI_Finalize would wait for ranks stuck in a collective
    return code


def _main(argv):
    args = None
    try:
        args, extra = build_parser().parse_known_args(argv)
        if extra and args.command not in ("train", "finetune"):
            raise UsageError(f"unrecognized arguments: {' '.join(extra)}")
        _start_distributed(args)
        if _not_this_rank(args):
            return 0
        if args.command == "train":
            cmd_train(args, extra)
        elif args.command == "finetune":
            cmd_finetune(args, extra)
        else:
            {"prepare": cmd_prepare, "sample": cmd_sample, "info": cmd_info, "plot": cmd_plot,
             "tokenizer": cmd_tokenizer, "lora": cmd_lora}[args.command](args)
    except KeyboardInterrupt:
        if not _follower():
            print("\nnanoframe: " + _interrupted(args), file=sys.stderr)
        return 130
    except BrokenPipeError:                     # `nanoframe sample ... | head -1`: the reader is gone
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except MemoryError:
        _report("nanoframe: error: out of memory: the model, batch or data is too large for this machine")
        return 2
    except (NanoframeError, OSError) as e:
        if os.environ.get("NANOFRAME_DEBUG"):
            raise
        msg = str(e) if not isinstance(e, OSError) or not e.filename else f"{e.strerror}: {e.filename}"
        _report(f"nanoframe: error: {bounded(msg.splitlines()[0] if msg else type(e).__name__, 1000)}", e)
        return 2
    except Exception:
        if not _distributed():
            raise
        import traceback                # a bug: its traceback, then the job stops (no Finalize wait)

        traceback.print_exc()
        return 1
    return 0


def _interrupted(args):
    """What to tell a user whose training was interrupted (Ctrl-C): how to go on."""
    from nanoframe.training.run import Run

    if args is None or args.command not in ("train", "finetune") or not getattr(args, "out", None):
        return "interrupted"
    run = Run(args.out)
    step = run.last_step() if run.root.is_dir() else None
    if step is None:
        return (f"interrupted before the first checkpoint of {args.out}: there is nothing to resume; "
                "run the same command again to start over")
    if not _distributed():
        return "interrupted; " + _resume_hint(args)
    from nanoframe import distributed as dist     # one rank interrupted: the job resumes as it ran

    return "interrupted; " + _resume_hint(args, f"mpiexec -n {dist.get_world_size()} ")


def _resume_hint(args, launcher=""):
    """Where a stopped train/finetune can continue from, and the command that continues it."""
    from nanoframe.training.run import Run

    run = Run(args.out or "")
    step = run.last_step() if args.out and run.root.is_dir() else None
    if step is None:
        return f"{args.out} has no checkpoint yet: run the same command again to start over"
    return (f"the last checkpoint of {args.out} is step {step}: continue with "
            f"`{launcher}nanoframe {args.command} --out {args.out} --resume`")


if __name__ == "__main__":
    sys.exit(main())
