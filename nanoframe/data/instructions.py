"""Instruction data: JSONL records -> token ids with a loss mask -> packed (x, y) rows.

One JSON object per line:
    {"prompt": "...", "completion": "..."}            loss on the completion and the end-of-text
    {"messages": [{"role": "user", "content": "..."}, {"role": "assistant", "content": "..."}]}
Chat messages are rendered as "role: content\\n" one after the other; the loss covers assistant
content and its "\\n" only (and the final end-of-text when the last message is the assistant's).
Targets that carry no loss are IGNORE_INDEX (-100), as cross_entropy's ignore_index.

The packed rows are saved into the run (`save`) so a fine-tune resumes and moves without the
original JSONL files.
"""
import json
from pathlib import Path

import numpy as np

from nanoframe.data.source import BatchSource
from nanoframe.errors import DataError
from nanoframe.io import load_safetensors, save_safetensors
from nanoframe.ops.loss import IGNORE_INDEX

MAX_LINE_BYTES = 16 << 20   # one record; a longer line is refused instead of read into memory
PACKED_FILE = "instructions.safetensors"


def _bad(path, lineno, msg):
    return DataError(f"{path}:{lineno}: {msg}")


def parse_record(obj, path="<data>", lineno=0):
    """A JSONL record -> list of (text, trained) segments plus whether the final end-of-text is trained."""
    if not isinstance(obj, dict):
        raise _bad(path, lineno, f"expected a JSON object, got {type(obj).__name__}")
    if "messages" in obj:
        msgs = obj["messages"]
        if not isinstance(msgs, list) or not msgs:
            raise _bad(path, lineno, '"messages" must be a non-empty list')
        segments = []
        for k, m in enumerate(msgs):
            if not isinstance(m, dict) or not isinstance(m.get("role"), str) or not isinstance(m.get("content"), str):
                raise _bad(path, lineno, f'messages[{k}] must be an object with string "role" and "content"')
            trained = m["role"] == "assistant"
            segments += [(f"{m['role']}: ", False), (m["content"], trained), ("\n", trained)]
        if not any(m["role"] == "assistant" and m["content"] for m in msgs):
            raise _bad(path, lineno, "no non-empty assistant message to train on")
        return segments, msgs[-1]["role"] == "assistant"
    missing = [k for k in ("prompt", "completion") if k not in obj]
    if missing:
        raise _bad(path, lineno, f'missing key(s) {missing}: expected {{"prompt", "completion"}} or {{"messages"}}')
    for k in ("prompt", "completion"):
        if not isinstance(obj[k], str):
            raise _bad(path, lineno, f'"{k}" must be a string, got {type(obj[k]).__name__}')
    if not obj["completion"]:
        raise _bad(path, lineno, '"completion" is empty')
    return [(obj["prompt"], False), (obj["completion"], True)], True


def read_jsonl(path):
    """The records of a JSONL file as (segments, eot_trained) pairs; DataError names file and line."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"no such file: {path}")
    records = []
    with open(path, "rb") as f:
        for lineno, raw in enumerate(iter(lambda: f.readline(MAX_LINE_BYTES + 1), b""), 1):
            if len(raw) > MAX_LINE_BYTES:
                raise _bad(path, lineno, f"line longer than {MAX_LINE_BYTES:,} bytes")
            if not raw.strip():
                continue
            try:
                obj = json.loads(raw.decode("utf-8"))
            except UnicodeDecodeError as e:
                raise _bad(path, lineno, f"not UTF-8 ({e.reason} at byte {e.start})") from None
            except json.JSONDecodeError as e:
                raise _bad(path, lineno, f"invalid JSON ({e.msg} at column {e.colno})") from None
            except RecursionError:
                raise _bad(path, lineno, "invalid JSON (nested too deeply)") from None
            records.append(parse_record(obj, path, lineno))
    if not records:
        raise DataError(f"{path}: no records (the file is empty)")
    return records


def first_prompt(path):
    """The untrained text before the first trained segment of a file's first record."""
    segments, _ = read_jsonl(path)[0]
    first = next(i for i, (_, trained) in enumerate(segments) if trained)
    return "".join(text for text, _ in segments[:first])


