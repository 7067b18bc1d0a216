"""Hugging Face tokenizer.json files of byte-level BPE tokenizers, in and out.

Read: the BPE model (vocab, merges as "a b" strings or [a, b] lists, ignore_merges), added
tokens (all become special tokens, at their ids), an NFC or no normalizer, and a pre-tokenizer
that is exactly one of the configurations below, mapped to a built-in pattern name:

    ByteLevel(add_prefix_space=false, use_regex=true)                         -> gpt2
    Sequence[Split(Regex(R), Isolated), ByteLevel(add_prefix_space=false,
             use_regex=false)]   with R the regex of gpt4, gpt4o, llama3, qwen2 -> that name
    Sequence[Digits(individual_digits=true), ByteLevel(use_regex=true)]       -> smollm2

Everything else is refused with one line naming the field and what is unsupported (a regex
from a file is never compiled). The post-processor (Llama 3's template adds
<|begin_of_text|>), truncation and padding are call-time options of `tokenizers`, not part of
the vocabulary: they are checked for type and not applied, so ids equal `tokenizers`'
`encode(text, add_special_tokens=False)`.

Write: the same structure, which `tokenizers` loads and encodes with the same ids. A tokenizer
with tiktoken's "ranks" rule is written with one merge per token and ignore_merges=true.
"""

import json

from nanoframe.errors import TokenizerError
from nanoframe.io import atomic_open
from nanoframe.tokenizer import schema
from nanoframe.tokenizer.formats import read_token, token_to_str
from nanoframe.tokenizer.pretokenize import HF_SPLIT_PATTERNS
from nanoframe.tokenizer.schema import expect, expect_id, expect_text, fail, show

_SPLIT_NAMES = {regex: name for name, regex in HF_SPLIT_PATTERNS.items()}
_UNSUPPORTED_MODELS = {
    "WordPiece": "WordPiece models (BERT style) are not supported: only byte-level BPE",
    "Unigram": "Unigram models (SentencePiece unigram, T5 style) are not supported: only "
               "byte-level BPE",
    "WordLevel": "WordLevel models are not supported: only byte-level BPE",
}
_SENTENCEPIECE = ("SentencePiece-style BPE (Metaspace / byte fallback, as in Llama 2 and "
                  "TinyLlama) is not supported: only byte-level BPE")


def _type(obj):
    """The "type" of a config object, if it is one with a string type."""
    kind = obj.get("type") if isinstance(obj, dict) else None
    return kind if isinstance(kind, str) else None


def _describe(obj, depth=0):
    """A short description of a pre-tokenizer/normalizer config for messages: its types."""
    if isinstance(obj, dict) and obj.get("type") == "Sequence" and depth < 3:
        inner = obj.get("pretokenizers", obj.get("normalizers", obj.get("processors")))
        if isinstance(inner, list):
            inner = ", ".join(_describe(x, depth + 1) for x in inner[:8])
            return schema.bounded(f"Sequence[{inner}]", 160)
    if isinstance(obj, dict):
        return show(obj.get("type"), 40)
    return show(obj, 40)


def _byte_level(path, field, obj, use_regex):
    """True if obj is ByteLevel with add_prefix_space false and the given use_regex."""
    if _type(obj) != "ByteLevel":
        return False
    prefix = obj.get("add_prefix_space", True)
    regex = obj.get("use_regex", True)
    expect(path, f"{field}.add_prefix_space", prefix, "bool")
    expect(path, f"{field}.use_regex", regex, "bool")
    expect(path, f"{field}.trim_offsets", obj.get("trim_offsets", True), "bool")
    if prefix:
        fail(path, f"{field}.add_prefix_space", "true is not supported (it prepends a space)")
    return regex == use_regex


def read_pre_tokenizer(path, obj):
    """The built-in pattern name of a pre_tokenizer config, or TokenizerError."""
    field = "pre_tokenizer"
    if _type(obj) == "Metaspace":
        fail(path, field, _SENTENCEPIECE)
    if _byte_level(path, field, obj, use_regex=True):
        return "gpt2"
    steps = obj.get("pretokenizers") if _type(obj) == "Sequence" else None
    if isinstance(steps, list) and len(steps) == 1 and _byte_level(path, f"{field}[0]", steps[0], True):
        return "gpt2"
    if isinstance(steps, list) and len(steps) == 2:
        first, second = steps
        if _type(first) == "Split" and _byte_level(path, f"{field}[1]", second, use_regex=False):
            pattern = first.get("pattern")
            regex = pattern.get("Regex") if isinstance(pattern, dict) else None
            if not isinstance(regex, str):
                fail(path, f"{field}[0].pattern", f"expected {{\"Regex\": ...}}, got {show(pattern)}")
            if first.get("behavior") != "Isolated" or first.get("invert") is not False:
                fail(path, f"{field}[0]", f"Split with behavior {show(first.get('behavior'))} and "
                     f"invert {show(first.get('invert'))} is not supported (only Isolated, false)")
            if regex not in _SPLIT_NAMES:
                fail(path, f"{field}[0].pattern.Regex", f"{show(regex, 120)} is not the regex of a "
                     f"built-in pattern ({', '.join(_SPLIT_NAMES.values())})")
            return _SPLIT_NAMES[regex]
        if _type(first) == "Digits" and _byte_level(path, f"{field}[1]", second, use_regex=True):
            if first.get("individual_digits") is not True:
                fail(path, f"{field}[0].individual_digits", "only true is supported")
            return "smollm2"
    fail(path, field, f"{_describe(obj)} is not supported: nanoframe reads ByteLevel, "
                      "Split(built-in regex) + ByteLevel, or Digits + ByteLevel")


