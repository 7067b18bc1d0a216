"""nfc() must equal tokenizers' NFC normalizer, whose data is Unicode 9.0; fix_surrogates tiktoken's."""

import random
import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nanoframe.tokenizer.normalize import fix_surrogates, nfc

# marks with a combining class in Python's data (Unicode 14), and the parts of composed characters
MARKS = [chr(cp) for cp in range(0x110000) if unicodedata.combining(chr(cp))]
PARTS = sorted({chr(int(x, 16)) for cp in range(0x110000)
                for x in unicodedata.decomposition(chr(cp)).split()
                if unicodedata.decomposition(chr(cp)) and not
                unicodedata.decomposition(chr(cp)).startswith("<")})


@pytest.fixture(scope="module")
def hf_nfc():
    normalizers = pytest.importorskip("tokenizers.normalizers")
    return normalizers.NFC().normalize_str


def test_every_combining_mark_and_composition(hf_nfc):
    texts = []
    for mark in MARKS:  # reordering against marks of both lower and higher class
        texts += ["q" + mark + "\u0334", "q\u0301" + mark, "a" + mark + "\u0301"]
    for cp in range(0x110000):  # composition and decomposition of every composed character
        d = unicodedata.decomposition(chr(cp))
        if d and not d.startswith("<"):
            parts = "".join(chr(int(x, 16)) for x in d.split())
            texts += [chr(cp), parts, parts + "\u0301"]
    texts += ["\U00016D67\U00016D67", "\U000113C2\U000113B8", "\U00011935\U00011930"]  # 13-16
    for text in texts:
        assert nfc(text) == hf_nfc(text), [hex(ord(c)) for c in text]


def test_random_mark_soup(hf_nfc):
    rng = random.Random(0)
    pool = MARKS + PARTS + list("aeiouAEIOUqxy가각\u1100\u1161\u11a8 ")
    for _ in range(5000):
        text = "".join(rng.choice(pool) for _ in range(rng.randint(1, 8)))
        assert nfc(text) == hf_nfc(text), [hex(ord(c)) for c in text]


@settings(max_examples=300, deadline=None)
@given(text=st.text(st.characters(exclude_categories=("Cs",)), max_size=40))
def test_arbitrary_text(hf_nfc, text):
    assert nfc(text) == hf_nfc(text)


def test_fix_surrogates():
    assert fix_surrogates("a\ud800b") == "a\ufffdb"
    assert fix_surrogates("x\ud83d\ude42y") == "x\U0001F642y"
    assert fix_surrogates("plain") == "plain"
