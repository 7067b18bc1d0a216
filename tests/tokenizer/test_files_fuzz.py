"""Every tokenizer file kind, mutated field by field: a one-line TokenizerError naming the file,
or a tokenizer that loads and round-trips. Never another exception, a hang, or a huge model."""

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nanoframe.errors import TokenizerError
from nanoframe.tokenizer import BPETokenizer, CharTokenizer, load_tokenizer, tokenizer_fingerprint
from nanoframe.tokenizer.schema import MAX_VOCAB

TEXT = "the cat sat on the mat. The CAT's 123 mats! naïve 日本 🙂\n\n" * 8
SAMPLE = "the mat's cat 12 naïve 🙂 x\n"
HUGE = "9" * 5000  # more digits than Python converts by default
DEEP = "[" * 50_000 + "]" * 50_000
# Replacement values; strings starting with "@" are spliced into the JSON text raw.
BAD_VALUES = [None, True, False, 0, -1, 1.5, 3_000_000, MAX_VOCAB, 2**63, "", "x", "gpt-4",
              "(a+)+$", [], [1, 2], {}, {"a": 1}, "\ud800", "@NaN", "@Infinity", "@-Infinity",
              "@1e400", "@" + HUGE, "@" + DEEP, 256, 0.0]
settings_ = settings(max_examples=120, deadline=None,
                     suppress_health_check=[HealthCheck.function_scoped_fixture,
                                            HealthCheck.too_slow])


