"""The built-in patterns must split exactly like tiktoken (fancy_regex) and `tokenizers` (Oniguruma)."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nanoframe.errors import TokenizerError
from nanoframe.tokenizer.formats import str_to_token
from nanoframe.tokenizer.pretokenize import (
    BUILTIN_PATTERNS, GPT2_ORIGINAL_PATTERN, HF_SPLIT_PATTERNS, PATTERNS, WHITESPACE, Pretokenizer, category_class,
    resolve_pattern, translate)

# Characters where the patterns and Python's `re` are easy to get wrong.
TRICKY = list(" \t\n\r\x0b\x0c\x1c\x1f\x85\xa0\u2028\u3000'sStTdDmMlLvVrReEſK\u212a09١٢"
              "aZéß日本\u0301\U0001F642\U00010400\U0001D7D8\u1C89\U00031350\U00010D40!?.,/\x00"
              "\u01c5\u02b0\u0488\u16ee\u00b2\U0001e030\U0001e5d0\U0001e5f1\U000113b8\u200d\U0001F468")
texts = st.text(st.one_of(st.sampled_from(TRICKY), st.characters(exclude_categories=("Cs",))),
                max_size=30)
# Number characters new in Unicode 17: tokenizers' Digits uses Rust's char::is_numeric, whose
# tables are those of the compiler that built the wheel (Unicode 17 for tokenizers 0.23).
UNICODE17_NUMBERS = {*range(0x11DE0, 0x11DEA), *range(0x16FF4, 0x16FF7)}
EXAMPLES = [
    "Hello world's  I'M 12345 \U0001F642x \U00010400abc\n\n  ",
    "a\r\n\r\n b  \n", "   ", "\n", "x  ", "'S'ſ'K'LL'Ve", "1234567 ١٢٣٤", "",
    "\u1C89\u1C8A \U00031350 \U00010D40\U00010D41",  # Unicode 16 letters / digits
    "HelloWORLDFooBar ǅungla ʰa CamelCase's I'VE", "path/to/file\r\n\n", " \t\n \u3000x",
]


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


def hf_pre_tokenizer(name):
    """The `tokenizers` pre-tokenizer that published tokenizer.json files use for `name`."""
    pre_tokenizers = pytest.importorskip("tokenizers.pre_tokenizers")
    from tokenizers import Regex
    byte_level = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    if name == "gpt2":
        return byte_level
    if name == "smollm2":
        return pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True), byte_level])
    return pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(HF_SPLIT_PATTERNS[name]), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])


def hf_split(text, name):
    pieces = hf_pre_tokenizer(name).pre_tokenize_str(text)
    return [str_to_token(piece).decode("utf-8") for piece, _ in pieces]


@pytest.mark.parametrize("name", list(PATTERNS))
@settings(max_examples=120, deadline=None)
@given(text=texts)
def test_split_matches_tiktoken(name, text):
    assert Pretokenizer(name).split(text) == tiktoken_split(text, PATTERNS[name])


@pytest.mark.parametrize("name", list(BUILTIN_PATTERNS))
@settings(max_examples=120, deadline=None)
@given(text=texts)
def test_split_matches_tokenizers(name, text):
    if name == "smollm2":
        text = "".join(c for c in text if ord(c) not in UNICODE17_NUMBERS)
    assert Pretokenizer(name).split(text) == hf_split(text, name)


@pytest.mark.parametrize("name", list(BUILTIN_PATTERNS))
@pytest.mark.parametrize("text", EXAMPLES)
def test_split_examples(name, text):
    chunks = Pretokenizer(name).split(text)
    assert "".join(chunks) == text
    assert chunks == hf_split(text, name)
    if name in PATTERNS:
        assert chunks == tiktoken_split(text, PATTERNS[name])


def test_gpt4o_keeps_unicode16_letters():
    # U+1E030 (a Cyrillic modifier letter, new in Unicode 15) was dropped by a Unicode 14 table
    assert Pretokenizer("gpt4o").split("Hello \U0001e030 world") == ["Hello", " \U0001e030", " world"]


@settings(max_examples=100, deadline=None)
@given(text=texts)
def test_fast_path_equals_full_classes(text):
    # the same patterns compiled with full (non-BMP) classes and no stand-in swap
    import re
    for name, pattern in PATTERNS.items():
        full = re.compile(translate(pattern, bmp_only=False))
        assert full.findall(text) == Pretokenizer(name).split(text)


def test_translate_rules():
    import re
    assert translate("a$") == "a\\Z"
    assert translate("[$]") == "[$]"
    assert translate("[^\\s]") == "[^" + WHITESPACE + "]"
    upper = re.compile(translate(r"\p{Lu}+|\P{Lu}+"))
    assert upper.findall("abCDé\U00010400x") == ["ab", "CD", "é", "\U00010400", "x"]
    with pytest.raises(ValueError, match="unsupported Unicode class"):
        category_class("Xx")
    with pytest.raises(ValueError):
        translate(r"[\S]")


def test_names_and_refusals():
    for name in BUILTIN_PATTERNS:
        assert resolve_pattern(name) == name and Pretokenizer(name).name == name
    for name, regex in [*PATTERNS.items(), *HF_SPLIT_PATTERNS.items()]:
        assert resolve_pattern(regex) == name  # the exact regex text stands for its name
    assert resolve_pattern(GPT2_ORIGINAL_PATTERN) == "gpt2"
    assert Pretokenizer("smollm2").regex is None and Pretokenizer("gpt4").regex == PATTERNS["gpt4"]
    for bad in ["gpt-4", "", "GPT2", r"\p{L}+", "(a+)+$", None, 3, ["gpt2"]]:
        with pytest.raises(TokenizerError, match="unknown pattern") as err:
            Pretokenizer(bad)
        assert "\n" not in str(err.value) and "gpt4o" in str(err.value)
    with pytest.raises(TokenizerError) as err:
        resolve_pattern("x" * 10_000)
    assert len(str(err.value)) < 200