def read_normalizer(path, obj):
    """None or "nfc"."""
    if obj is None:
        return None
    if _type(obj) == "NFC":
        return "nfc"
    if _type(obj) == "Sequence" and obj.get("normalizers") == [{"type": "NFC"}]:
        return "nfc"
    if _type(obj) in ("Prepend", "Replace") or "Prepend" in _describe(obj):
        fail(path, "normalizer", f"{_describe(obj)}: {_SENTENCEPIECE}")
    fail(path, "normalizer", f"{_describe(obj)} is not supported (only none or NFC)")


def _check_model_options(path, model):
    if model.get("byte_fallback", False) is not False:
        fail(path, "model.byte_fallback", _SENTENCEPIECE)
    if model.get("dropout") is not None:
        fail(path, "model.dropout", f"{show(model.get('dropout'))}: BPE dropout is not supported")
    for key in ("continuing_subword_prefix", "end_of_word_suffix"):
        if model.get(key) not in (None, ""):
            fail(path, f"model.{key}", f"{show(model.get(key))} is not supported (only null or \"\")")
    if model.get("unk_token") is not None:
        expect(path, "model.unk_token", model["unk_token"], "str")
    expect(path, "model.fuse_unk", model.get("fuse_unk", False), "bool")
    return expect(path, "model.ignore_merges", model.get("ignore_merges", False), "bool")


def _read_added_tokens(path, entries, normalizer):
    """{content: id} of the added tokens."""
    added = {}
    for k, entry in enumerate(expect(path, "added_tokens", entries, "array")):
        field = f"added_tokens[{k}]"
        expect(path, field, entry, "object")
        content = expect_text(path, f"{field}.content", entry.get("content"))
        i = expect_id(path, f"{field}.id", entry.get("id"))
        for flag in ("single_word", "lstrip", "rstrip"):
            if expect(path, f"{field}.{flag}", entry.get(flag, False), "bool"):
                fail(path, f"{field}.{flag}", f"true is not supported (token {show(content)})")
        expect(path, f"{field}.special", entry.get("special", False), "bool")
        if expect(path, f"{field}.normalized", entry.get("normalized", False), "bool") and normalizer:
            fail(path, f"{field}.normalized", f"true with a normalizer is not supported "
                                              f"(token {show(content)})")
        if content in added and added[content] != i:
            fail(path, field, f"{show(content)} is listed with ids {added[content]} and {i}")
        added[content] = i
    return added


def _read_merges(path, merges, vocab):
    """[(left token str, right token str)] from "a b" strings or [a, b] lists."""
    out = []
    for k, merge in enumerate(expect(path, "model.merges", merges, "array")):
        if isinstance(merge, str):
            pair = merge.split(" ")
        elif isinstance(merge, list):
            pair = merge
        else:
            pair = None
        if not pair or len(pair) != 2 or not all(isinstance(p, str) for p in pair):
            fail(path, f"model.merges[{k}]", f"expected \"left right\" or [left, right], got {show(merge)}")
        left, right = pair
        for part in pair:
            if part not in vocab:
                fail(path, f"model.merges[{k}]", f"{show(part)} is not in model.vocab")
        if left + right not in vocab:
            fail(path, f"model.merges[{k}]", f"{show(left + right)} (the merged token) is not in "
                                             "model.vocab")
        out.append((left, right))
    return out


