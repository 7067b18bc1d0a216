"""One place to load, find, train and identify tokenizers.

    load_tokenizer(path)           any supported file, or a folder holding one
    find_tokenizer_files(folder)   which tokenizer files a model folder has
    train_tokenizer(kind, texts)   a new "bpe" or "char" tokenizer
    tokenizer_fingerprint(tok)     a hex digest of what defines the ids
"""

import hashlib
import json
from pathlib import Path

from nanoframe.errors import TokenizerError
from nanoframe.tokenizer import schema
from nanoframe.tokenizer.bpe import ENDOFTEXT, BPETokenizer
from nanoframe.tokenizer.char import FORMAT_NAME as CHAR_FORMAT
from nanoframe.tokenizer.char import CharTokenizer
from nanoframe.tokenizer.formats import FORMAT_NAME as BPE_FORMAT

# The file sets of a folder, in the order they are preferred.
FOLDER_FILES = (("tokenizer.json",), ("vocab.json", "merges.txt"), ("encoder.json", "vocab.bpe"))
TRAINABLE_KINDS = ("bpe", "char")


def find_tokenizer_files(folder):
    """The tokenizer files of a folder as a tuple of paths: (tokenizer.json,), (vocab.json,
    merges.txt) or (encoder.json, vocab.bpe), the first set present in that order; None if
    there is none."""
    folder = Path(folder)
    for names in FOLDER_FILES:
        if all((folder / name).is_file() for name in names):
            return tuple(folder / name for name in names)
    return None


def load_tokenizer(path):
    """A tokenizer from a file or a folder.

    A file: nanoframe's BPE or character JSON, or a Hugging Face tokenizer.json (told apart by
    their content). A folder: its tokenizer.json (either kind), else vocab.json + merges.txt,
    else encoder.json + vocab.bpe (GPT-2 style, pattern "gpt2"). Anything else raises
    TokenizerError naming the path and what was looked for.
    """
    path = Path(path)
    if path.is_dir():
        found = find_tokenizer_files(path)
        if found is None:
            looked_for = ", ".join(" + ".join(names) for names in FOLDER_FILES)
            raise TokenizerError(f"{path}: no tokenizer files in this folder (looked for "
                                 f"{looked_for})")
        if len(found) == 2:
            return BPETokenizer.from_gpt2_files(*found)
        path = found[0]
    if not path.is_file():
        raise TokenizerError(f"{path}: no such tokenizer file or folder")
    data = schema.read_json(path)
    if isinstance(data, dict) and data.get("format") == BPE_FORMAT:
        return BPETokenizer.load(path)
    if isinstance(data, dict) and data.get("format") == CHAR_FORMAT:
        return CharTokenizer.load(path)
    if isinstance(data, dict) and "model" in data:
        return BPETokenizer.from_tokenizer_json(path)
    raise TokenizerError(f"{path}: not a tokenizer file (expected nanoframe's BPE or character "
                         "tokenizer JSON, or a Hugging Face tokenizer.json with a \"model\")")


DEFAULT_VOCAB_SIZE = 2048   # BPE vocabulary of the offline default run and of `nanoframe tokenizer train`


def train_tokenizer(kind, texts, vocab_size=DEFAULT_VOCAB_SIZE, max_chars=3_000_000, show_progress=True):
    """A new tokenizer trained on (at most `max_chars` characters of) `texts`, an iterable of
    str (or of objects with a .text, such as nanoframe.data.Document). kind "bpe": byte-level BPE with the gpt4 pattern and <|endoftext|> as its last id;
    "char": one id per distinct character (vocab_size is not used)."""
    if kind not in TRAINABLE_KINDS:
        raise TokenizerError(f"unknown tokenizer kind {schema.show(kind)}: use "
                             f"{' or '.join(TRAINABLE_KINDS)}, or a tokenizer file")
    taken, n = [], 0
    for text in texts:
        text = getattr(text, "text", text)
        if n >= max_chars:
            break
        taken.append(text[:max_chars - n])
        n += len(taken[-1])
    if kind == "char":
        return CharTokenizer().train(taken)
    return BPETokenizer().train(taken, vocab_size, pattern="gpt4", special_tokens=[ENDOFTEXT],
                                show_progress=show_progress)


def tokenizer_fingerprint(tok):
    """A sha256 hex digest of what defines a tokenizer's ids, so that data prepared with one
    tokenizer is not used with another.

    BPE: every token's bytes by id, the special tokens, the merges (`merge_pairs`), the pattern
    name and the normalizer. The same tokenizer read from nanoframe's JSON, a tokenizer.json,
    GPT-2 files or a tiktoken file (with its special tokens) has the same fingerprint: the merge
    rule and ignore_merges are left out, because the files that carry the same vocabulary and
    merges in these formats give the same ids (GPT-2's do, and so do trained tokenizers).
    Characters: the characters in id order.
    """
    if isinstance(tok, CharTokenizer):
        content = {"kind": "char", "chars": tok.chars}
    elif isinstance(tok, BPETokenizer):
        ranks = tok.mergeable_ranks
        tokens = [None] * tok.vocab_size
        for token, i in ranks.items():
            tokens[i] = token.hex()
        try:
            merges = [[ranks[l], ranks[r]] for l, r in tok.merge_pairs()]
        except TokenizerError:  # a "ranks" vocabulary some of whose tokens have no merge
            merges = None
        content = {"kind": "bpe", "tokens": tokens, "merges": merges, "pattern": tok.pattern,
                   "normalizer": tok.normalizer,
                   "special": sorted([i, text] for text, i in tok.special_tokens.items())}
    else:
        raise TokenizerError(f"not a nanoframe tokenizer: {type(tok).__name__}")
    blob = json.dumps({"nanoframe_tokenizer_fingerprint": 1, **content}, sort_keys=True,
                      separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(blob.encode("ascii")).hexdigest()
