"""Tokenizer files: nanoframe's JSON, GPT-2's encoder.json + vocab.bpe, tiktoken's base64 ranks.

Readers validate everything they read (see `schema`) and raise TokenizerError with one line that
names the file and the field. Token bytes are spelled with GPT-2's byte-to-unicode map in both
JSON formats (and in Hugging Face's tokenizer.json, see `hf_json`).
"""

import base64
import binascii
import functools
import json
import re

from nanoframe.errors import TokenizerError
from nanoframe.io import atomic_open
from nanoframe.tokenizer import schema
from nanoframe.tokenizer.schema import expect, expect_id, expect_text, fail, show

FORMAT_NAME = "nanoframe.BPETokenizer"
FORMAT_VERSION = 2  # 2 added merge_rule, ignore_merges and normalizer; version 1 still loads


@functools.lru_cache(maxsize=None)
def bytes_to_unicode():
    """GPT-2's map byte -> printable char: printable Latin-1 bytes map to themselves, the other
    68 bytes (controls, space, ...) to U+0100 onwards in byte order."""
    printable = (list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
                 + list(range(ord("®"), ord("ÿ") + 1)))
    mapping, extra = {}, 0
    for b in range(256):
        if b in printable:
            mapping[b] = chr(b)
        else:
            mapping[b] = chr(256 + extra)
            extra += 1
    return mapping


@functools.lru_cache(maxsize=None)
def unicode_to_bytes():
    """Inverse of `bytes_to_unicode`: char -> byte."""
    return {c: b for b, c in bytes_to_unicode().items()}


def token_to_str(token):
    """Spell token bytes with GPT-2's byte-to-unicode map ("Ġthe" for b" the")."""
    table = bytes_to_unicode()
    return "".join(table[b] for b in token)


def str_to_token(text):
    """Inverse of `token_to_str`; raises KeyError on a char outside the map."""
    table = unicode_to_bytes()
    return bytes(table[c] for c in text)


def read_token(path, field, text):
    """The bytes of a token spelled in GPT-2's alphabet, validated."""
    expect(path, field, text, "str")
    try:
        token = str_to_token(text)
    except KeyError as err:
        fail(path, field, f"token {show(text)} has {show(err.args[0])}, which is not in "
                          "GPT-2's byte alphabet (not a byte-level BPE vocabulary)")
    if not token or len(token) > schema.MAX_TOKEN_BYTES:
        fail(path, field, f"token of {len(token)} bytes (must be 1..{schema.MAX_TOKEN_BYTES})")
    return token


def read_special_tokens(path, field, obj):
    """dict str -> id from a JSON object, validated."""
    expect(path, field, obj, "object")
    for text, i in obj.items():
        expect_text(path, f"{field} key", text)
        expect_id(path, f"{field}[{show(text)}]", i)
    return dict(obj)


# ---- nanoframe's own format -----------------------------------------------------------
def write_nanoframe_file(path, ranks, pattern, special_tokens, merges, merge_rule="ranks",
                         ignore_merges=False, normalizer=None):
    """Write a tokenizer as JSON, one vocab entry / merge per line.

    vocab: token (GPT-2 spelling) -> id; merges (or null): [merged id, left id, right id] in
    merge-list order.
    """
    dump = functools.partial(json.dumps, ensure_ascii=False)
    lines = ["{", f'  "format": "{FORMAT_NAME}",', f'  "version": {FORMAT_VERSION},',
             f'  "pattern": {dump(pattern)},', f'  "merge_rule": {dump(merge_rule)},',
             f'  "ignore_merges": {dump(ignore_merges)},', f'  "normalizer": {dump(normalizer)},',
             f'  "special_tokens": {dump(special_tokens)},', '  "vocab": {']
    items = sorted(ranks.items(), key=lambda kv: kv[1])
    lines.append(",\n".join(f"    {dump(token_to_str(t))}: {i}" for t, i in items))
    lines.append("  },")
    if merges is None:
        lines.append('  "merges": null')
    else:
        decoder = {i: t for t, i in ranks.items()}
        lines.append('  "merges": [')
        lines.append(",\n".join(f"    [{ranks[decoder[l] + decoder[r]]}, {l}, {r}]"
                                for l, r in merges))
        lines.append("  ]")
    lines.append("}")
    with atomic_open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


