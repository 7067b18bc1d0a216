"""BPETokenizer: training, encoding, decoding, special tokens, errors, save/load."""

import json
import random
import time
import warnings
from collections import Counter

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nanoframe.tokenizer import BPETokenizer
from nanoframe.tokenizer.bpe import _merge_long, _merge_small
from nanoframe.tokenizer.pretokenize import PATTERNS, Pretokenizer

from tests.helpers import SHARED_DATA as DATA

SAMPLE = (
    "First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\nSpeak, speak.\n\n"
    "First Citizen:\nYou are all resolved rather to die than to famish?\n\nAll:\nResolved. "
    "resolved.\n\nFirst Citizen:\nFirst, you know Caius Marcius is chief enemy to the people.\n"
    "Héllo wörld 日本語 🙂 1234567 don't I'LL aaaaaaa abababab\t\ttabs  \n"
) * 3
text_strategy = st.text(st.characters(exclude_categories=("Cs",)), max_size=200)


@pytest.fixture(scope="module")
def tok():
    return BPETokenizer().train(SAMPLE, 400, special_tokens=["<|endoftext|>"],
                                show_progress=False)


def reference_train(text, vocab_size, pattern="gpt2"):
    """Plain BPE: recount every pair each merge; same tie-break and id reuse as BPETokenizer."""
    words = Counter(Pretokenizer(pattern).split(text))
    words = [(list(w.encode("utf-8")), f) for w, f in words.items()]
    vocab = [bytes([b]) for b in range(256)]
    ranks = {t: i for i, t in enumerate(vocab)}
    while len(vocab) < vocab_size:
        counts = Counter()
        for w, f in words:
            for pair in zip(w, w[1:]):
                counts[pair] += f
        if not counts:
            break
        best = max(counts.values())
        a, b = min(p for p, c in counts.items() if c == best)
        token = vocab[a] + vocab[b]
        if token not in ranks:
            ranks[token] = len(vocab)
            vocab.append(token)
        new = ranks[token]
        for w, _ in words:
            i = 0
            while i < len(w) - 1:
                if w[i] == a and w[i + 1] == b:
                    w[i:i + 2] = [new]
                i += 1
    return ranks


# ---- training ---------------------------------------------------------------------------
def test_train_matches_reference(tok):
    ranks = reference_train(SAMPLE, 399)
    assert tok.mergeable_ranks == ranks
    assert tok.vocab_size == 400 and tok.eot_id == 399
    assert tok.special_tokens == {"<|endoftext|>": 399}


@settings(max_examples=40, deadline=None)
@given(text=st.text(st.sampled_from("ab a\nbc'sé🙂1"), max_size=60),
       extra=st.integers(0, 30))
def test_train_matches_reference_on_small_texts(text, extra):
    tok = BPETokenizer()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tiny texts run out of pairs
        tok.train(text, 256 + extra, show_progress=False)
    assert tok.mergeable_ranks == reference_train(text, 256 + extra)


def test_training_is_deterministic():
    a = BPETokenizer().train(SAMPLE, 350, pattern="gpt4", show_progress=False)
    b = BPETokenizer().train(SAMPLE, 350, pattern="gpt4", show_progress=False)
    assert a.mergeable_ranks == b.mergeable_ranks and a.merges == b.merges


def test_train_iterable_and_specials_are_cut_out():
    docs = ["hello world<|endoftext|>", "hello there<|endoftext|>hello"]
    tok = BPETokenizer().train(iter(docs), 300, special_tokens=["<|endoftext|>"],
                               show_progress=False)
    assert not any(b"<|" in t or b"|>" in t for t in tok.mergeable_ranks)
    ids = tok.encode("hello<|endoftext|>", allowed_special="all")
    assert ids[-1] == tok.eot_id and tok.decode(ids) == "hello<|endoftext|>"


def test_train_min_frequency_and_small_corpus():
    with pytest.warns(UserWarning, match="stopped"):
        tok = BPETokenizer().train("abcabc", 300, min_frequency=2, show_progress=False)
    assert tok.vocab_size == 258  # "ab" and "abc" occur twice; nothing else does


def test_train_refuses_small_vocab():
    with pytest.raises(ValueError, match="at least 256"):
        BPETokenizer().train("abc", 256, special_tokens=["<|endoftext|>"])
    with pytest.raises(ValueError, match="distinct"):
        BPETokenizer().train("abc", 300, special_tokens=["<s>", "<s>"])


