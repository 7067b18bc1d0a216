"""unicode_table (Unicode 16.0) against the engines the patterns must agree with, code point by code point."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

from nanoframe.tokenizer import unicode_table
from nanoframe.tokenizer.pretokenize import _stand_ins, category_class, class_letter

ROOT = Path(__file__).resolve().parents[2]
CLASSES = ["L", "Lu", "Ll", "Lt", "Lm", "Lo", "M", "Mn", "Mc", "Me", "N", "Nd", "Nl", "No"]
# every code point except the surrogates (neither engine takes them)
ALL = "".join(map(chr, [*range(0xD800), *range(0xE000, 0x110000)]))


def ours(name):
    """Code points in class `name` by nanoframe's table."""
    return set(map(ord, re.findall(f"[{category_class(name)}]", ALL)))


@pytest.mark.parametrize("name", CLASSES)
def test_every_code_point_matches_tiktoken(name):
    tiktoken = pytest.importorskip("tiktoken")
    enc = tiktoken.Encoding("t", pat_str=rf"\p{{{name}}}", special_tokens={},
                            mergeable_ranks={bytes([b]): b for b in range(256)})
    # only the matches are encoded: the decoded text is the class's characters in order
    members = enc.decode_bytes(enc.encode_ordinary(ALL)).decode("utf-8")
    assert set(map(ord, members)) == ours(name)


@pytest.mark.parametrize("name", ["L", "M", "N"])
def test_every_code_point_matches_tokenizers(name):
    tokenizers = pytest.importorskip("tokenizers")
    split = tokenizers.pre_tokenizers.Split(tokenizers.Regex(rf"\p{{{name}}}"),
                                            behavior="removed", invert=True)
    members = "".join(piece for piece, _ in split.pre_tokenize_str(ALL))
    assert set(map(ord, members)) == ours(name)


def test_table_shape_and_lookup():
    assert unicode_table.UNICODE_VERSION == "16.0.0"
    assert class_letter("A") == "u" and class_letter("a") == "l" and class_letter("\u01c5") == "t"
    assert class_letter("\U0001e030") == "m"  # Cyrillic modifier letter, Unicode 15
    assert class_letter("\U000113b8") == "c"  # Tulu-Tigalari vowel sign, Unicode 16
    assert class_letter("\U0001e5f1") == "d"  # Ol Onal digit, Unicode 16
    assert class_letter("\U0010ffff") == "." and class_letter(" ") == "."
    # stand-ins for the non-BMP swap: BMP, same class, and no ASCII case partner
    for letter, char in _stand_ins().items():
        assert ord(char) < 0x10000 and class_letter(char) == letter
        assert not (char.upper() + char.lower() + char.casefold()).isascii()
        assert not char.isspace()


def test_committed_table_is_the_generator_output():
    """Needs unicodedataplus 16 (pip install unicodedataplus==16.0.0.post1); skipped without it."""
    try:
        import unicodedataplus
    except ImportError:
        pytest.skip("unicodedataplus not installed")
    if unicodedataplus.unidata_version != "16.0.0":
        pytest.skip(f"unicodedataplus is Unicode {unicodedataplus.unidata_version}, not 16.0.0")
    script = ROOT / "tests" / "tokenizer" / "generate_unicode_table.py"
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, check=True)
    table = ROOT / "nanoframe" / "tokenizer" / "unicode_table.py"
    assert out.stdout == table.read_text(encoding="utf-8")
