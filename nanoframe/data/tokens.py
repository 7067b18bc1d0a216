"""Token files: tokenize documents into train.bin / val.bin, and draw batches from them.

    prepare(train_docs, val_docs, tokenizer, out_dir)
        -> out_dir/{train.bin, val.bin, tokenizer.json, meta.json}      (meta.json written last)
    TokenData(out_dir, block_size, batch_size, seed)
        -> random (B, T) windows for training, a fixed list of windows for eval

A data folder is self-contained and movable: it holds its own copy of the tokenizer, and
meta.json names it relative to the folder together with its SHA-256, so a run can tell that a
shared data folder was re-prepared with another tokenizer. Everything in meta.json and the .bin
files is validated before use (dtype, sizes, every id below the vocabulary size).
"""
import json
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from nanoframe.data.source import BatchSource
from nanoframe.errors import DataError
from nanoframe.io import atomic_open, atomic_write_text, file_sha256, read_json
from nanoframe.schema import MAX_VOCAB, field

META_FORMAT, META_VERSION = "nanoframe.tokens", 1
TOKENIZER_FILE = "tokenizer.json"
_DTYPES = {"uint16": np.uint16, "uint32": np.uint32}


def token_dtype(vocab_size):
    """uint16 when every id fits, else uint32."""
    return np.uint16 if vocab_size <= 2**16 else np.uint32


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


def prepare(train_docs, val_docs, tokenizer, out_dir, source="", show_progress=True):
    """Write out_dir/{train.bin, val.bin, tokenizer.json, meta.json}; returns the meta dict.

    meta.json is written last (atomically), so a folder with a meta.json is complete."""
    out = Path(out_dir)
    _check_data_target(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "meta.json").unlink(missing_ok=True)      # incomplete until the new meta.json lands
    tokenizer.save(out / TOKENIZER_FILE)
    n_train = write_tokens(train_docs, tokenizer, out / "train.bin", show_progress, "tokenizing train")
    n_val = write_tokens(val_docs, tokenizer, out / "val.bin", show_progress, "tokenizing val")
    meta = {
        "format": META_FORMAT,
        "version": META_VERSION,
        "vocab_size": tokenizer.vocab_size,
        "dtype": np.dtype(token_dtype(tokenizer.vocab_size)).name,
        "tokenizer": TOKENIZER_FILE,
        "tokenizer_sha256": file_sha256(out / TOKENIZER_FILE),
        "train_tokens": n_train,
        "val_tokens": n_val,
        "train_documents": len(train_docs),
        "val_documents": len(val_docs),
        "source": source,
    }
    atomic_write_text(out / "meta.json", json.dumps(meta, indent=2) + "\n")
    return meta


_DATA_FILES = {"train.bin", "val.bin", "meta.json", TOKENIZER_FILE}


def _check_data_target(out):
    """prepare() writes only into a new or empty folder, or over a data folder it wrote itself: never
    into a run's root or a folder of the user's own files."""
    if not out.exists():
        return
    if not out.is_dir():
        raise DataError(f"{out} is a file, not a folder for token files")
    others = sorted(e.name for e in out.iterdir() if e.name not in _DATA_FILES and not e.name.endswith(".tmp"))
    ours = not (out / "meta.json").is_file()
    if not ours:
        try:
            meta = json.loads((out / "meta.json").read_text(encoding="utf-8"))
            ours = isinstance(meta, dict) and (meta.get("format") == META_FORMAT or "vocab_size" in meta)
        except (OSError, ValueError):
            ours = False
    if others or not ours:
        raise DataError(f"{out} holds files that are not nanoframe token files ({', '.join(others[:3]) or 'meta.json'}"
                        f"{'...' if len(others) > 3 else ''}); prepare into an empty folder or a data folder")