# ---- encoding and decoding --------------------------------------------------------------
@settings(max_examples=200, deadline=None)
@given(text=text_strategy)
def test_roundtrip(tok, text):
    ids = tok.encode(text, disallowed_special=())   # special-token text is ordinary text here
    assert all(0 <= i < tok.vocab_size for i in ids)
    assert tok.decode(ids) == text
    assert tok.decode_bytes(ids) == text.encode("utf-8")


@pytest.mark.parametrize("text", ["", "\x00", "🙂🙂🙂", "e\u0301\u0301", "日本語のテキスト",
                                  "\U0010FFFF\uFFFF", " " * 1000, "\r\n" * 50])
def test_roundtrip_edge_cases(tok, text):
    assert tok.decode(tok.encode(text)) == text


def test_surrogates_like_tiktoken(tok):
    tiktoken = pytest.importorskip("tiktoken")
    enc = tiktoken.Encoding("t", pat_str=PATTERNS[tok.pattern], mergeable_ranks=tok.mergeable_ranks,
                            special_tokens=tok.special_tokens)
    for text in ["a\ud800b", "\udfff", "x\ud83d\ude42y", "\ud83d"]:
        assert tok.encode(text) == enc.encode(text)
        assert tok.encode_ordinary(text) == enc.encode_ordinary(text)
    assert tok.decode(tok.encode("a\ud800b")) == "a\ufffdb"


@settings(max_examples=200, deadline=None)
@given(data=st.binary(min_size=1, max_size=600))
def test_long_merge_equals_small_merge(tok, data):
    ranks = tok.mergeable_ranks
    # the "merges" rule with the merges listed backwards: a different order
    pair_ranks = {pair: k for k, pair in enumerate(tok.merge_pairs()[::-1])}
    runs = data[:1] * len(data)  # equal-rank ties
    for get, by_pair in [(ranks.get, False), (pair_ranks.get, True)]:
        assert _merge_long(data, ranks, get, by_pair) == _merge_small(data, ranks, get, by_pair)
        assert _merge_long(runs, ranks, get, by_pair) == _merge_small(runs, ranks, get, by_pair)


def test_one_megabyte_without_spaces(tok):
    rng = random.Random(0)
    text = "".join(rng.choice("abcdefghij") for _ in range(1_000_000))
    start = time.perf_counter()
    ids = tok.encode(text)
    elapsed = time.perf_counter() - start
    assert tok.decode(ids) == text
    assert elapsed < 60  # O(n log n); a quadratic merge would take hours
    assert tok.decode(tok.encode("a" * 300_000)) == "a" * 300_000


def test_numpy_ids_and_batch(tok):
    ids = tok.encode_batch(["hello", "world"])
    assert tok.decode(np.array(ids[0], dtype=np.int64)) == "hello"
    assert tok.decode(np.array(ids[1], dtype=np.uint16)) == "world"


def test_invalid_ids(tok):
    for bad in [tok.vocab_size, -1, 10**9, "3", 1.5, None]:
        with pytest.raises(ValueError, match=repr(bad)):
            tok.decode([1, 2, bad])
    with pytest.raises(ValueError):
        tok.id_to_token(tok.vocab_size)


def test_token_lookup(tok):
    the = tok.token_to_id(b" the")
    assert tok.id_to_token(the) == b" the" and tok.token_to_id(" the") == the
    assert tok.token_to_id("<|endoftext|>") == tok.eot_id
    assert tok.id_to_token(tok.eot_id) == b"<|endoftext|>"
    with pytest.raises(ValueError):
        tok.token_to_id(b"not a token at all")


def test_special_token_rules(tok):
    eot = tok.eot_id
    text = "a<|endoftext|>b"
    with pytest.raises(ValueError, match="disallowed special token"):
        tok.encode(text)
    assert tok.encode(text, allowed_special="all") == [*tok.encode("a"), eot, *tok.encode("b")]
    assert tok.encode(text, allowed_special={"<|endoftext|>"}).count(eot) == 1
    plain = tok.encode(text, disallowed_special=())
    assert eot not in plain and tok.decode(plain) == text
    assert tok.encode(text, allowed_special="none") == plain == tok.encode_ordinary(text)
    with pytest.raises(ValueError, match="unknown special"):
        tok.encode(text, allowed_special={"<|nope|>"})


