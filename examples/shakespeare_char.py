"""Character-level tiny shakespeare with nanoGPT's CPU settings, through the Python API.

    curl -O https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt
    python examples/shakespeare_char.py input.txt --out runs/shakespeare_char

Same as `nanoframe train --data input.txt --tokenizer char --preset tiny`: 4 layers, 4 heads,
C 128, T 64, B 12, lr 1e-3 cosine to 1e-4, 2000 iterations, no dropout. nanoGPT's published val
loss for these settings is about 1.88.
"""
import argparse
from pathlib import Path

import nanoframe
from nanoframe import data as D
from nanoframe.models import GPT, GPTConfig
from nanoframe.training.config import PRESETS, TrainConfig
from nanoframe.training.trainer import Trainer


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("input", help="tiny shakespeare input.txt")
    ap.add_argument("--out", default="runs/shakespeare_char")
    ap.add_argument("--max-iters", type=int, default=2000)
    args = ap.parse_args()

    text = D.read_text(args.input)
    train, val = D.split_documents([D.Document("input", text)])  # first 90% / last 10%
    tok = D.train_tokenizer("char", train + val)
    data_dir = Path(args.out) / "data"
    D.prepare(train, val, tok, data_dir)

    preset = PRESETS["tiny"]
    cfg = TrainConfig(**{**preset["train"], "max_iters": args.max_iters})
    nanoframe.manual_seed(cfg.seed)
    model = GPT(GPTConfig(vocab_size=tok.vocab_size, **preset["model"]))
    batches = D.TokenData(data_dir, model.config.block_size, cfg.batch_size, seed=cfg.seed)
    trainer = Trainer(model, batches, cfg, args.out, tokenizer=tok)   # the run keeps a copy of the tokenizer
    summary = trainer.train()
    print(f"val loss {summary['val_loss']:.4f} after {summary['steps']} steps "
          f"({summary['tokens_per_sec']:,.0f} tokens/s)")
    out = model.generate([tok.encode("ROMEO:")], 300, temperature=0.8, top_k=40, seed=0)
    print(tok.decode(out[0].tolist()))


if __name__ == "__main__":
    main()