def load_meta(data_dir):
    """The validated meta.json of a data folder (DataError naming the file and field otherwise).

    Folders written by nanoframe 0.1 (no "format", an absolute tokenizer path) are read too."""
    path = Path(data_dir) / "meta.json"
    meta = read_json(path, f"{data_dir} has no meta.json: run `nanoframe prepare` first", DataError)
    where = str(path)
    if not isinstance(meta, dict):
        raise DataError(f"{where}: expected a JSON object, got {type(meta).__name__}")
    if "format" in meta:
        field(meta, "format", where, str, choices={META_FORMAT}, error=DataError)
        field(meta, "version", where, int, choices={META_VERSION}, error=DataError)
        field(meta, "tokenizer_sha256", where, str, error=DataError)
    vocab = field(meta, "vocab_size", where, int, low=1, high=MAX_VOCAB, error=DataError)
    dtype = field(meta, "dtype", where, str, choices=set(_DTYPES), error=DataError)
    if vocab > np.iinfo(_DTYPES[dtype]).max + 1:
        raise DataError(f"{where}: dtype {dtype} cannot hold the ids of a {vocab:,}-token vocabulary")
    field(meta, "tokenizer", where, str, error=DataError)
    for key in ("train_tokens", "val_tokens"):
        field(meta, key, where, int, low=0, error=DataError)
    return meta


def tokenizer_path(data_dir, meta):
    """The tokenizer file of a data folder: relative to it (or absolute in 0.1 folders)."""
    return Path(data_dir) / meta["tokenizer"]


def _check_ids(tokens, vocab_size, path, chunk=1 << 24):
    """Every id below vocab_size (a scan in chunks: a crafted file must not index past the
    embedding or train on ids the tokenizer cannot decode)."""
    for start in range(0, len(tokens), chunk):
        top = int(tokens[start:start + chunk].max())
        if top >= vocab_size:
            raise DataError(f"{path}: token id {top} is outside the vocabulary of {vocab_size} "
                            "(the file does not belong to this meta.json)")


class TokenData(BatchSource):
    """Batches from a prepared data folder, read through np.memmap (the corpus never sits in RAM).

    `get_batch("train")` draws B random windows with its own seeded generator, whose state is
    part of a checkpoint so a resumed run draws the same batches. `val_batches` is a fixed list
    of evenly spaced windows, the same at every eval.
    """

    def __init__(self, data_dir, block_size, batch_size, seed=0):
        self.dir = Path(data_dir)
        self.meta = load_meta(data_dir)
        self.block_size, self.batch_size = int(block_size), int(batch_size)
        dtype = np.dtype(_DTYPES[self.meta["dtype"]])
        self.splits = {}
        for split in ("train", "val"):
            path = self.dir / f"{split}.bin"
            if not path.is_file():
                raise DataError(f"missing {path}: run `nanoframe prepare` again")
            size = path.stat().st_size
            n = size // dtype.itemsize
            if size % dtype.itemsize or n != self.meta[f"{split}_tokens"]:
                raise DataError(f"{path} holds {size:,} bytes, but meta.json says {self.meta[f'{split}_tokens']:,} "
                                f"tokens of {dtype.name}: the folder is damaged; prepare it again")
            if n < self.block_size + 1:
                raise DataError(f"{split} split of {data_dir} has {n} tokens, fewer than "
                                f"block_size + 1 = {self.block_size + 1}; use a smaller block_size or more data")
            tokens = np.memmap(path, dtype=dtype, mode="r")
            _check_ids(tokens, self.meta["vocab_size"], path)
            self.splits[split] = tokens
        self.rng = np.random.default_rng(seed)

    def get_batch(self, split="train"):
        """(x, y) int64 arrays of shape (B, T); y is x shifted by one token."""
        data = self.splits[split]
        # the global batch of every rank (the same draw everywhere); this rank keeps its rows
        starts = self.rng.integers(0, len(data) - self.block_size, size=self.batch_size * self.world_size)
        return self._windows(data, self._own_rows(starts))

    def _windows(self, data, starts):
        T = self.block_size
        idx = starts[:, None] + np.arange(T + 1)  # (B, T+1)
        chunk = data[idx].astype(np.int64)
        return chunk[:, :-1], chunk[:, 1:]

    def val_batches(self, max_batches=None, split="val"):
        """Evenly spaced non-overlapping windows over a split, in fixed batches (exhaustive by default)."""
        data = self.splits[split]
        T, B = self.block_size, self.batch_size * self.world_size      # B: the global batch
        starts = np.arange(0, len(data) - T, T)
        if max_batches is not None and len(starts) > max_batches * B:
            starts = starts[np.linspace(0, len(starts) - 1, max_batches * B).astype(np.int64)]
        return [self._windows(data, self._own_rows(starts[i:i + B])) for i in range(0, len(starts), B)]

    def describe(self):
        return (f"{self.meta['train_tokens']:,} train / {self.meta['val_tokens']:,} val tokens"
                + (f" ({self.meta['source']})" if self.meta.get("source") else ""))
