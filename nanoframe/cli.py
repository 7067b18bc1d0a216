"""The `nanoframe` command: tokenizer, prepare, train, finetune, lora merge, sample, info, plot.

Every error a user can cause (a missing file, an empty corpus, a bad option) ends with one line
on stderr and exit code 2; set NANOFRAME_DEBUG=1 to see the traceback instead.
"""
import argparse
import json
import os
import sys
from dataclasses import fields
from pathlib import Path

import numpy as np

DEFAULT_RUN = "runs/default"


class UsageError(ValueError):
    """A bad command line."""


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


# ---- commands --------------------------------------------------------------------------------------
def _docs_for(data, glob):
    """(train_docs, val_docs, source) for --data paths, or the stdlib corpus when none are given."""
    from nanoframe import data as D

    if data:
        docs = list(D.documents(D.find_files(data, glob)))
        train, val = D.split_documents(docs)
        return train, val, "files: " + ", ".join(str(p) for p in data)
    train_files, held = D.stdlib_files()
    root = D.stdlib_dir()
    return (list(D.documents(train_files, root)), list(D.documents(held, root)),
            f"python stdlib ({root}), package {D.DEFAULT_HOLDOUT!r} held out")


def _get_tokenizer(spec, docs, vocab_size, progress):
    """A tokenizer from a file path, or trained now ("bpe" / "char") on the given docs."""
    from nanoframe import data as D

    if spec not in ("bpe", "char"):
        return D.load_tokenizer(spec), str(Path(spec).resolve())
    print(f"training a {spec} tokenizer" + (f" (vocab {vocab_size})" if spec == "bpe" else ""), file=sys.stderr)
    return D.train_tokenizer(spec, docs, vocab_size, show_progress=progress), None


def cmd_prepare(args):
    from nanoframe import data as D

    train, val, source = _docs_for(args.data, args.glob)
    tok, tok_path = _get_tokenizer(args.tokenizer, train + val if args.tokenizer == "char" else train,
                                   args.vocab_size, not args.no_progress)
    meta = D.prepare(train, val, tok, args.out, tok_path, source, show_progress=not args.no_progress)
    print(json.dumps(meta, indent=2))


def cmd_train(args, extra):
    from nanoframe import data as D
    from nanoframe.models import GPT, GPTConfig
    from nanoframe.random import manual_seed
    from nanoframe.training.checkpoint import list_checkpoints
    from nanoframe.training.config import PRESETS, TrainConfig
    from nanoframe.training.trainer import Trainer

    model_over, train_over = parse_overrides(extra, GPTConfig, TrainConfig)
    out = Path(args.out)
    run_cfg_path = out / "config.json"
    has_run = bool(list_checkpoints(out))
    if has_run and not args.resume:
        raise UsageError(f"{out} already holds a run: pass --resume to continue it or choose another --out")
    if args.resume and not has_run:
        raise UsageError(f"--resume: {out} holds no checkpoint to resume from")

    if args.resume:
        run = json.loads(run_cfg_path.read_text())
        changed = {k: v for k, v in model_over.items() if run["model"].get(k) != v}
        if changed:
            raise UsageError(f"the run in {out} has another model config; cannot change {sorted(changed)} on resume")
        data_dir = run["data_dir"]
        train_cfg = TrainConfig.from_dict({**run["train"], **train_over})
        model_cfg = GPTConfig.from_dict(run["model"])
    else:
        preset = PRESETS[args.preset or ("default" if not args.data and not args.data_dir else "tiny")]
        if args.data_dir:
            data_dir = args.data_dir
        else:
            data_dir = str(out / "data")
            train, val, source = _docs_for(args.data, args.glob)
            kind = args.tokenizer or ("bpe" if not args.data else "char")
            tok, tok_path = _get_tokenizer(kind, train + val if kind == "char" else train,
                                           args.vocab_size, not args.no_progress)
            D.prepare(train, val, tok, data_dir, tok_path, source, show_progress=not args.no_progress)
        meta = D.load_meta(data_dir)
        model_cfg = GPTConfig.from_dict({**preset["model"], "vocab_size": meta["vocab_size"], **model_over})
        train_cfg = TrainConfig.from_dict({**preset["train"], **train_over})
        out.mkdir(parents=True, exist_ok=True)
        run = {"model": model_cfg.to_dict(), "train": train_cfg.to_dict(), "data_dir": str(Path(data_dir).resolve()),
               "tokenizer": meta["tokenizer"]}
    from nanoframe.io import atomic_write_text

    run["train"] = train_cfg.to_dict()
    atomic_write_text(run_cfg_path, json.dumps(run, indent=2) + "\n")

    manual_seed(train_cfg.seed)
    model = GPT(model_cfg)
    data = D.TokenData(data_dir, model_cfg.block_size, train_cfg.batch_size, seed=train_cfg.seed)
    trainer = Trainer(model, data, train_cfg, out, show_progress=not args.no_progress,
                      extra_state={"model_config": model_cfg.to_dict(), "tokenizer": run["tokenizer"]})
    if args.resume:
        state = trainer.resume()
        print(f"resuming {out} from step {state['step']}", file=sys.stderr)
    print(f"model: {model.num_parameters(non_embedding=False):,} parameters ({model.num_parameters(non_embedding=True):,} "
          f"non-embedding); {model_cfg}", file=sys.stderr)
    summary = trainer.train()
    print(f"done: {summary['steps']} steps in {summary['seconds']:.0f} s, "
          f"{summary['tokens_per_sec']:,.0f} tokens/s, val loss {summary['val_loss']:.4f} "
          f"(best {summary['best_val_loss']:.4f}); checkpoint {summary['checkpoint']}")
    if not args.no_sample:
        tok = D.load_tokenizer(run["tokenizer"])
        text = _sample_text(model, tok, prompt="", max_new_tokens=200, temperature=0.8, top_k=50, seed=0)
        print("\n--- sample ---\n" + text)


