"""Data: find a corpus, tokenize it into train.bin / val.bin, and sample batches from them.

    corpus (files or the stdlib) --prepare()--> out_dir/{train.bin, val.bin, meta.json, tokenizer.json}
    out_dir --TokenData--> random (B, T) windows for training, a fixed list of windows for eval
"""
import json
import os
import sysconfig
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from nanoframe.errors import DataError
from nanoframe.io import atomic_open, atomic_write_text, read_json

# Packages of the standard library never used for the default corpus: tests and vendored data.
_STDLIB_SKIP = {"test", "tests", "idle_test", "site-packages", "dist-packages", "__pycache__",
                "lib2to3", "ensurepip", "turtledemo"}
DEFAULT_HOLDOUT = "json"  # the stdlib package held out as validation (and later fine-tuned on)




@dataclass
class Document:
    """One text document of the corpus (a file, usually)."""

    name: str
    text: str


# ---- finding text ----------------------------------------------------------------------------
def read_text(path):
    """A file's text as UTF-8, falling back to Latin-1; CRLF normalised to LF."""
    raw = Path(path).read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")
    return text.replace("\r\n", "\n")


def find_files(paths, glob="**/*.txt"):
    """Every file named in `paths`, folders expanded recursively by `glob` (sorted, deterministic)."""
    files = []
    for p in [paths] if isinstance(paths, (str, os.PathLike)) else paths:
        p = Path(p)
        if p.is_file():
            files.append(p)
        elif p.is_dir():
            found = sorted(f for f in p.glob(glob) if f.is_file())
            if not found:
                raise DataError(f"no files matching {glob!r} under {p}")
            files.extend(found)
        else:
            raise DataError(f"no such file or folder: {p}")
    return files


def stdlib_dir():
    return Path(sysconfig.get_paths()["stdlib"])


def stdlib_files(holdout=DEFAULT_HOLDOUT):
    """The standard library's own .py sources, split into (train_files, holdout_files).

    Test folders and vendored tools are excluded; every file of package `holdout` goes to the
    second list, so validation (and fine-tuning) text is code the model never trained on.
    """
    root = stdlib_dir()
    train, held = [], []
    for f in sorted(root.rglob("*.py")):
        parts = f.relative_to(root).parts
        if any(p in _STDLIB_SKIP or p.startswith(("test", "config-")) for p in parts):
            continue
        (held if parts[0] == holdout else train).append(f)
    if not held:
        raise DataError(f"the standard library in {root} has no package {holdout!r} to hold out")
    return train, held


def documents(files, root=None):
    """Documents of a list of files, skipping empty ones."""
    for f in files:
        text = read_text(f)
        if text.strip():
            yield Document(str(f.relative_to(root) if root else f), text)


# ---- tokenizing to .bin files --------------------------------------------------------------------
def token_dtype(vocab_size):
    """uint16 when every id fits, else uint32."""
    return np.uint16 if vocab_size <= 2**16 else np.uint32


def split_documents(docs, val_fraction=0.1, seed=0):
    """Split a document list into (train, val) by document, deterministically.

    A single document is split by position instead (its last `val_fraction` goes to val), the way
    nanoGPT splits tiny shakespeare.
    """
    docs = list(docs)
    if not docs:
        raise DataError("the corpus is empty: no non-empty text files")
    if len(docs) == 1:
        d = docs[0]
        cut = int(len(d.text) * (1 - val_fraction))
        return [Document(d.name, d.text[:cut])], [Document(d.name + ":val", d.text[cut:])]
    order = np.random.default_rng(seed).permutation(len(docs))
    n_val = max(1, int(round(len(docs) * val_fraction)))
    val_idx = set(order[:n_val].tolist())
    return ([d for i, d in enumerate(docs) if i not in val_idx],
            [d for i, d in enumerate(docs) if i in val_idx])


def write_tokens(docs, tokenizer, path, show_progress=True, desc="tokenizing"):
    """Tokenize documents one at a time and append their ids to `path` (streaming, atomic).

    Documents are separated by the tokenizer's end-of-text token when it has one. Returns the
    number of tokens written.
    """
    dtype = token_dtype(tokenizer.vocab_size)
    eot = getattr(tokenizer, "eot_id", None)
    docs = list(docs)
    total = sum(len(d.text) for d in docs)
    n = 0
    with atomic_open(path, "wb") as f, tqdm(total=total, unit="char", unit_scale=True, desc=desc,
                                            disable=not show_progress, leave=False) as bar:
        for d in docs:
            ids = tokenizer.encode_ordinary(d.text)
            if eot is not None:
                ids.append(eot)
            np.asarray(ids, dtype=dtype).tofile(f)
            n += len(ids)
            bar.update(len(d.text))
    return n