def paths(obj, prefix=(), limit=12):
    """Paths to (a sample of) every field of a JSON value, containers included."""
    out = [prefix]
    items = list(obj.items()) if isinstance(obj, dict) else \
        list(enumerate(obj)) if isinstance(obj, list) else []
    if len(items) > limit:  # first, middle and last entries of long lists / vocabularies
        items = items[:limit // 2] + [items[len(items) // 2]] + items[-(limit // 2):]
    for key, value in items:
        out += paths(value, prefix + (key,), limit)
    return out


def mutate(data, path, value, delete=False):
    """JSON text of `data` with the field at `path` replaced (or deleted)."""
    data = json.loads(json.dumps(data))
    if not path:
        target, key = None, None
    else:
        target = data
        for key in path[:-1]:
            target = target[key]
        key = path[-1]
    raw = None
    if isinstance(value, str) and value.startswith("@"):
        raw, value = value[1:], "@@RAW@@"
    if target is None:
        data = value
    elif delete and isinstance(target, dict):
        del target[key]
    elif delete and isinstance(target, list):
        target.pop(key)
    else:
        target[key] = value
    text = json.dumps(data, ensure_ascii=False)
    return text.replace('"@@RAW@@"', raw) if raw is not None else text


def check(load, path):
    """Load `path`: TokenizerError with one line naming it, or a usable tokenizer."""
    try:
        tok = load(path)
    except TokenizerError as err:
        message = str(err)
        assert "\n" not in message and str(path.name) in message and len(message) <= 600, message
        return None
    assert tok.vocab_size <= MAX_VOCAB
    if isinstance(tok, CharTokenizer):
        text = "".join(tok.chars[:50])
        assert tok.decode(tok.encode(text)) == text
    else:  # (a damaged merges file can leave a word unreachable: it then reads as a special)
        for ids in (tok.encode_ordinary(SAMPLE), tok.encode(SAMPLE, allowed_special="all")):
            assert tok.decode(ids) == SAMPLE
    return tok


def write_text(path, text):
    try:
        path.write_text(text, encoding="utf-8")
    except UnicodeEncodeError:  # a lone surrogate: write it the way JSON escapes it
        path.write_text(text.encode("utf-8", "surrogatepass").decode("utf-8", "replace"),
                        encoding="utf-8")


@pytest.fixture(scope="module")
def tok():
    return BPETokenizer().train(TEXT, 300, pattern="gpt4", special_tokens=["<|endoftext|>"],
                                show_progress=False)


@pytest.fixture(scope="module")
def originals(tok, tmp_path_factory):
    """(load function, file name, parsed JSON) of each JSON file kind."""
    folder = tmp_path_factory.mktemp("originals")
    tok.save(folder / "nanoframe.json")
    tok.save_tokenizer_json(folder / "tokenizer.json")
    hf_merges = BPETokenizer.from_tokenizer_json(folder / "tokenizer.json")
    hf_merges.save(folder / "nanoframe_merges.json")  # the "merges" rule in nanoframe's format
    tok.save_gpt2_files(folder / "encoder.json", folder / "vocab.bpe")
    CharTokenizer().train(TEXT).save(folder / "chars.json")
    read = lambda name: json.loads((folder / name).read_text(encoding="utf-8"))
    gpt2 = lambda p: BPETokenizer.from_gpt2_files(p, folder / "vocab.bpe", "gpt4")
    return {"nanoframe": (BPETokenizer.load, read("nanoframe.json")),
            "nanoframe_merges": (BPETokenizer.load, read("nanoframe_merges.json")),
            "tokenizer_json": (BPETokenizer.from_tokenizer_json, read("tokenizer.json")),
            "encoder_json": (gpt2, read("encoder.json")),
            "chars": (CharTokenizer.load, read("chars.json")),
            "any": (load_tokenizer, read("tokenizer.json"))}


@pytest.mark.parametrize("kind", ["nanoframe", "nanoframe_merges", "tokenizer_json",
                                  "encoder_json", "chars", "any"])
@settings_
@given(data=st.data())
def test_json_fields(originals, kind, tmp_path, data):
    load, parsed = originals[kind]
    path = data.draw(st.sampled_from(paths(parsed)))
    value = data.draw(st.sampled_from(BAD_VALUES))
    delete = data.draw(st.booleans())
    target = tmp_path / f"{kind}-mutated.json"
    write_text(target, mutate(parsed, path, value, delete))
    loaded = check(load, target)
    if loaded is not None and kind in ("nanoframe", "tokenizer_json"):
        again = tmp_path / "again.json"
        loaded.save(again)
        assert tokenizer_fingerprint(BPETokenizer.load(again)) == tokenizer_fingerprint(loaded)


@pytest.mark.parametrize("kind", ["nanoframe", "tokenizer_json", "encoder_json", "chars"])
@settings_
@given(data=st.data())
def test_json_bytes(originals, kind, tmp_path, data):
    """Truncation, empty files, non-UTF-8 bytes and duplicated ids in the raw text."""
    load, parsed = originals[kind]
    raw = json.dumps(parsed, ensure_ascii=False).encode("utf-8")
    how = data.draw(st.sampled_from(["truncate", "insert", "flip", "empty", "dupe"]))
    at = data.draw(st.integers(0, len(raw)))
    if how == "truncate":
        raw = raw[:at]
    elif how == "insert":
        raw = raw[:at] + data.draw(st.sampled_from([b"\xff", b"\xc3", b"\x00", b"\xed\xa0\x80"])) + raw[at:]
    elif how == "flip":
        raw = raw[:at] + bytes([data.draw(st.integers(0, 255))]) + raw[at + 1:]
    elif how == "empty":
        raw = b""
    else:  # give a second token the id 5
        raw = raw.replace(b": 6,", b": 5,", 1)
    target = tmp_path / f"{kind}-bytes.json"
    target.write_bytes(raw)
    check(load, target)


LINE_EDITS = ["delete", "duplicate", "swap", "three", "bogus", "negative", "huge", "float",
              "space", "nonutf8", "arabic_digit"]


@pytest.mark.parametrize("kind", ["vocab_bpe", "tiktoken"])
@settings_
@given(data=st.data())
def test_line_files(tok, tmp_path, kind, data):
    folder = tmp_path
    tok.save_gpt2_files(folder / "encoder.json", folder / "vocab.bpe")
    tok.save_tiktoken_file(folder / "t.tiktoken")
    name = "vocab.bpe" if kind == "vocab_bpe" else "t.tiktoken"
    lines = (folder / name).read_text(encoding="utf-8").split("\n")
    k = data.draw(st.integers(0, len(lines) - 1))
    edit = data.draw(st.sampled_from(LINE_EDITS))
    line = lines[k]
    head, _, tail = line.partition(" ")
    new = {"delete": None, "duplicate": line + "\n" + line, "swap": f"{tail} {head}",
           "three": line + " x", "bogus": "Ġzz q\u0101", "negative": f"{head} -3",
           "huge": f"{head} {HUGE}", "float": f"{head} 1.5", "space": f" {line}",
           "nonutf8": None, "arabic_digit": f"{head} \u0661\u0662"}[edit]
    if new is None:
        del lines[k]
    else:
        lines[k] = new
    raw = "\n".join(lines).encode("utf-8")
    if edit == "nonutf8":
        raw = raw.replace(b"\n", b"\n\xff", 1)
    (folder / name).write_bytes(raw)
    if kind == "vocab_bpe":
        load = lambda p: BPETokenizer.from_gpt2_files(folder / "encoder.json", p, "gpt4")
    else:
        load = lambda p: BPETokenizer.from_tiktoken_file(p, "gpt4", tok.special_tokens)
    check(load, folder / name)


def test_examples_from_the_brief(tok, tmp_path):
    """A 3,000,000 special id, an unknown pattern name, a crafted regex, NaN, gaps."""
    data = json.loads(json.dumps(json.load(open(_saved(tok, tmp_path), encoding="utf-8"))))
    cases = {
        "big_id.json": ("special_tokens", {"<|endoftext|>": 3_000_000}, "3000000"),
        "gpt-4.json": ("pattern", "gpt-4", "unknown pattern 'gpt-4'"),
        "regex.json": ("pattern", "(a|a)*$", "unknown pattern"),
        "nan.json": ("version", "@NaN", "NaN"),
        "gap.json": ("vocab", {**data["vocab"], "Ġ": 400}, "not dense: id 32 is missing"),
        "twice.json": ("special_tokens", {"<|endoftext|>": 290}, "id 290 is used twice"),
        "float.json": ("special_tokens", {"<|endoftext|>": 299.0}, "expected int"),
        "bool.json": ("special_tokens", {"<|endoftext|>": True}, "expected int"),
    }
    for name, (key, value, words) in cases.items():
        path = tmp_path / name
        path.write_text(mutate(data, (key,), value), encoding="utf-8")
        with pytest.raises(TokenizerError, match=words) as err:
            BPETokenizer.load(path)
        assert name in str(err.value)
    # special tokens above every ordinary token may leave a gap (tiktoken's cl100k does)
    path = tmp_path / "special_gap.json"
    path.write_text(mutate(data, ("special_tokens",), {"<|endoftext|>": 300}), encoding="utf-8")
    assert BPETokenizer.load(path).vocab_size == 301


def _saved(tok, tmp_path):
    tok.save(tmp_path / "base.json")
    return tmp_path / "base.json"
