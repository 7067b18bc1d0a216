"""Tokenizers: byte-level BPE (tiktoken- and Hugging Face-compatible) and characters."""
from nanoframe.tokenizer.bpe import BPETokenizer
from nanoframe.tokenizer.char import CharTokenizer
from nanoframe.tokenizer.loading import (
    find_tokenizer_files, load_tokenizer, tokenizer_fingerprint, train_tokenizer)
from nanoframe.tokenizer.pretokenize import BUILTIN_PATTERNS, GPT2_PATTERN, GPT4_PATTERN

__all__ = ["BPETokenizer", "CharTokenizer", "BUILTIN_PATTERNS", "GPT2_PATTERN", "GPT4_PATTERN",
           "find_tokenizer_files", "load_tokenizer", "tokenizer_fingerprint", "train_tokenizer"]
