"""Checks for tokenizer files and vocabularies: nothing read from disk is trusted.

Every check raises `TokenizerError` with one line that names the file and the field at fault
(values quoted through `errors.bounded`, so a crafted file cannot print megabytes).
"""

import json
import os

from nanoframe.errors import TokenizerError, bounded

MAX_VOCAB = 1 << 21  # ids must be below this (a 3,000,000 id once built a 14.7 GB embedding)
MAX_FILE_BYTES = 256 << 20  # the largest published tokenizer.json files are about 30 MB
MAX_TOKEN_BYTES = 1 << 16  # the longest token, in bytes


def fail(path, field, problem):
    """Raise TokenizerError "<path>: <field>: <problem>" (one line)."""
    where = f"{path}: {field}: " if field else f"{path}: "
    message = " ".join(f"{where}{problem}".split())  # one line, whatever the values held
    raise TokenizerError(bounded(message, 400)) from None


def show(value, limit=60):
    """A short repr of a value from a file, for messages."""
    return bounded(repr(value), limit)


def read_bytes(path):
    """The bytes of a file, refusing missing, unreadable or oversized files."""
    try:
        size = os.path.getsize(path)
        if size > MAX_FILE_BYTES:
            fail(path, "", f"file is {size} bytes, more than the {MAX_FILE_BYTES} allowed")
        with open(path, "rb") as f:
            return f.read(MAX_FILE_BYTES + 1)
    except OSError as err:
        fail(path, "", f"cannot read the file ({err.strerror or err})")


def read_text(path):
    """The UTF-8 text of a file."""
    data = read_bytes(path)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        fail(path, "", f"not UTF-8 text (byte {err.start})")


def _no_constant(name):
    raise ValueError(f"{name} is not valid JSON")


def read_json(path):
    """The parsed JSON of a file: strict (no NaN/Infinity), depth- and size-bounded."""
    text = read_text(path)
    try:
        return json.loads(text, parse_constant=_no_constant)
    except json.JSONDecodeError as err:
        fail(path, "", f"corrupt or truncated JSON (line {err.lineno}, column {err.colno}: "
                       f"{err.msg})")
    except RecursionError:
        fail(path, "", "JSON nested too deeply")
    except ValueError as err:  # NaN / Infinity, or an integer with thousands of digits
        fail(path, "", f"invalid JSON value ({err})")


_JSON_TYPES = {"int": int, "str": str, "bool": bool, "object": dict, "array": list,
               "null": type(None)}


def expect(path, field, value, kind):
    """`value` if it has JSON type `kind` ("int", "str", "bool", "object", "array", "null");
    ints exclude bools (true is not 1)."""
    if type(value) is not _JSON_TYPES[kind]:  # exact types: json.loads makes no subclasses
        fail(path, field, f"expected {kind}, got {type(value).__name__} {show(value)}")
    return value


def expect_id(path, field, value):
    """A token id: an int in [0, MAX_VOCAB)."""
    expect(path, field, value, "int")
    if not 0 <= value < MAX_VOCAB:
        fail(path, field, f"token id {show(value)} is outside [0, {MAX_VOCAB})")
    return value


def expect_text(path, field, value):
    """A non-empty string that is valid Unicode (no lone surrogates), of bounded length."""
    expect(path, field, value, "str")
    if not value:
        fail(path, field, "empty string")
    try:
        data = value.encode("utf-8")
    except UnicodeEncodeError:
        fail(path, field, f"{show(value)} holds a lone surrogate")
    if len(data) > MAX_TOKEN_BYTES:
        fail(path, field, f"token of {len(data)} bytes, more than {MAX_TOKEN_BYTES}")
    return value


def check_ids(ranks, special, path="tokenizer"):
    """Ids of a vocabulary (ranks bytes -> id, special str -> id): distinct, in range, and dense
    0..V-1, except that special tokens above every rank may leave gaps (tiktoken's cl100k_base
    puts <|endoftext|> at 100257 after 100256 ranks)."""
    for token, i in ranks.items():
        expect_id(path, f"id of token {show(token)}", i)
    for text, i in special.items():
        expect_id(path, f"id of special token {show(text)}", i)
    ids = sorted([*ranks.values(), *special.values()])
    for a, b in zip(ids, ids[1:]):
        if a == b:
            fail(path, "token ids", f"id {a} is used twice")
    if ids and ids[-1] != len(ids) - 1:
        dense_ranks = sorted(ranks.values()) == list(range(len(ranks)))
        if not (dense_ranks and all(i >= len(ranks) for i in special.values())):
            missing = next(k for k, i in enumerate(ids) if i != k)
            fail(path, "token ids", f"ids are not dense: id {missing} is missing (ids must be "
                 f"0..{len(ids) - 1}; only special tokens above the others may leave gaps)")
