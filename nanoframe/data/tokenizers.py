"""Loading and training tokenizers for the data pipeline."""
import json
from pathlib import Path

from nanoframe.errors import DataError, TokenizerError


def load_tokenizer(path):
    """Load a tokenizer file written by BPETokenizer.save or CharTokenizer.save."""
    from nanoframe.tokenizer import BPETokenizer, CharTokenizer
    from nanoframe.tokenizer.char import FORMAT_NAME as CHAR_FORMAT

    path = Path(path)
    if not path.is_file():
        raise TokenizerError(f"no such tokenizer file: {path}")
    try:
        head = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as e:
        raise TokenizerError(f"{path} is not a tokenizer file (not valid JSON: {type(e).__name__})") from None
    is_char = isinstance(head, dict) and head.get("format") == CHAR_FORMAT
    try:
        return (CharTokenizer if is_char else BPETokenizer).load(path)
    except TokenizerError:
        raise
    except ValueError as e:
        raise TokenizerError(str(e)) from None


DEFAULT_VOCAB_SIZE = 2048   # BPE vocabulary of the offline default run and of `nanoframe tokenizer train`


def train_tokenizer(kind, docs, vocab_size=DEFAULT_VOCAB_SIZE, max_chars=3_000_000, show_progress=True):
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
