"""Fine-tuning demo: full fine-tuning vs LoRA on text the base model never saw.

    python benchmarks/finetune_demo.py                 # short pretrain on the stdlib (package json held out)
    python benchmarks/finetune_demo.py runs/default    # or start from an existing `nanoframe train` run

Then, from the same base, `nanoframe finetune`'s code path with no --data (the held-out stdlib
package, each file's last 10% as val) runs twice: full fine-tuning and LoRA (c_attn, c_proj, c_fc;
r=8). Prints a markdown table: val loss on the held-out package before and after, the improvement,
trainable parameters, their share, and seconds. Set OPENBLAS_NUM_THREADS=1 on a busy 2-core box.
"""
import argparse
import sys
import tempfile
import time
from pathlib import Path

from nanoframe import data as D
from nanoframe.models import GPT, GPTConfig
from nanoframe.random import manual_seed
from nanoframe.training.config import PRESETS, TrainConfig
from nanoframe.training.finetune import finetune
from nanoframe.training.trainer import Trainer


def pretrain(out, iters, progress):
    """The default run's model shape on the stdlib corpus (json held out), trained for `iters` steps."""
    t0 = time.perf_counter()
    train_docs, val_docs, _ = D.stdlib_corpus()
    tok = D.train_tokenizer("bpe", train_docs, vocab_size=2048, max_chars=1_000_000, show_progress=progress)
    meta = D.prepare(train_docs, val_docs, tok, out / "data", source="stdlib, json held out", show_progress=progress)
    preset = PRESETS["default"]
    mcfg = GPTConfig.from_dict({**preset["model"], "vocab_size": meta["vocab_size"]})
    tcfg = TrainConfig.from_dict({**preset["train"], "max_iters": iters, "eval_interval": 100, "eval_iters": 10,
                                  "checkpoint_interval": iters, "warmup_iters": 50})
    manual_seed(tcfg.seed)
    model = GPT(mcfg)
    data = D.TokenData(out / "data", mcfg.block_size, tcfg.batch_size, seed=tcfg.seed)
    s = Trainer(model, data, tcfg, out, show_progress=progress, tokenizer=tok).train()
    print(f"pretrained {out}: {s['steps']} steps, val loss (stdlib json package) {s['best_val_loss']:.4f}, "
          f"{time.perf_counter() - t0:.0f} s", file=sys.stderr)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("base", nargs="?", help="an existing nanoframe run (default: pretrain one now)")
    p.add_argument("--work", help="folder for the runs (default: a temporary folder)")
    p.add_argument("--pretrain-iters", type=int, default=400)
    p.add_argument("--iters", type=int, default=150, help="fine-tuning steps (early stopping may end sooner)")
    p.add_argument("--lora-r", type=int, default=8)
    p.add_argument("--lora-targets", default="c_attn,c_proj,c_fc")
    p.add_argument("--lora-lr", type=float, default=5e-3,
                   help="LoRA peak lr (default %(default)s, the CLI's default too)")
    p.add_argument("--progress", action="store_true")
    args = p.parse_args()

    work = Path(args.work or tempfile.mkdtemp(prefix="nanoframe-ftdemo-"))
    work.mkdir(parents=True, exist_ok=True)
    base = Path(args.base) if args.base else work / "pretrain"
    if not args.base:
        pretrain(base, args.pretrain_iters, args.progress)
    common = dict(max_iters=args.iters, eval_interval=15, eval_iters=20, early_stop_patience=3,
                  checkpoint_interval=args.iters)
    rows = []
    for name, lora in (("full", None),
                       ("LoRA", {"targets": args.lora_targets, "r": args.lora_r, "alpha": 2 * args.lora_r})):
        over = common if lora is None else {**common, "lr": args.lora_lr, "min_lr": args.lora_lr / 10}
        s = finetune(base, work / f"ft-{name.lower()}", lora=lora, train_overrides=over,
                     show_progress=args.progress, log=lambda m: print(m, file=sys.stderr))
        rows.append((name, s))
    print(f"\nbase: {base}; fine-tuning data: stdlib package {D.DEFAULT_HOLDOUT!r} (held out of pretraining)\n")
    print("| mode | val loss before | val loss after | improvement | trainable params | % of params | steps | seconds |")
    print("|---|---|---|---|---|---|---|---|")
    for name, s in rows:
        print(f"| {name} | {s['val_loss_before']:.4f} | {s['val_loss_after']:.4f} | {s['improvement']:.4f} | "
              f"{s['trainable_parameters']:,} | {100 * s['trainable_parameters'] / s['total_parameters']:.2f}% | "
              f"{s['steps']} | {s['seconds']:.0f} |")
    full, lora = rows[0][1], rows[1][1]
    ratio = lora["improvement"] / full["improvement"] if full["improvement"] else float("nan")
    share = lora["trainable_parameters"] / lora["total_parameters"]
    ok = ratio >= 0.5 and share < 0.05
    print(f"\nLoRA reaches {100 * ratio:.0f}% of the full fine-tune's improvement with {100 * share:.2f}% of the "
          f"parameters: {'PASS' if ok else 'FAIL'} (needs >= 50% with < 5%)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
