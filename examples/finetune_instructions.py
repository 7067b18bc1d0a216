"""Instruction fine-tuning on a task the base model never saw: reversing short strings.

1. Save a fresh tiny byte-level GPT (bytes + <|endoftext|>) as the base checkpoint.
2. Write a JSONL instruction set: {"prompt": "cabd>", "completion": "dbac"}.
3. Fine-tune with `nanoframe.training.finetune.finetune` (the code behind `nanoframe finetune`):
   loss on the completion tokens only, examples packed into blocks, early stopping on val loss.
4. Greedy exact-match accuracy on held-out prompts, before and after.

    OPENBLAS_NUM_THREADS=1 python examples/finetune_instructions.py      # under a minute on 2 cores
"""
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from nanoframe.models import GPT, GPTConfig
from nanoframe.random import manual_seed
from nanoframe.tokenizer import BPETokenizer
from nanoframe.training.finetune import finetune, generate_completion
from nanoframe.training.run import save_run

LETTERS = "abcdefgh"
rng = np.random.default_rng(0)


def word():
    return "".join(rng.choice(list(LETTERS), size=rng.integers(3, 6)))


def accuracy(model, tok, pairs):
    hits = sum(generate_completion(model, tok, p, max_new_tokens=8) == c for p, c in pairs)
    return hits / len(pairs)


def main():
    t_start = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="nanoframe-instr-"))
    tok = BPETokenizer(special_tokens={"<|endoftext|>": 256})  # bytes + end-of-text: 257 ids

    # 1. the base: a fresh tiny byte-level GPT saved as a run folder (what `finetune` starts
    #    from). A base briefly pretrained on random letters learns that context does not matter and
    #    then needs many more steps to pick the task up, so this example starts from scratch.
    mcfg = GPTConfig(vocab_size=tok.vocab_size, block_size=12, n_layer=2, n_head=4, n_embd=64)
    manual_seed(0)
    base = GPT(mcfg)
    save_run(work / "base", base, tok)

    # 2. the instruction set, and held-out prompts that appear nowhere in it
    seen, rows = set(), []
    while len(rows) < 3000:
        w = word()
        seen.add(w)
        rows.append({"prompt": f"{w}>", "completion": w[::-1]})
    held = []
    while len(held) < 100:
        w = word()
        if w not in seen:
            seen.add(w)
            held.append((f"{w}>", w[::-1]))
    (work / "reverse.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))

    before = accuracy(base.eval(), tok, held)
    # 3. fine-tune (full); lr and steps above the library's fine-tuning defaults: a new task, a fresh model
    # block_size 12 holds one example per row, so every example starts at position 0
    s = finetune(work / "base", work / "finetune", [work / "reverse.jsonl"],
                 train_overrides=dict(max_iters=400, lr=3e-3, min_lr=3e-4, batch_size=16, eval_interval=50,
                                      eval_iters=5, early_stop_patience=4, weight_decay=0.0),
                 show_progress=False, log=lambda m: print(m, file=sys.stderr))
    after = accuracy(s["model"].eval(), tok, held)

    # 4. report
    print(f"held-out exact match (greedy, {len(held)} prompts): before {100 * before:.0f}% -> after {100 * after:.0f}%")
    print(f"val loss on completions: {s['val_loss_before']:.3f} -> {s['val_loss_after']:.3f} "
          f"({s['steps']} steps, {s['stopped']})")
    for p, c in held[:5]:
        print(f"  {p!r:10} -> {generate_completion(s['model'], tok, p, 8)!r:10} (expected {c!r})")
    print(f"total {time.perf_counter() - t_start:.0f} s; runs in {work}")


if __name__ == "__main__":
    main()