def read_nanoframe_file(path):
    """Read `write_nanoframe_file` output (version 1 or 2) -> dict of BPETokenizer arguments:
    ranks, pattern, special, merges, merge_rule, ignore_merges, normalizer."""
    from nanoframe.tokenizer.pretokenize import resolve_pattern

    data = expect(path, "", schema.read_json(path), "object")
    version = data.get("version")
    if data.get("format") != FORMAT_NAME or type(version) is not int or version not in (1, 2):
        fail(path, "format", f"not a {FORMAT_NAME} file of version 1 or 2 (format "
                             f"{show(data.get('format'))}, version {show(data.get('version'))})")
    for key in ("pattern", "special_tokens", "vocab", "merges"):
        if key not in data:
            fail(path, key, "missing")
    try:
        pattern = resolve_pattern(expect(path, "pattern", data["pattern"], "str"))
    except TokenizerError as err:
        fail(path, "pattern", str(err))
    special = read_special_tokens(path, "special_tokens", data["special_tokens"])
    vocab = expect(path, "vocab", data["vocab"], "object")
    if len(vocab) > schema.MAX_VOCAB:
        fail(path, "vocab", f"{len(vocab)} tokens, more than {schema.MAX_VOCAB}")
    ranks = {read_token(path, "vocab", t): expect_id(path, f"vocab[{show(t)}]", i)
             for t, i in vocab.items()}
    options = {"merge_rule": "ranks", "ignore_merges": False, "normalizer": None}
    if data["version"] == 2:
        options = {"merge_rule": expect(path, "merge_rule", data.get("merge_rule"), "str"),
                   "ignore_merges": expect(path, "ignore_merges", data.get("ignore_merges"), "bool"),
                   "normalizer": data.get("normalizer")}
        if options["normalizer"] is not None:
            expect(path, "normalizer", options["normalizer"], "str")
    merges = data["merges"]
    if merges is not None:
        id_to_token = {i: t for t, i in ranks.items()}
        for k, entry in enumerate(expect(path, "merges", merges, "array")):
            field = f"merges[{k}]"
            if not isinstance(entry, list) or len(entry) != 3:
                fail(path, field, f"expected [merged id, left id, right id], got {show(entry)}")
            i, l, r = (expect_id(path, field, x) for x in entry)
            if l not in id_to_token or r not in id_to_token or \
                    id_to_token.get(i) != id_to_token[l] + id_to_token[r]:
                fail(path, field, f"merge {l} + {r} does not give token {i}")
        # tiktoken's "ranks" rule derives its merges from the ranks (version 1 files list them)
        merges = [(l, r) for _, l, r in merges] if options["merge_rule"] == "merges" else None
    return {"ranks": ranks, "pattern": pattern, "special": special, "merges": merges, **options}