def read_tokenizer_json(path):
    """Read a tokenizer.json -> dict of BPETokenizer arguments (ranks, pattern, special, merges,
    merge_rule="merges", ignore_merges, normalizer)."""
    data = expect(path, "", schema.read_json(path), "object")
    model = expect(path, "model", data.get("model"), "object")
    kind = _type(model) or ("BPE" if "type" not in model and "merges" in model else None)
    if kind in _UNSUPPORTED_MODELS:
        fail(path, "model.type", _UNSUPPORTED_MODELS[kind])
    if kind != "BPE":
        fail(path, "model.type", f"{show(kind)} is not supported: only byte-level BPE")
    if data.get("version", "1.0") != "1.0":
        fail(path, "version", f"{show(data.get('version'))} is not supported (only \"1.0\")")
    for key in ("truncation", "padding"):
        if data.get(key) is not None:
            expect(path, key, data[key], "object")
    normalizer = read_normalizer(path, data.get("normalizer"))
    pattern = read_pre_tokenizer(path, data.get("pre_tokenizer"))
    if data.get("decoder") is not None and _type(data["decoder"]) != "ByteLevel":
        fail(path, "decoder", f"{_describe(data['decoder'])} is not supported (only ByteLevel)")
    processor = data.get("post_processor")
    kinds = {_type(p) for p in (processor.get("processors") or [])} \
        if _type(processor) == "Sequence" else {_type(processor)} if processor else set()
    if not kinds <= {"ByteLevel", "TemplateProcessing"}:
        fail(path, "post_processor", f"{_describe(processor)} is not supported (only "
                                     "ByteLevel or TemplateProcessing, which encode does not apply)")
    ignore_merges = _check_model_options(path, model)

    added = _read_added_tokens(path, data.get("added_tokens", []), normalizer)
    vocab = expect(path, "model.vocab", model.get("vocab"), "object")
    if len(vocab) + len(added) > schema.MAX_VOCAB:
        fail(path, "model.vocab", f"{len(vocab) + len(added)} tokens, more than {schema.MAX_VOCAB}")
    ranks, special, by_id = {}, {}, {}
    for text, i in vocab.items():
        expect_id(path, f"model.vocab[{show(text)}]", i)
        if text in added and added[text] == i:
            continue  # an added token also listed in the vocab (GPT-2's <|endoftext|>)
        ranks[read_token(path, "model.vocab", text)] = i
        by_id[i] = text
    for text, i in added.items():
        if i in by_id:
            fail(path, "added_tokens", f"{show(text)} has id {i}, which model.vocab gives to "
                                       f"{show(by_id[i])}")
        special[text] = i
    merges = [(vocab[l], vocab[r]) for l, r in _read_merges(path, model.get("merges", []), vocab)]
    return {"ranks": ranks, "pattern": pattern, "special": special, "merges": merges,
            "merge_rule": "merges", "ignore_merges": ignore_merges, "normalizer": normalizer}


# ---- writing --------------------------------------------------------------------------
def _byte_level_config(use_regex):
    return {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True,
            "use_regex": use_regex}


def pre_tokenizer_config(pattern):
    """The tokenizer.json pre_tokenizer of a built-in pattern name."""
    if pattern == "gpt2":
        return _byte_level_config(True)
    if pattern == "smollm2":
        return {"type": "Sequence", "pretokenizers": [
            {"type": "Digits", "individual_digits": True}, _byte_level_config(True)]}
    return {"type": "Sequence", "pretokenizers": [
        {"type": "Split", "pattern": {"Regex": HF_SPLIT_PATTERNS[pattern]},
         "behavior": "Isolated", "invert": False},
        _byte_level_config(False)]}


def write_tokenizer_json(path, tok):
    """Write BPETokenizer `tok` as a tokenizer.json."""
    special = sorted(tok.special_tokens.items(), key=lambda kv: kv[1])
    vocab = {token_to_str(t): i for t, i in sorted(tok.mergeable_ranks.items(), key=lambda kv: kv[1])}
    # special tokens go into the vocab too (as GPT-2's file has <|endoftext|>): `tokenizers`
    # keeps an added token's id only if the model's vocab has it
    for text, i in special:
        if text in vocab:
            raise TokenizerError(f"special token {show(text)} (id {i}) is spelled like ordinary "
                                 f"token {vocab[text]}; a tokenizer.json cannot hold both")
        vocab[text] = i
    merges = [f"{token_to_str(l)} {token_to_str(r)}" for l, r in tok.merge_pairs()]
    ignore_merges = tok.ignore_merges if tok.merge_rule == "merges" else True
    data = {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": [{"id": i, "content": text, "single_word": False, "lstrip": False,
                          "rstrip": False, "normalized": False, "special": True}
                         for text, i in special],
        "normalizer": {"type": "NFC"} if tok.normalizer == "nfc" else None,
        "pre_tokenizer": pre_tokenizer_config(tok.pattern),
        "post_processor": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": False,
                           "use_regex": True},
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True,
                    "use_regex": True},
        "model": {"type": "BPE", "dropout": None, "unk_token": None,
                  "continuing_subword_prefix": None, "end_of_word_suffix": None,
                  "fuse_unk": False, "byte_fallback": False, "ignore_merges": ignore_merges,
                  "vocab": vocab, "merges": merges},
    }
    with atomic_open(path, "w") as f:
        json.dump(data, f, ensure_ascii=False, indent=1)
        f.write("\n")

