"""Finding text: files and folders, or the Python standard library's own sources (offline default).

    find_files(paths, glob) -> [Path]          documents(files) -> [Document]
    stdlib_corpus() -> (train_docs, heldout_docs)   the `json` package held out of the rest
    split_documents(docs) -> (train, val)      by document; one document is split by position
"""
import os
import sysconfig
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nanoframe.errors import DataError

# Packages of the standard library never used for the default corpus: tests and vendored data.
_STDLIB_SKIP = {"test", "tests", "idle_test", "site-packages", "dist-packages", "__pycache__",
                "lib2to3", "ensurepip", "turtledemo"}
DEFAULT_HOLDOUT = "json"  # the stdlib package held out as validation (and later fine-tuned on)


@dataclass
class Document:
    """One text document of the corpus (a file, usually)."""

    name: str
    text: str


def read_text(path):
    """A file's text as UTF-8, falling back to Latin-1; CRLF normalised to LF."""
    try:
        raw = Path(path).read_bytes()
    except OSError as e:
        raise DataError(f"cannot read {path}: {e.strerror}") from None
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


def documents(files, root=None):
    """Documents of a list of files, skipping empty ones."""
    for f in files:
        text = read_text(f)
        if text.strip():
            yield Document(str(f.relative_to(root) if root else f), text)


def stdlib_dir():
    return Path(sysconfig.get_paths()["stdlib"])


def _skipped(name):
    return name in _STDLIB_SKIP or name.startswith(("test", "config-"))


def _walk_py(root):
    """The .py files below root outside skipped folders, which are never entered (site-packages
    can hold far more files than the standard library itself)."""
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if not _skipped(d)]
        yield from (Path(folder) / f for f in files if f.endswith(".py") and not _skipped(f))


def stdlib_files(holdout=DEFAULT_HOLDOUT):
    """The standard library's own .py sources, split into (train_files, holdout_files).

    Test folders and vendored tools are excluded; every file of package `holdout` goes to the
    second list, so validation (and fine-tuning) text is code the model never trained on.
    """
    root = stdlib_dir()
    train, held = [], []
    for f in sorted(_walk_py(root)):
        (held if f.relative_to(root).parts[0] == holdout else train).append(f)
    if not held:
        raise DataError(f"the standard library in {root} has no package {holdout!r} to hold out")
    return train, held


def stdlib_corpus(holdout=DEFAULT_HOLDOUT):
    """(train_docs, heldout_docs, description): the offline default corpus. Pretraining trains on
    the first and validates on the second; the default fine-tune splits the second by position."""
    train_files, held = stdlib_files(holdout)
    root = stdlib_dir()
    return (list(documents(train_files, root)), list(documents(held, root)),
            f"python stdlib ({root}), package {holdout!r} held out")


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


def split_by_position(docs, val_fraction=0.1):
    """Every document's last val_fraction (cut at a line break when there is one) goes to val:
    how a fine-tune on one package of code keeps every file in both splits."""
    train, val = [], []
    for d in docs:
        cut = int(len(d.text) * (1 - val_fraction))
        nl = d.text.rfind("\n", 0, cut)
        cut = nl + 1 if nl > 0 else cut
        train.append(Document(d.name, d.text[:cut]))
        val.append(Document(d.name + ":val", d.text[cut:]))
    return train, val
