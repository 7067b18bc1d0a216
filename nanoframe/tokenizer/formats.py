"""Tokenizer files: nanoframe's JSON, GPT-2's encoder.json + vocab.bpe, tiktoken's base64 ranks.

Readers return plain dicts and raise ValueError naming the file when it is corrupt.
Token bytes are spelled with GPT-2's byte-to-unicode map in both JSON formats.
"""

import base64
import binascii
import functools
import json


from nanoframe.io import atomic_open

FORMAT_NAME = "nanoframe.BPETokenizer"
FORMAT_VERSION = 1


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


def _read_text(path):
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except UnicodeDecodeError as err:
        raise ValueError(f"{path}: not UTF-8 text ({err})") from None


def _read_json(path):
    try:
        return json.loads(_read_text(path))
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: corrupt or truncated JSON ({err})") from None


# ---- nanoframe's own format -----------------------------------------------------------
def write_nanoframe_file(path, ranks, pattern, special_tokens, merges):
    """Write a tokenizer as JSON, one vocab entry / merge per line.

    vocab: token (GPT-2 spelling) -> id; merges (optional): [merged id, left id, right id].
    """
    lines = ["{", f'  "format": "{FORMAT_NAME}",', f'  "version": {FORMAT_VERSION},',
             f'  "pattern": {json.dumps(pattern, ensure_ascii=False)},',
             f'  "special_tokens": {json.dumps(special_tokens, ensure_ascii=False)},',
             '  "vocab": {']
    items = sorted(ranks.items(), key=lambda kv: kv[1])
    lines.append(",\n".join(f"    {json.dumps(token_to_str(t), ensure_ascii=False)}: {i}"
                            for t, i in items))
    if merges is None:
        lines.append("  },")
        lines.append('  "merges": null')
    else:
        lines.append("  },")
        lines.append('  "merges": [')
        lines.append(",\n".join(f"    [{i}, {l}, {r}]" for i, (l, r) in sorted(merges.items())))
        lines.append("  ]")
    lines.append("}")
    with atomic_open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


def read_nanoframe_file(path):
    """Read `write_nanoframe_file` output -> (ranks, pattern, special_tokens, merges)."""
    data = _read_json(path)
    try:
        if data.get("format") != FORMAT_NAME or data.get("version") != FORMAT_VERSION:
            raise ValueError(f"not a {FORMAT_NAME} v{FORMAT_VERSION} file")
        pattern = data["pattern"]
        special = data["special_tokens"]
        if not isinstance(pattern, str) or not isinstance(special, dict):
            raise ValueError("'pattern' must be a string and 'special_tokens' an object")
        ranks = {str_to_token(t): i for t, i in data["vocab"].items()}
        merges = data["merges"]
        if merges is not None:
            merges = {i: (l, r) for i, l, r in merges}
            id_to_token = {i: t for t, i in ranks.items()}
            for i, (l, r) in merges.items():
                if id_to_token[i] != id_to_token[l] + id_to_token[r]:
                    raise ValueError(f"merge {l} + {r} does not give token {i}")
    except ValueError as err:
        raise ValueError(f"{path}: invalid tokenizer file: {err}") from None
    except (KeyError, TypeError, AttributeError) as err:
        raise ValueError(f"{path}: invalid tokenizer file (bad or missing entry: "
                         f"{err!r})") from None
    return ranks, pattern, special, merges


# ---- GPT-2: encoder.json + vocab.bpe -----------------------------------------------------
def read_gpt2_files(encoder_json, vocab_bpe):
    """Read GPT-2 files -> (ranks bytes -> id, special_tokens str -> id, merges).

    merges maps each merged id to its (left id, right id). Entries of encoder.json that are
    neither single bytes nor merge results are special tokens.
    """
    encoder = _read_json(encoder_json)
    if not isinstance(encoder, dict) or not all(isinstance(i, int) for i in encoder.values()):
        raise ValueError(f"{encoder_json}: expected a JSON object token -> integer id")
    by_token = {}
    for key, i in encoder.items():
        try:
            by_token[str_to_token(key)] = i
        except KeyError:  # outside the byte alphabet: only a special token can be like that
            by_token[key] = i
    merges, merged = {}, set()
    for lineno, line in enumerate(_read_text(vocab_bpe).split("\n"), 1):
        if not line or line.startswith("#version"):
            continue
        parts = line.split(" ")
        try:
            left, right = (str_to_token(p) for p in parts)  # ValueError unless 2 parts
            if not left or not right:
                raise ValueError
            i = by_token[left + right]
            merges.setdefault(i, (by_token[left], by_token[right]))
        except (KeyError, ValueError):
            raise ValueError(f"{vocab_bpe}, line {lineno}: bad merge {line!r} (not two tokens "
                             f"of {encoder_json})") from None
        merged.add(left + right)
    ranks, special = {}, {}
    for token, i in by_token.items():
        if isinstance(token, bytes) and (len(token) == 1 or token in merged):
            ranks[token] = i
        else:
            text = token if isinstance(token, str) else token.decode("utf-8", "replace")
            special[text] = i
    return ranks, special, merges


def write_gpt2_files(encoder_json, vocab_bpe, ranks, special_tokens, merge_list):
    """Write encoder.json (ranks and special tokens) and vocab.bpe (merge_list of byte pairs)."""
    encoder = {token_to_str(t): i for t, i in ranks.items()}
    for text, i in special_tokens.items():
        encoder[token_to_str(text.encode("utf-8"))] = i
    encoder = dict(sorted(encoder.items(), key=lambda kv: kv[1]))
    with atomic_open(encoder_json, "w") as f:
        json.dump(encoder, f, ensure_ascii=False)
    with atomic_open(vocab_bpe, "w") as f:
        f.write("#version: 0.2\n")
        f.writelines(f"{token_to_str(l)} {token_to_str(r)}\n" for l, r in merge_list)


# ---- tiktoken: "<base64 token> <rank>" per line ---------------------------------------
def read_tiktoken_file(path):
    """Read a tiktoken rank file -> ranks bytes -> id."""
    ranks = {}
    for lineno, line in enumerate(_read_text(path).splitlines(), 1):
        if not line:
            continue
        try:
            token_b64, rank = line.split(" ")
            token = base64.b64decode(token_b64, validate=True)
            rank = int(rank)
        except (ValueError, binascii.Error):
            raise ValueError(f"{path}, line {lineno}: expected '<base64 token> <rank>', "
                             f"got {line[:80]!r}") from None
        if token in ranks:
            raise ValueError(f"{path}, line {lineno}: token {token!r} appears twice")
        ranks[token] = rank
    return ranks


def write_tiktoken_file(path, ranks):
    """Write ranks in tiktoken's format, sorted by rank."""
    with atomic_open(path, "w") as f:
        for token, rank in sorted(ranks.items(), key=lambda kv: kv[1]):
            f.write(f"{base64.b64encode(token).decode('ascii')} {rank}\n")
