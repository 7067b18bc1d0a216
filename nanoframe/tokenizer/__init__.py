"""Tokenizers: byte-level BPE (GPT-2/GPT-4 style, tiktoken-compatible) and characters."""
from nanoframe.tokenizer.bpe import BPETokenizer
from nanoframe.tokenizer.char import CharTokenizer
from nanoframe.tokenizer.pretokenize import GPT2_PATTERN, GPT4_PATTERN

__all__ = ["BPETokenizer", "CharTokenizer", "GPT2_PATTERN", "GPT4_PATTERN"]