def _load_run(path):
    """(model, tokenizer, state, folder) of a run folder or checkpoint folder; prefers best/ for runs.
    A LoRA run comes back as base + adapters, unmerged (see training/finetune.py)."""
    from nanoframe.training.finetune import load_run

    return load_run(path)


def _sample_text(model, tok, prompt, max_new_tokens, temperature, top_k, seed, top_p=None):
    ids = tok.encode_ordinary(prompt) if prompt else [tok.eot_id if tok.eot_id is not None else 0]
    idx = np.asarray([ids], dtype=np.int64)
    out = model.generate(idx, max_new_tokens, temperature=temperature, top_k=top_k, top_p=top_p, seed=seed)
    new = np.asarray(out)[0, idx.shape[1]:].tolist()
    return (prompt if prompt else "") + tok.decode(new)


def cmd_sample(args):
    model, tok, state, folder = _load_run(args.run)
    print(f"sampling from {folder} (step {state['step']})", file=sys.stderr)
    for k in range(args.num_samples):
        seed = None if args.seed is None else args.seed + k
        print(_sample_text(model, tok, args.prompt, args.max_new_tokens, args.temperature, args.top_k, seed, args.top_p))
        if k + 1 < args.num_samples:
            print("---")


def cmd_info(args):
    model, tok, state, folder = _load_run(args.checkpoint)
    info = {
        "checkpoint": str(folder),
        "step": state["step"],
        "val_loss": state.get("val_loss"),
        "best_val_loss": state.get("best_val_loss"),
        "parameters": model.num_parameters(non_embedding=False),
        "non_embedding_parameters": model.num_parameters(non_embedding=True),
        "model_config": state["model_config"],
        "train_config": state.get("train_config"),
        "tokenizer": state["tokenizer"],
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
    from nanoframe.training.lora import lora_config

    model_over, train_over = parse_overrides(extra, GPTConfig, TrainConfig)
    if bool(args.from_run) == bool(args.from_hf):
        raise UsageError("give exactly one starting point: --from RUN_OR_CHECKPOINT or --from-hf DIR")
    lora = lora_config(args.lora_targets, args.lora_r, args.lora_alpha, args.lora_dropout) if args.lora else None
    out = args.out or ("runs/finetune-lora" if args.lora else "runs/finetune")
    s = finetune(args.from_hf or args.from_run, out, args.data or (), hf=bool(args.from_hf), tokenizer=args.tokenizer,
                 lora=lora, freeze_patterns=args.freeze or (), freeze_layers=args.freeze_layers,
                 freeze_embeddings=args.freeze_embeddings, train_overrides=train_over, model_overrides=model_over,
                 val_fraction=args.val_fraction, glob=args.glob, show_progress=not args.no_progress)
    print(f"done: {s['steps']} steps ({s['stopped']}) in {s['seconds']:.0f} s; val loss {s['val_loss_before']:.4f} "
          f"before -> {s['val_loss_after']:.4f} best ({s['improvement']:+.4f}); trained {s['trainable_parameters']:,} "
          f"of {s['total_parameters']:,} parameters; run {s['run']}" + (f"; adapter {s['adapter']}" if s["adapter"] else ""))
    if not args.no_sample:
        model, tok = s["model"], s["tokenizer"]
        if args.data and all(str(p).endswith(".jsonl") for p in args.data):
            from nanoframe.training.finetune import read_jsonl

            segments, _ = read_jsonl(args.data[0])[0]
            first = next(i for i, (_, trained) in enumerate(segments) if trained)
            prompt = "".join(text for text, _ in segments[:first])
            print("\n--- greedy completion of the first prompt ---\n" + prompt + generate_completion(model, tok, prompt, 64))
        else:
            print("\n--- sample ---\n" + _sample_text(model, tok, "", 200, 0.8, 50, 0))


def cmd_lora(args):
    from nanoframe.training.checkpoint import find_checkpoint, read_state, save_checkpoint
    from nanoframe.training.finetune import load_base
    from nanoframe.training.lora import apply_lora, load_adapter_tensors, merge_lora, read_adapter

    out = Path(args.out)
    if out.exists() and any(out.iterdir()):
        raise UsageError(f"--out {out} exists and is not empty")
    adapter = Path(args.adapter)
    if adapter.is_file():
        config, tensors = read_adapter(adapter)
    else:
        from nanoframe.io import load_safetensors

        folder = adapter / "best" if (adapter / "best" / "state.json").is_file() else find_checkpoint(adapter)
        astate = read_state(folder)
        if not astate.get("lora"):
            raise UsageError(f"{adapter} is not a LoRA run (its state.json has no \"lora\" entry)")
        config = astate["lora"]
        tensors = {k: v for k, v in load_safetensors(folder / "model.safetensors").items()
                   if k.endswith((".lora_A", ".lora_B"))}
    from nanoframe.models.hf import is_hf_folder

    hf = is_hf_folder(args.base)
    tok_arg = args.tokenizer if hf else None
    model, tok, tok_path, base_info = load_base(args.base, hf=hf, tokenizer=tok_arg)
    apply_lora(model, **config)
    load_adapter_tensors(model, tensors, str(adapter))
    merge_lora(model)
    out.mkdir(parents=True, exist_ok=True)
    if tok_path is None:
        tok_path = str((out / "tokenizer.json").resolve())
        tok.save(tok_path)
    state = {"model_config": model.config.to_dict(), "tokenizer": tok_path, "step": 0,
             "base": base_info, "merged_adapter": str(adapter.resolve()), "lora_merged": config}
    save_checkpoint(out, model, None, state)
    print(f"wrote {out}: {base_info['path']} + {adapter} merged ({model.num_parameters(non_embedding=False):,} parameters)")


def cmd_plot(args):
    from nanoframe.io import atomic_write_text
    from nanoframe.plot import loss_curve_svg, read_metrics

    metrics = Path(args.run) / "metrics.jsonl"
    if not metrics.is_file():
        raise FileNotFoundError(f"{args.run} has no metrics.jsonl")
    train, val = read_metrics(metrics)
    out = args.out or str(Path(args.run) / "loss.svg")
    atomic_write_text(out, loss_curve_svg(train, val, title=f"loss: {args.run}"))
    print(out)


def cmd_tokenizer(args):
    from nanoframe import data as D

    if args.action == "train":
        docs = list(D.documents(D.find_files(args.data, args.glob)))
        if not docs:
            raise D.DataError("the corpus is empty: no non-empty text files")
        tok, _ = _get_tokenizer(args.kind, docs, args.vocab_size, not args.no_progress)
        tok.save(args.out)
        print(f"wrote {args.out} (vocab {tok.vocab_size})")
        return
    tok = D.load_tokenizer(args.tokenizer)
    if args.action == "encode":
        text = Path(args.file).read_text(encoding="utf-8") if args.file else (args.text if args.text is not None else sys.stdin.read())
        print(" ".join(map(str, tok.encode(text, allowed_special="all"))))
    else:
        raw = args.ids if args.ids else sys.stdin.read().split()
        try:
            ids = [int(x) for x in raw]
        except ValueError as e:
            raise UsageError(f"decode expects integer ids: {e}") from None
        sys.stdout.write(tok.decode(ids) + "\n")


# ---- argument parsing ------------------------------------------------------------------------------
def build_parser():
    p = argparse.ArgumentParser(prog="nanoframe", description="Train and sample small GPTs on a CPU with NumPy.")
    sub = p.add_subparsers(dest="command", required=True)

    tk = sub.add_parser("tokenizer", help="train a tokenizer, encode or decode text")
    tsub = tk.add_subparsers(dest="action", required=True)
    tt = tsub.add_parser("train", help="train a BPE (or char) tokenizer on text files")
    tt.add_argument("--data", nargs="+", required=True, help="text files or folders")
    tt.add_argument("--glob", default="**/*.txt", help="files to take from folders (default **/*.txt)")
    tt.add_argument("--vocab-size", type=int, default=2048)
    tt.add_argument("--kind", choices=["bpe", "char"], default="bpe")
    tt.add_argument("--out", required=True, help="tokenizer file to write (JSON)")
    tt.add_argument("--no-progress", action="store_true")
    te = tsub.add_parser("encode", help="print the ids of a text")
    te.add_argument("--tokenizer", required=True)
    te.add_argument("--text", help="text to encode (default: --file or stdin)")
    te.add_argument("--file")
    td = tsub.add_parser("decode", help="print the text of ids")
    td.add_argument("--tokenizer", required=True)
    td.add_argument("ids", nargs="*", help="ids (default: read from stdin)")

    pr = sub.add_parser("prepare", help="tokenize a corpus into train.bin / val.bin")
    pr.add_argument("--data", nargs="*", help="text files or folders (default: the Python stdlib)")
    pr.add_argument("--glob", default="**/*.txt")
    pr.add_argument("--out", required=True, help="data folder to write")
    pr.add_argument("--tokenizer", default="bpe", help="bpe, char, or a tokenizer file")
    pr.add_argument("--vocab-size", type=int, default=2048)
    pr.add_argument("--no-progress", action="store_true")

    tr = sub.add_parser("train", help="pretrain a GPT (default: on the Python stdlib, offline)",
                        epilog="Any model or training config field can be overridden with --field value, "
                               "e.g. --n_layer 2 --lr 3e-4 --max_iters 500.")
    tr.add_argument("--data", nargs="*", help="text files or folders (default: the Python stdlib)")
    tr.add_argument("--glob", default="**/*.txt")
    tr.add_argument("--data-dir", help="a folder written by `nanoframe prepare`")
    tr.add_argument("--out", default=DEFAULT_RUN, help=f"run folder (default {DEFAULT_RUN})")
    tr.add_argument("--preset", choices=["tiny", "small", "default"])
    tr.add_argument("--tokenizer", help="bpe, char, or a tokenizer file (default: bpe for the stdlib, char for --data)")
    tr.add_argument("--vocab-size", type=int, default=2048)
    tr.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    tr.add_argument("--no-sample", action="store_true", help="skip the sample printed at the end")
    tr.add_argument("--no-progress", action="store_true")

    sa = sub.add_parser("sample", help="generate text from a run or checkpoint")
    sa.add_argument("run")
    sa.add_argument("--prompt", default="")
    sa.add_argument("--max-new-tokens", type=int, default=200)
    sa.add_argument("--temperature", type=float, default=0.8)
    sa.add_argument("--top-k", type=int, default=None)
    sa.add_argument("--top-p", type=float, default=None)
    sa.add_argument("--seed", type=int, default=None)
    sa.add_argument("--num-samples", type=int, default=1)

    inf = sub.add_parser("info", help="show a checkpoint's config, size, step and val loss")
    inf.add_argument("checkpoint")

    ft = sub.add_parser("finetune", help="fine-tune a nanoframe run or a Hugging Face GPT-2 (full, frozen or LoRA)",
                        epilog="Training fields can be overridden with --field value (e.g. --max_iters 100 --lr 1e-4); "
                               "of the model only --dropout and --block_size (<= the base's) may change. Without --data "
                               "the stdlib package held out of the default pretraining run is used. .jsonl files are "
                               "instruction data: {\"prompt\", \"completion\"} or {\"messages\": [...]} per line.")
    src = ft.add_mutually_exclusive_group()
    src.add_argument("--from", dest="from_run", metavar="RUN", help="a nanoframe run or checkpoint folder")
    src.add_argument("--from-hf", metavar="DIR", help="a Hugging Face GPT-2 folder (config.json + model.safetensors)")
    ft.add_argument("--tokenizer", help="with --from-hf: a tokenizer file, or a folder with vocab.json/merges.txt "
                                        "or encoder.json/vocab.bpe (default: the model folder)")
    ft.add_argument("--data", nargs="*", help="text files/folders, or .jsonl instruction files (default: stdlib holdout)")
    ft.add_argument("--glob", default="**/*.txt")
    ft.add_argument("--out", help="run folder (default runs/finetune or runs/finetune-lora)")
    ft.add_argument("--val-fraction", type=float, default=0.1)
    ft.add_argument("--lora", action="store_true", help="train LoRA adapters instead of the weights")
    ft.add_argument("--lora-targets", default="c_attn,c_proj,c_fc", help="comma-separated layer names (default %(default)s)")
    ft.add_argument("--lora-r", type=int, default=8)
    ft.add_argument("--lora-alpha", type=float, default=16.0)
    ft.add_argument("--lora-dropout", type=float, default=0.0)
    ft.add_argument("--freeze", nargs="+", metavar="PATTERN", help="freeze parameters matching fnmatch patterns")
    ft.add_argument("--freeze-layers", type=int, default=0, metavar="N", help="freeze the first N blocks")
    ft.add_argument("--freeze-embeddings", action="store_true", help="freeze wte (= tied lm_head) and wpe")
    ft.add_argument("--no-sample", action="store_true")
    ft.add_argument("--no-progress", action="store_true")

    lo = sub.add_parser("lora", help="LoRA adapter tools")
    losub = lo.add_subparsers(dest="action", required=True)
    lm = losub.add_parser("merge", help="fold an adapter into its base: a plain checkpoint `sample` can read")
    lm.add_argument("--base", required=True, help="the base run/checkpoint (or Hugging Face folder)")
    lm.add_argument("--adapter", required=True, help="a LoRA run folder or an adapter .safetensors file")
    lm.add_argument("--out", required=True, help="checkpoint folder to write")
    lm.add_argument("--tokenizer", help="with a Hugging Face base: its tokenizer file or folder")

    pl = sub.add_parser("plot", help="write a run's loss curves as SVG")
    pl.add_argument("run")
    pl.add_argument("--out", help="SVG path (default RUN/loss.svg)")
    return p


def main(argv=None):
    from nanoframe.runtime import tune_malloc
    tune_malloc()   # opt-in malloc tuning: a nanoframe command owns its process (nanoframe.runtime)
    from nanoframe.data import DataError
    from nanoframe.training.checkpoint import CheckpointError
    from nanoframe.training.trainer import TrainingError

    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    try:
        if extra and args.command not in ("train", "finetune"):
            raise UsageError(f"unrecognized arguments: {' '.join(extra)}")
        if args.command == "train":
            cmd_train(args, extra)
        elif args.command == "finetune":
            cmd_finetune(args, extra)
        else:
            {"prepare": cmd_prepare, "sample": cmd_sample, "info": cmd_info, "plot": cmd_plot,
             "tokenizer": cmd_tokenizer, "lora": cmd_lora}[args.command](args)
    except KeyboardInterrupt:
        print("\nnanoframe: interrupted (resume a training run with --resume)", file=sys.stderr)
        return 130
    except (UsageError, DataError, CheckpointError, TrainingError, ValueError, OSError) as e:
        if os.environ.get("NANOFRAME_DEBUG"):
            raise
        msg = str(e) if not isinstance(e, OSError) or not e.filename else f"{e.strerror}: {e.filename}"
        print(f"nanoframe: error: {msg}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