def test_special_tokens_like_tiktoken(tok):
    tiktoken = pytest.importorskip("tiktoken")
    enc = tiktoken.Encoding("t", pat_str=PATTERNS[tok.pattern], mergeable_ranks=tok.mergeable_ranks,
                            special_tokens=tok.special_tokens)
    text = "x \n<|endoftext|>  y<|endoftext|><|endoftext|>\n"
    assert tok.encode(text, allowed_special="all") == enc.encode(text, allowed_special="all")
    assert tok.encode(text, disallowed_special=()) == enc.encode(text, disallowed_special=())


# ---- save / load --------------------------------------------------------------------------
def test_save_load_roundtrip(tok, tmp_path):
    path = tmp_path / "tok.json"
    tok.save(path)
    loaded = BPETokenizer.load(path)
    assert loaded.mergeable_ranks == tok.mergeable_ranks
    assert loaded.special_tokens == tok.special_tokens
    assert loaded.pattern == tok.pattern and loaded.merges == tok.merges
    assert loaded.encode(SAMPLE) == tok.encode(SAMPLE)
    assert '"Ġthe"' in path.read_text(encoding="utf-8")  # readable GPT-2 spelling


def test_corrupt_files_name_the_file(tok, tmp_path):
    path = tmp_path / "tok.json"
    tok.save(path)
    good = path.read_text(encoding="utf-8")
    cases = {
        "truncated.json": good[: len(good) // 2],
        "empty.json": "",
        "binary.json": None,
        "wrong.json": '{"format": "something else"}',
        "nobytes.json": good.replace('"!": 33,', ""),
        "badmerge.json": good.replace('"merges": null', '"merges": [[256, 1, 1]]'),
    }
    for name, content in cases.items():
        bad = tmp_path / name
        if content is None:
            bad.write_bytes(b"\xff\xfe\x00garbage")
        else:
            bad.write_text(content, encoding="utf-8")
        with pytest.raises(ValueError, match=name):
            BPETokenizer.load(bad)


# ---- parity with tiktoken on held-out text ------------------------------------------------
@pytest.mark.parametrize("pattern", ["gpt2", "gpt4"])
def test_trained_tokenizer_matches_tiktoken_on_held_out_text(pattern):
    tiktoken = pytest.importorskip("tiktoken")
    corpus = DATA / "tinyshakespeare.txt"
    held_out = sorted((DATA / "nltk_inaugural").glob("*.txt"))[:20]
    if not corpus.exists() or not held_out:
        pytest.skip("shared data not found")
    train_text = corpus.read_text(encoding="utf-8")[:300_000]
    tok = BPETokenizer().train(train_text, 1024, pattern=pattern,
                               special_tokens=["<|endoftext|>"], show_progress=False)
    enc = tiktoken.Encoding("trained", pat_str=PATTERNS[tok.pattern], mergeable_ranks=tok.mergeable_ranks,
                            special_tokens=tok.special_tokens)
    text = "<|endoftext|>".join(p.read_bytes().decode("latin-1") for p in held_out)
    text += " Ünïcödé 日本語 🙂🙂 \u00a0\u2028 12345678 ſ'S'T\r\n"
    assert tok.encode(text, allowed_special="all") == enc.encode(text, allowed_special="all")
    assert tok.encode_ordinary(text) == enc.encode_ordinary(text)


def test_version_1_files_still_load(tok, tmp_path):
    """Version 1 stored the pattern as its tiktoken regex and listed the training merges."""
    from nanoframe.tokenizer.formats import token_to_str
    from nanoframe.tokenizer.pretokenize import GPT2_PATTERN
    ranks = tok.mergeable_ranks
    merges = [[ranks[l + r], ranks[l], ranks[r]] for l, r in tok.merge_pairs()]
    v1 = {"format": "nanoframe.BPETokenizer", "version": 1, "pattern": GPT2_PATTERN,
          "special_tokens": tok.special_tokens, "merges": merges,
          "vocab": {token_to_str(t): i for t, i in ranks.items()}}
    path = tmp_path / "v1.json"
    path.write_text(json.dumps(v1), encoding="utf-8")
    loaded = BPETokenizer.load(path)
    assert loaded.pattern == "gpt2" and loaded.merge_rule == "ranks"
    assert loaded.mergeable_ranks == ranks and loaded.encode(SAMPLE) == tok.encode(SAMPLE)
