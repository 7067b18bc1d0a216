"""The pretokenizer must split exactly like tiktoken (Rust fancy_regex) for both patterns."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nanoframe.tokenizer.pretokenize import (
    GPT2_PATTERN, GPT4_PATTERN, WHITESPACE, Pretokenizer, category_class, translate)

PATTERNS = {"gpt2": GPT2_PATTERN, "gpt4": GPT4_PATTERN}
# Characters where the patterns and Python's `re` are easy to get wrong.
TRICKY = list(" \t\n\r\x0b\x0c\x1c\x1f\x85\xa0\u2028\u3000'sStTdDmMlLvVrReEſK\u212a09١٢"
              "aZéß日本\u0301\U0001F642\U00010400\U0001D7D8\u1C89\U00031350\U00010D40!?.,\x00")
texts = st.text(st.one_of(st.sampled_from(TRICKY), st.characters(exclude_categories=("Cs",))),
                max_size=30)


def tiktoken_split(text, pat_str):
    """tiktoken's chunks: with every substring of `text` in the vocabulary, each chunk merges
    into one token, so the tokens are the chunks."""
    tiktoken = pytest.importorskip("tiktoken")
    data = text.encode("utf-8")
    ranks = {bytes([b]): b for b in range(256)}
    for length in range(2, len(data) + 1):
        for i in range(len(data) - length + 1):
            ranks.setdefault(data[i:i + length], len(ranks))
    enc = tiktoken.Encoding("oracle", pat_str=pat_str, mergeable_ranks=ranks, special_tokens={})
    return [enc.decode_single_token_bytes(t).decode("utf-8") for t in enc.encode_ordinary(text)]


@pytest.mark.parametrize("name", ["gpt2", "gpt4"])
@settings(max_examples=150, deadline=None)
@given(text=texts)
def test_split_matches_tiktoken(name, text):
    assert Pretokenizer(name).split(text) == tiktoken_split(text, PATTERNS[name])


@pytest.mark.parametrize("name", ["gpt2", "gpt4"])
@pytest.mark.parametrize("text", [
    "Hello world's  I'M 12345 \U0001F642x \U00010400abc\n\n  ",
    "a\r\n\r\n b  \n", "   ", "\n", "x  ", "'S'ſ'K'LL'Ve", "1234567 ١٢٣٤", "",
    "\u1C89\u1C8A \U00031350 \U00010D40\U00010D41",  # Unicode 16 letters / digits
])
def test_split_examples(name, text):
    assert Pretokenizer(name).split(text) == tiktoken_split(text, PATTERNS[name])


@settings(max_examples=100, deadline=None)
@given(text=texts)
def test_fast_path_equals_full_classes(text):
    # `\w` disables the non-BMP stand-in swap; the alternative is never reached.
    for pattern in (GPT2_PATTERN, GPT4_PATTERN):
        full = Pretokenizer(pattern + r"|\w")
        assert not full._swap
        assert full.split(text) == Pretokenizer(pattern).split(text)
        assert "".join(full.split(text)) == text


def test_translate_rules():
    assert translate("a$") == "a\\Z"
    assert translate("[$]") == "[$]"
    assert translate("[^\\s]") == "[^" + WHITESPACE + "]"
    upper = Pretokenizer(r"\p{Lu}+|\P{Lu}+")
    assert upper.split("abCDé\U00010400x") == ["ab", "CD", "é", "\U00010400", "x"]


def test_category_class_is_cached_and_fast():
    import time
    start = time.perf_counter()
    category_class("N", bmp_only=False)
    category_class("N", bmp_only=False)
    assert time.perf_counter() - start < 2.0  # generous: correctness suite, not a benchmark


def test_bad_patterns():
    with pytest.raises(ValueError, match="category"):
        Pretokenizer(r"\p{Xx}")
    with pytest.raises(ValueError, match="invalid split pattern"):
        Pretokenizer("(unclosed")
    with pytest.raises(ValueError):
        Pretokenizer("")
    with pytest.raises(ValueError):
        Pretokenizer(r"[\S]")
