"""Pretrain a small GPT on a folder of text with a BPE tokenizer trained on it, then sample.

    python examples/pretrain_bpe_folder.py ../shared/data/gutenberg_nltk --vocab-size 4096 --max-iters 1000

Steps: find *.txt files, split them into train/val by document, train a GPT-4-pattern byte-level
BPE tokenizer on the train documents, tokenize to train.bin / val.bin, train, sample.
"""
import argparse
from pathlib import Path

import nanoframe
from nanoframe import data as D
from nanoframe.models import GPT, GPTConfig
from nanoframe.training.config import TrainConfig
from nanoframe.training.trainer import Trainer


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("folder", help="a folder of .txt files (searched recursively)")
    ap.add_argument("--out", default="runs/bpe_folder")
    ap.add_argument("--vocab-size", type=int, default=4096)
    ap.add_argument("--max-iters", type=int, default=1000)
    args = ap.parse_args()

    docs = list(D.documents(D.find_files([args.folder], "**/*.txt")))
    train, val = D.split_documents(docs, val_fraction=0.1)
    print(f"{len(train)} train and {len(val)} val documents")
    tok = D.train_tokenizer("bpe", train, vocab_size=args.vocab_size)
    data_dir = Path(args.out) / "data"
    meta = D.prepare(train, val, tok, data_dir)
    print(f"{meta['train_tokens']:,} train tokens, {meta['val_tokens']:,} val tokens")

    cfg = TrainConfig(batch_size=8, max_iters=args.max_iters, lr=1e-3, min_lr=1e-4, warmup_iters=100,
                      eval_interval=200, eval_iters=20)
    nanoframe.manual_seed(cfg.seed)
    model = GPT(GPTConfig(vocab_size=tok.vocab_size, block_size=128, n_layer=4, n_head=4, n_embd=256))
    batches = D.TokenData(data_dir, model.config.block_size, cfg.batch_size, seed=cfg.seed)
    trainer = Trainer(model, batches, cfg, args.out, tokenizer=tok)   # the run keeps a copy of the tokenizer
    summary = trainer.train()
    print(f"val loss {summary['val_loss']:.4f} after {summary['steps']} steps")
    out = model.generate([[tok.eot_id]], 200, temperature=0.8, top_k=50, seed=0)
    print(tok.decode(out[0, 1:].tolist()))


if __name__ == "__main__":
    main()
