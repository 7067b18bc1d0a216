"""Data sources for training: text corpora, token files, instruction JSONL.

    corpus.py         find text (files, folders, the offline stdlib corpus) and split it
    tokens.py         prepare() -> train.bin / val.bin / meta.json; TokenData batches
    instructions.py   JSONL records -> packed rows with a loss mask; InstructionData batches
    source.py         BatchSource: the one interface the trainer draws batches through
"""
from nanoframe.data.corpus import (
    DEFAULT_HOLDOUT,
    Document,
    documents,
    find_files,
    read_text,
    split_by_position,
    split_documents,
    stdlib_corpus,
    stdlib_dir,
    stdlib_files,
)
from nanoframe.data.instructions import IGNORE_INDEX, InstructionData, is_instruction_data, read_jsonl
from nanoframe.data.source import BatchSource
from nanoframe.data.tokens import TokenData, load_meta, prepare, token_dtype
from nanoframe.errors import DataError
from nanoframe.tokenizer.loading import load_tokenizer, train_tokenizer

__all__ = [
    "DEFAULT_HOLDOUT", "Document", "documents", "find_files", "read_text", "split_by_position",
    "split_documents", "stdlib_corpus", "stdlib_dir", "stdlib_files", "IGNORE_INDEX", "InstructionData",
    "is_instruction_data", "read_jsonl", "BatchSource", "TokenData", "load_meta", "prepare", "token_dtype",
    "DataError", "load_tokenizer", "train_tokenizer",
]