def prepare(train_docs, val_docs, tokenizer, out_dir, tokenizer_path=None, source="", show_progress=True):
    """Write out_dir/{train.bin, val.bin, meta.json} (and tokenizer.json unless given a path)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if tokenizer_path is None:
        tokenizer_path = out / "tokenizer.json"
        tokenizer.save(tokenizer_path)
    n_train = write_tokens(train_docs, tokenizer, out / "train.bin", show_progress, "tokenizing train")
    n_val = write_tokens(val_docs, tokenizer, out / "val.bin", show_progress, "tokenizing val")
    meta = {
        "vocab_size": tokenizer.vocab_size,
        "dtype": np.dtype(token_dtype(tokenizer.vocab_size)).name,
        "tokenizer": str(Path(tokenizer_path).resolve()),
        "train_tokens": n_train,
        "val_tokens": n_val,
        "train_documents": len(train_docs),
        "val_documents": len(val_docs),
        "source": source,
    }
    atomic_write_text(out / "meta.json", json.dumps(meta, indent=2) + "\n")
    return meta


def load_meta(data_dir):
    return read_json(Path(data_dir) / "meta.json",
                     f"{data_dir} has no meta.json: run `nanoframe prepare` first", DataError)


# ---- batches -----------------------------------------------------------------------------------
class TokenData:
    """Batches from a prepared data folder, read through np.memmap (the corpus never sits in RAM).

    `get_batch("train")` draws B random windows with its own seeded generator, whose state is
    part of a checkpoint so a resumed run draws the same batches. `val_batches` is a fixed list
    of evenly spaced windows, the same at every eval.
    """

    def __init__(self, data_dir, block_size, batch_size, seed=0):
        self.dir = Path(data_dir)
        self.meta = load_meta(data_dir)
        self.block_size, self.batch_size = block_size, batch_size
        dtype = np.dtype(self.meta["dtype"])
        self.splits = {}
        for split in ("train", "val"):
            path = self.dir / f"{split}.bin"
            if not path.is_file():
                raise DataError(f"missing {path}: run `nanoframe prepare` again")
            n = path.stat().st_size // dtype.itemsize
            if n < block_size + 1:
                raise DataError(f"{split} split of {data_dir} has {n} tokens, fewer than "
                                f"block_size + 1 = {block_size + 1}; use a smaller block_size or more data")
            self.splits[split] = np.memmap(path, dtype=dtype, mode="r")
        self.rng = np.random.default_rng(seed)

    def get_batch(self, split="train"):
        """(x, y) int64 arrays of shape (B, T); y is x shifted by one token."""
        data = self.splits[split]
        starts = self.rng.integers(0, len(data) - self.block_size, size=self.batch_size)
        return self._windows(data, starts)

    def _windows(self, data, starts):
        T = self.block_size
        idx = starts[:, None] + np.arange(T + 1)  # (B, T+1)
        chunk = data[idx].astype(np.int64)
        return chunk[:, :-1], chunk[:, 1:]

    def val_batches(self, max_batches=None, split="val"):
        """Evenly spaced non-overlapping windows over a split, in fixed batches (exhaustive by default)."""
        data = self.splits[split]
        T, B = self.block_size, self.batch_size
        starts = np.arange(0, len(data) - T, T)
        if max_batches is not None and len(starts) > max_batches * B:
            starts = starts[np.linspace(0, len(starts) - 1, max_batches * B).astype(np.int64)]
        return [self._windows(data, starts[i:i + B]) for i in range(0, len(starts), B)]

    def state_dict(self):
        return {"rng": self.rng.bit_generator.state}

    def load_state_dict(self, state):
        self.rng.bit_generator.state = state["rng"]


# ---- tokenizers ----------------------------------------------------------------------------------
def load_tokenizer(path):
    """Load a tokenizer file written by BPETokenizer.save or CharTokenizer.save."""
    from nanoframe.tokenizer import BPETokenizer, CharTokenizer
    from nanoframe.tokenizer.char import FORMAT_NAME as CHAR_FORMAT

    path = Path(path)
    if not path.is_file():
        raise DataError(f"no such tokenizer file: {path}")
    try:
        head = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DataError(f"{path} is not a tokenizer file (not valid JSON: {e})") from None
    is_char = isinstance(head, dict) and head.get("format") == CHAR_FORMAT
    return (CharTokenizer if is_char else BPETokenizer).load(path)


def train_tokenizer(kind, docs, vocab_size=2048, max_chars=3_000_000, show_progress=True):
    """A new tokenizer trained on (at most max_chars of) the documents: kind "bpe" or "char"."""
    from nanoframe.tokenizer import BPETokenizer, CharTokenizer

    texts, n = [], 0
    for d in docs:
        if n >= max_chars:
            break
        texts.append(d.text[: max_chars - n])
        n += len(texts[-1])
    if kind == "char":
        return CharTokenizer().train(texts)
    if kind != "bpe":
        raise DataError(f"unknown tokenizer kind {kind!r}: use bpe, char, or a tokenizer file")
    return BPETokenizer().train(texts, vocab_size, pattern="gpt4", special_tokens=["<|endoftext|>"],
                                show_progress=show_progress)
