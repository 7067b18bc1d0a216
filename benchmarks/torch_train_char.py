"""PyTorch's twin of `nanoframe train --data <text> --tokenizer char --preset tiny`, end to end.

    python benchmarks/torch_train_char.py --data ../shared/data/tinyshakespeare.txt --out /tmp/torch_run

The same work as the nanoframe command, in PyTorch: read and split the text and train the
character tokenizer, write the token files (both through nanoframe.data, so the tokens are the
same), build the tiny preset's model (benchmarks/torch_gpt.py: 4 layers, 4 heads, C 128, T 64,
biases, tied head, GPT-2 init), and train it for the preset's 2000 steps with the same batches
(nanoframe.data.TokenData with the preset's seed draws them), the same warmup + cosine schedule
(nanoframe.optim.lr_schedule), AdamW over the same two groups (decay 0.1 on matrices, betas
(0.9, 0.99)), clipping at 1.0, an eval over the same 20 fixed val batches every 250 steps and at
the end, a metrics line per step and a checkpoint (model + optimizer) every 500 steps and of each
new best. benchmarks/bench_e2e.py runs it beside the nanoframe command. Prints one JSON line.
"""
import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_gpt import TorchGPT  # noqa: E402

from nanoframe import data as D  # noqa: E402
from nanoframe.optim.lr_schedule import cosine_with_warmup  # noqa: E402
from nanoframe.training.config import PRESETS, TrainConfig  # noqa: E402


def prepare(text, out):
    """Token files for `text` under out/data (as `nanoframe train` writes them under RUN/data)."""
    train, val = D.split_documents(list(D.documents(D.find_files([text], "**/*.txt"))))
    tok = D.train_tokenizer("char", train + val, 0, show_progress=False)
    data_dir = out / "data"
    D.prepare(train, val, tok, data_dir, f"files: {text}", show_progress=False)
    return data_dir


@torch.no_grad()
def evaluate(model, batches):
    model.eval()
    losses = [model(torch.from_numpy(x), torch.from_numpy(y))[1].item() for x, y in batches]
    model.train()
    return sum(losses) / len(losses)


def save(path, model, opt, step):
    tmp = path.with_suffix(".tmp")
    torch.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "step": step}, tmp)
    os.replace(tmp, path)


def train(text, out, max_iters=None):
    t_start = time.perf_counter()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    preset = PRESETS["tiny"]
    cfg = TrainConfig.from_dict({**preset["train"], **({"max_iters": max_iters} if max_iters else {})})
    m = preset["model"]
    data_dir = prepare(text, out)
    vocab = D.load_meta(data_dir)["vocab_size"]
    torch.manual_seed(cfg.seed)
    model = TorchGPT(vocab, m["block_size"], m["n_layer"], m["n_head"], m["n_embd"], bias=m["bias"])
    opt = model.configure_optimizer(cfg.weight_decay, cfg.lr, (cfg.beta1, cfg.beta2))
    data = D.TokenData(data_dir, m["block_size"], cfg.batch_size, seed=cfg.seed)
    val = data.val_batches(cfg.eval_iters)
    total = cfg.lr_decay_iters or cfg.max_iters
    metrics = open(out / "metrics.jsonl", "w", encoding="utf-8")
    best, val_loss, t_train = math.inf, None, time.perf_counter()

    def eval_and_keep(step):
        nonlocal best, val_loss
        val_loss = evaluate(model, val)
        metrics.write(json.dumps({"step": step, "val_loss": val_loss}) + "\n")
        if val_loss < best:
            best = val_loss
            save(out / "best.pt", model, opt, step)

    for step in range(cfg.max_iters):
        if step % cfg.eval_interval == 0:
            eval_and_keep(step)
        lr = cosine_with_warmup(step, cfg.lr, cfg.min_lr, cfg.warmup_iters, total)
        for group in opt.param_groups:
            group["lr"] = lr
        x, y = data.get_batch("train")
        _, loss = model(torch.from_numpy(x), torch.from_numpy(y))
        loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        opt.zero_grad(set_to_none=True)
        metrics.write(json.dumps({"step": step, "loss": loss.item(), "lr": lr, "grad_norm": norm.item()}) + "\n")
        if (step + 1) % cfg.checkpoint_interval == 0 and step + 1 < cfg.max_iters:
            save(out / f"step-{step + 1}.pt", model, opt, step + 1)
    eval_and_keep(cfg.max_iters)
    save(out / f"step-{cfg.max_iters}.pt", model, opt, cfg.max_iters)
    metrics.close()
    now = time.perf_counter()
    return {"val_loss": val_loss, "best_val_loss": best, "train_seconds": now - t_train,
            "seconds": now - t_start, "threads": torch.get_num_threads()}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True, help="the text file (tiny shakespeare)")
    ap.add_argument("--out", required=True, help="folder for the token files, metrics and checkpoints")
    ap.add_argument("--max-iters", type=int, default=None, help="fewer steps than the preset's 2000 (a quick check)")
    args = ap.parse_args()
    print(json.dumps(train(args.data, args.out, args.max_iters)))


if __name__ == "__main__":
    main()
