"""BPE tokenizer benchmark: nanoframe vs Hugging Face `tokenizers` (training) and tiktoken
(encoding with the same ranks), on tiny shakespeare by default; and encoding with Hugging Face's
merge rule (a tokenizer.json) vs `tokenizers` itself.

    python benchmarks/bench_tokenizer.py [--data PATH] [--vocab-size 4096] [--markdown]

Training times are wall-clock seconds of one run each; HF runs in a subprocess (so that
RAYON_NUM_THREADS takes effect) with one thread and with its default thread count.
Encoding throughput is the best of 3 runs of `encode_ordinary` on the whole text; "cold"
uses a fresh tokenizer each run (empty chunk cache), "warm" encodes the text a second time.
The "tokenizer.json" rows encode with the trained tokenizer written as a tokenizer.json and
read back ("merges" rule, ignore_merges), against `tokenizers` encoding the text in one call
(one thread: RAYON_NUM_THREADS is not set, but one text is one sequence).
The script asserts that nanoframe, tiktoken and `tokenizers` produce identical ids.
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from nanoframe.tokenizer import BPETokenizer
from nanoframe.tokenizer.pretokenize import PATTERNS

DATA_DIR = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
DEFAULT_DATA = DATA_DIR / "tinyshakespeare.txt"

HF_SCRIPT = """
import sys, time
from tokenizers import Tokenizer, models, pre_tokenizers, trainers
text = open(sys.argv[1], encoding="utf-8").read()
tok = Tokenizer(models.BPE())
tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
trainer = trainers.BpeTrainer(vocab_size=int(sys.argv[2]), show_progress=False,
                              initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
start = time.perf_counter()
tok.train_from_iterator([text], trainer)
print(time.perf_counter() - start)
"""


def hf_train_seconds(path, vocab_size, threads):
    """Seconds HF `tokenizers` takes to train, or None if it is not installed."""
    env = dict(os.environ)
    if threads is not None:
        env["RAYON_NUM_THREADS"] = str(threads)
    run = subprocess.run([sys.executable, "-c", HF_SCRIPT, str(path), str(vocab_size)],
                         env=env, capture_output=True, text=True)
    if run.returncode != 0:
        print(f"(HF tokenizers unavailable: {run.stderr.strip().splitlines()[-1:]})",
              file=sys.stderr)
        return None
    return float(run.stdout.strip().splitlines()[-1])


def best_of(n, fn):
    """Smallest wall-clock time of n calls, and the last result."""
    best, result = float("inf"), None
    for _ in range(n):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def hf_rule_rows(tok, text, mb, log):
    """Encoding rows for the "merges" rule: tok written as tokenizer.json and read back."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "tokenizer.json"
        tok.save_tokenizer_json(path)
        cold, ids = best_of(3, lambda: BPETokenizer.from_tokenizer_json(path).encode_ordinary(text))
        hf_tok = BPETokenizer.from_tokenizer_json(path)
        warm, _ = best_of(3, lambda: hf_tok.encode_ordinary(text))
        try:
            import tokenizers
        except ImportError:
            log("(tokenizers not installed: no tokenizer.json comparison)")
            return [("tokenizer.json encoding, MB/s, cold cache", mb / cold, None, "MB/s")]
        hf = tokenizers.Tokenizer.from_file(str(path))
        hf_time, hf_ids = best_of(3, lambda: hf.encode(text, add_special_tokens=False).ids)
    assert hf_ids == ids, "nanoframe and tokenizers ids differ"
    log(f"ids identical to tokenizers: {len(ids)} tokens")
    return [("tokenizer.json encoding, MB/s, cold cache (vs tokenizers)", mb / cold, mb / hf_time, "MB/s"),
            ("tokenizer.json encoding, MB/s, warm cache (vs tokenizers)", mb / warm, mb / hf_time, "MB/s")]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="UTF-8 text file")
    parser.add_argument("--vocab-size", type=int, default=4096)
    parser.add_argument("--markdown", action="store_true", help="print only the table")
    args = parser.parse_args()
    if not args.data.is_file():
        sys.exit(f"data file not found: {args.data} (pass --data PATH to a UTF-8 text file)")
    text = args.data.read_text(encoding="utf-8")
    mb = len(text.encode("utf-8")) / 1e6
    log = (lambda *a: None) if args.markdown else print
    log(f"data: {args.data.resolve()} ({mb:.2f} MB), vocab_size {args.vocab_size}")

    start = time.perf_counter()
    tok = BPETokenizer().train(text, args.vocab_size, pattern="gpt2", show_progress=False)
    nf_train = time.perf_counter() - start
    log(f"nanoframe training: {nf_train:.2f} s")
    hf_1 = hf_train_seconds(args.data, args.vocab_size, threads=1)
    hf_n = hf_train_seconds(args.data, args.vocab_size, threads=None)
    log(f"HF tokenizers training: {hf_1} s (1 thread), {hf_n} s (default threads)")

    ranks, pattern = tok.mergeable_ranks, tok.pattern
    cold, ids = best_of(3, lambda: BPETokenizer(ranks, pattern).encode_ordinary(text))
    warm, _ = best_of(3, lambda: tok.encode_ordinary(text))
    rows = [("training, s (HF 1 thread)", nf_train, hf_1, "s"),
            ("training, s (HF default threads)", nf_train, hf_n, "s")]
    try:
        import tiktoken
    except ImportError:
        tiktoken = None
        log("(tiktoken not installed: no encoding comparison)")
    tt = None
    if tiktoken is not None:
        enc = tiktoken.Encoding("bench", pat_str=PATTERNS[pattern], mergeable_ranks=ranks,
                                special_tokens={})
        tt_time, tt_ids = best_of(3, lambda: enc.encode_ordinary(text))
        assert tt_ids == ids, "nanoframe and tiktoken ids differ"
        log(f"ids identical to tiktoken: {len(ids)} tokens")
        tt = mb / tt_time
    rows += [("encoding, MB/s, cold cache (vs tiktoken)", mb / cold, tt, "MB/s"),
             ("encoding, MB/s, warm cache (vs tiktoken)", mb / warm, tt, "MB/s")]
    rows += hf_rule_rows(tok, text, mb, log)

    print(f"| {args.data.name}, vocab {args.vocab_size} | nanoframe | reference | "
          "ratio nanoframe/reference |")
    print("|---|---|---|---|")
    for name, ours, ref, unit in rows:
        ratio = f"{ours / ref:.2f}" if ref else "n/a"
        ref_s = f"{ref:.2f}" if ref else "n/a"
        print(f"| {name} | {ours:.2f} | {ref_s} | {ratio} |")


if __name__ == "__main__":
    main()