def encode_record(segments, eot_trained, tokenizer):
    """(ids, trained) int64 / bool arrays: the segments' tokens then the end-of-text token;
    trained[i] says whether token i is a prediction target."""
    eot = tokenizer.eot_id
    if eot is None:
        raise DataError("instruction data needs a tokenizer with an end-of-text token (<|endoftext|>); "
                        "this tokenizer has none (a char tokenizer?): use a BPE tokenizer")
    ids, trained = [], []
    for text, t in segments:
        piece = tokenizer.encode_ordinary(text)
        ids += piece
        trained += [t] * len(piece)
    ids.append(eot)
    trained.append(eot_trained)
    return np.asarray(ids, np.int64), np.asarray(trained, bool)


def pack(examples, block_size, pad_id):
    """Greedily pack examples into rows of block_size + 1 tokens (an example never straddles two
    rows; one longer than a row is cut to it). Returns (x, y) int64 (N, block_size) with y =
    IGNORE_INDEX where the next token is not trained, and the number of cut examples. Rows without
    any target are dropped."""
    n = block_size + 1
    rows, cur_ids, cur_tr, cut = [], [], [], 0

    def flush():
        if cur_ids:
            pad = n - sum(len(a) for a in cur_ids)
            rows.append((np.concatenate(cur_ids + [np.full(pad, pad_id, np.int64)]),
                         np.concatenate(cur_tr + [np.zeros(pad, bool)])))
            cur_ids.clear()
            cur_tr.clear()

    used = 0
    for ids, tr in examples:
        if len(ids) > n:
            ids, tr, cut = ids[:n], tr[:n], cut + 1
        if used + len(ids) > n:
            flush()
            used = 0
        cur_ids.append(ids)
        cur_tr.append(tr)
        used += len(ids)
    flush()
    xs, ys = [], []
    for ids, tr in rows:
        y = np.where(tr[1:], ids[1:], IGNORE_INDEX)
        if (y != IGNORE_INDEX).any():
            xs.append(ids[:-1])
            ys.append(y)
    if not xs:
        return np.zeros((0, block_size), np.int64), np.zeros((0, block_size), np.int64), cut
    return np.stack(xs), np.stack(ys), cut


def split_examples(n, val_fraction=0.1, seed=0):
    """Deterministic (train_indices, val_indices): a seeded permutation, at least 1 val example."""
    if n < 2:
        raise DataError(f"instruction data needs at least 2 records (one for validation), got {n}")
    order = np.random.default_rng(seed).permutation(n)
    n_val = min(n - 1, max(1, int(round(n * val_fraction))))
    return np.sort(order[n_val:]), np.sort(order[:n_val])