# ---- GPT-2: encoder.json + vocab.bpe -----------------------------------------------------
def read_gpt2_files(encoder_json, vocab_bpe):
    """Read GPT-2 files -> (ranks bytes -> id, special_tokens str -> id, merges).

    merges is the list of (left id, right id) of vocab.bpe in file order. Entries of
    encoder.json that are neither single bytes nor merge results are special tokens.
    """
    encoder = expect(encoder_json, "", schema.read_json(encoder_json), "object")
    if len(encoder) > schema.MAX_VOCAB:
        fail(encoder_json, "", f"{len(encoder)} tokens, more than {schema.MAX_VOCAB}")
    by_token = {}
    for key, i in encoder.items():
        expect_id(encoder_json, f"[{show(key)}]", i)
        expect_text(encoder_json, "token", key)
        try:
            by_token[str_to_token(key)] = i
        except KeyError:  # outside the byte alphabet: only a special token can be like that
            by_token[key] = i
    merges, merged, lines = [], set(), []
    for lineno, line in enumerate(schema.read_text(vocab_bpe).split("\n"), 1):
        line = line.rstrip("\r")
        if not line or (lineno == 1 and line.startswith("#version")):
            continue
        parts = line.split(" ")
        try:
            left, right = (str_to_token(p) for p in parts)  # ValueError unless 2 parts
            if not left or not right:
                raise ValueError
            merges.append((by_token[left], by_token[right]))
            if left + right not in by_token:
                raise KeyError
        except (KeyError, ValueError):
            fail(vocab_bpe, f"line {lineno}", f"bad merge {show(line)} (not two tokens of "
                                              f"{encoder_json} whose concatenation is one)")
        merged.add(left + right)
        lines.append((lineno, left, right))
    for lineno, left, right in lines:  # the parts of a merge are bytes or merge results
        for part in (left, right):
            if len(part) > 1 and part not in merged:
                fail(vocab_bpe, f"line {lineno}", f"{show(token_to_str(part))} is neither a byte "
                                                  "nor the result of a merge")
    ranks, special = {}, {}
    for token, i in by_token.items():
        if isinstance(token, bytes) and (len(token) == 1 or token in merged):
            ranks[token] = i
        elif isinstance(token, str):
            special[token] = i
        else:
            try:
                special[token.decode("utf-8")] = i
            except UnicodeDecodeError:
                fail(encoder_json, f"[{show(token_to_str(token))}]", "neither a byte, a merge "
                     "result of the merges file, nor UTF-8 text (as a special token)")
    return ranks, special, merges


def write_gpt2_files(encoder_json, vocab_bpe, ranks, special_tokens, merge_pairs):
    """Write encoder.json (ranks and special tokens) and vocab.bpe (merge_pairs of byte pairs)."""
    encoder = {token_to_str(t): i for t, i in ranks.items()}
    for text, i in special_tokens.items():
        encoder[token_to_str(text.encode("utf-8"))] = i
    encoder = dict(sorted(encoder.items(), key=lambda kv: kv[1]))
    with atomic_open(encoder_json, "w") as f:
        json.dump(encoder, f, ensure_ascii=False)
    with atomic_open(vocab_bpe, "w") as f:
        f.write("#version: 0.2\n")
        f.writelines(f"{token_to_str(l)} {token_to_str(r)}\n" for l, r in merge_pairs)


# ---- tiktoken: "<base64 token> <rank>" per line ---------------------------------------
_TIKTOKEN_LINE = re.compile(r"([A-Za-z0-9+/=]+) ([0-9]{1,7})")


def read_tiktoken_file(path):
    """Read a tiktoken rank file -> ranks bytes -> id."""
    ranks = {}
    for lineno, line in enumerate(schema.read_text(path).splitlines(), 1):
        if not line:
            continue
        match = _TIKTOKEN_LINE.fullmatch(line)
        try:
            if match is None:
                raise ValueError
            token = base64.b64decode(match.group(1), validate=True)
        except (ValueError, binascii.Error):
            fail(path, f"line {lineno}", f"expected '<base64 token> <rank>', got {show(line)}")
        rank = expect_id(path, f"line {lineno}", int(match.group(2)))
        if not token or len(token) > schema.MAX_TOKEN_BYTES:
            fail(path, f"line {lineno}", f"token of {len(token)} bytes")
        if token in ranks:
            fail(path, f"line {lineno}", f"token {show(token)} appears twice")
        ranks[token] = rank
        if len(ranks) > schema.MAX_VOCAB:
            fail(path, f"line {lineno}", f"more than {schema.MAX_VOCAB} tokens")
    return ranks


def write_tiktoken_file(path, ranks):
    """Write ranks in tiktoken's format, sorted by rank."""
    with atomic_open(path, "w") as f:
        for token, rank in sorted(ranks.items(), key=lambda kv: kv[1]):
            f.write(f"{base64.b64encode(token).decode('ascii')} {rank}\n")