class InstructionData(BatchSource):
    """Packed instruction examples. Targets of prompt tokens are IGNORE_INDEX (-100), so the loss
    is on completions only."""

    def __init__(self, x_train, y_train, x_val, y_val, batch_size, seed=0, info=None, source="examples"):
        self.x_train, self.y_train, self.x_val, self.y_val = x_train, y_train, x_val, y_val
        self.block_size, self.batch_size = int(x_train.shape[1]), int(batch_size)
        self.info = dict(info or {})
        for split, x in (("train", x_train), ("val", x_val)):
            if not len(x):
                raise DataError(f"{source}: the {split} split has no trainable tokens after packing into "
                                f"block_size {self.block_size} (prompts longer than the context?)")
        self.rng = np.random.default_rng(seed)

    @classmethod
    def from_examples(cls, examples, block_size, batch_size, pad_id, seed=0, val_fraction=0.1, source="examples"):
        train_idx, val_idx = split_examples(len(examples), val_fraction, seed)
        x_train, y_train, cut_train = pack([examples[i] for i in train_idx], block_size, pad_id)
        x_val, y_val, cut_val = pack([examples[i] for i in val_idx], block_size, pad_id)
        info = {"train_examples": len(train_idx), "val_examples": len(val_idx), "cut": cut_train + cut_val}
        return cls(x_train, y_train, x_val, y_val, batch_size, seed, info, source)

    @classmethod
    def from_jsonl(cls, paths, tokenizer, block_size, batch_size, seed=0, val_fraction=0.1):
        paths = [paths] if isinstance(paths, (str, Path)) else list(paths)
        examples = [encode_record(seg, eot_tr, tokenizer) for p in paths for seg, eot_tr in read_jsonl(p)]
        return cls.from_examples(examples, block_size, batch_size, tokenizer.eot_id, seed, val_fraction,
                                 source=", ".join(map(str, paths)))

    def save(self, folder):
        """Write the packed rows to folder/instructions.safetensors (atomic)."""
        Path(folder).mkdir(parents=True, exist_ok=True)
        save_safetensors({"x_train": self.x_train, "y_train": self.y_train, "x_val": self.x_val, "y_val": self.y_val},
                         Path(folder) / PACKED_FILE, metadata={"format": "nanoframe.instructions",
                                                               "info": json.dumps(self.info)})

    @classmethod
    def load(cls, folder, batch_size, seed=0, vocab_size=None, block_size=None):
        """The rows written by `save`, validated (shapes, dtypes, rows of block_size, ids within the
        vocabulary)."""
        path = Path(folder) / PACKED_FILE
        if not path.is_file():
            raise DataError(f"missing {path}: the run's instruction data is gone")
        arrays = load_safetensors(path)
        if set(arrays) != {"x_train", "y_train", "x_val", "y_val"}:
            raise DataError(f"{path}: expected tensors x_train, y_train, x_val, y_val, got {sorted(arrays)[:8]}")
        for name, a in arrays.items():
            if a.dtype != np.int64 or a.ndim != 2 or a.shape[1] < 1:
                raise DataError(f"{path}: {name} must be a 2-D int64 array, got {a.dtype} {a.shape}")
        width = arrays["x_train"].shape[1]
        if block_size is not None and width != block_size:
            raise DataError(f"{path}: rows of {width} tokens, but the model's context is block_size {block_size}")
        for split in ("train", "val"):
            x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
            if x.shape != y.shape or x.shape[1] != arrays["x_train"].shape[1]:
                raise DataError(f"{path}: x_{split} {x.shape} and y_{split} {y.shape} do not match")
            top = vocab_size if vocab_size is not None else np.iinfo(np.int64).max
            if x.size and (x.min() < 0 or x.max() >= top):
                raise DataError(f"{path}: x_{split} holds ids outside [0, {top})")
            if y.size and (((y < 0) & (y != IGNORE_INDEX)).any() or y.max() >= top):
                raise DataError(f"{path}: y_{split} holds targets outside [0, {top}) other than {IGNORE_INDEX}")
        return cls(arrays["x_train"], arrays["y_train"], arrays["x_val"], arrays["y_val"], batch_size, seed,
                   source=str(path))

    def get_batch(self, split="train"):
        x, y = (self.x_train, self.y_train) if split == "train" else (self.x_val, self.y_val)
        # the global batch of every rank (the same draw everywhere); this rank keeps its rows
        rows = self._own_rows(self.rng.integers(0, len(x), size=self.batch_size * self.world_size))
        return x[rows], y[rows]

    def val_batches(self, max_batches=None, split="val"):
        x, y = (self.x_val, self.y_val) if split == "val" else (self.x_train, self.y_train)
        B = self.batch_size * self.world_size                          # the global batch
        batches = [(self._own_rows(x[i:i + B]), self._own_rows(y[i:i + B])) for i in range(0, len(x), B)]
        return batches if max_batches is None else batches[:max_batches]

    def describe(self):
        i = self.info
        head = (f"{i['train_examples']} train / {i['val_examples']} val examples packed into "
                if "train_examples" in i else "")
        return (f"{head}{len(self.x_train)} / {len(self.x_val)} rows of {self.block_size + 1} tokens"
                + (f"; {i['cut']} example(s) cut to the context" if i.get("cut") else ""))


def is_instruction_data(paths):
    """True when every data path is a .jsonl file; a mix of JSONL and text is refused."""
    kinds = {str(p).endswith(".jsonl") for p in paths}
    if len(kinds) > 1:
        raise DataError("the data mixes .jsonl instruction files and plain text; fine-tune on one kind at a time")
    return kinds == {True}
