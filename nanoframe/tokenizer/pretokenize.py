r"""Pretokenization: split text into chunks as tiktoken and Hugging Face `tokenizers` do, with `re`.

Only the built-in patterns below exist. A pattern is chosen by name; a regex is never taken from
a file or an argument (a crafted regex can take exponential time, and an unknown name must not
silently split every text into nothing).

| name      | split                                                     | families                       |
|-----------|-----------------------------------------------------------|--------------------------------|
| `gpt2`    | tiktoken's r50k pattern (same chunks as GPT-2's regex)    | GPT-2, `ByteLevel(use_regex)`  |
| `gpt4`    | tiktoken's cl100k_base pattern                            | GPT-3.5 / GPT-4                |
| `gpt4o`   | tiktoken's o200k_base pattern (case-aware letter runs)    | GPT-4o                         |
| `llama3`  | Llama 3's Split regex (numbers in groups of up to 3)      | Llama 3                        |
| `qwen2`   | Qwen2's Split regex (every number character alone)        | Qwen2, Qwen2.5                 |
| `smollm2` | every number character alone, then `gpt2` on the rest     | SmolLM, SmolLM2 (Digits + ByteLevel) |

tiktoken (fancy_regex) and `tokenizers` (Oniguruma) give `\p{L}`, `\p{N}`, `\p{M}`, their
subclasses and `\s` Unicode meanings that Python's `re` lacks. `translate` rewrites a pattern
into an equivalent `re` pattern:

- `\p{X}` becomes an explicit class of code point ranges from `unicode_table` (Unicode 16.0,
  the version both engines use; Python 3.11's own `unicodedata` is 14.0), for X in L, Lu, Ll,
  Lt, Lm, Lo, M, Mn, Mc, Me, N, Nd, Nl, No;
- `\s` / `\S` become Unicode White_Space and its complement (Python's `\s` also matches
  U+001C..U+001F);
- `$` becomes `\Z` (Rust's `$` only matches at the very end, Python's also before a final
  newline).

Possessive quantifiers (`++`, `?+`, `{1,3}+`) are native since Python 3.11.

Speed: `re` tests non-BMP ranges of a class one by one, which is slow for large classes. The
built-in patterns only see non-BMP characters through those classes, so `Pretokenizer` swaps
every non-BMP character for a BMP stand-in of the same class and uses BMP-only classes; spans
are unchanged because the swap is one code point for one, so chunks are cut from the original
text.
"""

import bisect
import functools
import re

from nanoframe.errors import TokenizerError, bounded
from nanoframe.tokenizer import unicode_table

# tiktoken's r50k_base / gpt2 pattern (same split as GPT-2's original, faster form).
GPT2_PATTERN = (
    r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}++| ?\p{N}++| ?[^\s\p{L}\p{N}]++|\s++$|\s+(?!\S)|\s"""
)
# tiktoken's cl100k_base (GPT-4) pattern.
GPT4_PATTERN = (
    r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+"""
    r"""|\s++$|\s*[\r\n]|\s+(?!\S)|\s"""
)
# tiktoken's o200k_base (GPT-4o) pattern.
GPT4O_PATTERN = "|".join([
    r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+"""
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
    r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*"""
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
    r"""\p{N}{1,3}""",
    r""" ?[^\s\p{L}\p{N}]+[\r\n/]*""",
    r"""\s*[\r\n]+""",
    r"""\s+(?!\S)""",
    r"""\s+""",
])
# The Split regex of Llama 3's tokenizer.json.
LLAMA3_PATTERN = (
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"""
    r"""|\s*[\r\n]+|\s+(?!\S)|\s+"""
)
# The Split regex of Qwen2's tokenizer.json: as Llama 3's, but one number character per chunk.
QWEN2_PATTERN = (
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"""
    r"""|\s*[\r\n]+|\s+(?!\S)|\s+"""
)
# GPT-2's original regex, as `tokenizers`' ByteLevel pre-tokenizer has it (same chunks as gpt2).
GPT2_ORIGINAL_PATTERN = (
    r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
)

# cl100k as a tokenizer.json Split regex: Oniguruma (Ruby syntax) reads `{1,3}+` as `{1,3}`
# repeated, not as possessive, so the file spells it `{1,3}` (the same thing at the end of an
# alternative). The other possessives and `$` mean the same in both engines here.
GPT4_HF_PATTERN = GPT4_PATTERN.replace(r"\p{N}{1,3}+", r"\p{N}{1,3}")

# Built-in name -> regex (tiktoken syntax), for the names that are one regex.
PATTERNS = {"gpt2": GPT2_PATTERN, "gpt4": GPT4_PATTERN, "gpt4o": GPT4O_PATTERN,
            "llama3": LLAMA3_PATTERN, "qwen2": QWEN2_PATTERN}
# Built-in name -> (name of its regex, whether number characters are split off one by one first).
BUILTIN_PATTERNS = {**{name: (name, False) for name in PATTERNS}, "smollm2": ("gpt2", True)}
# Built-in name -> the regex of a tokenizer.json `Split` pre-tokenizer that `tokenizers` runs
# exactly like it (gpt2 and smollm2 are written as ByteLevel / Digits pre-tokenizers instead).
HF_SPLIT_PATTERNS = {"gpt2": GPT2_ORIGINAL_PATTERN, "gpt4": GPT4_HF_PATTERN,
                     "gpt4o": GPT4O_PATTERN, "llama3": LLAMA3_PATTERN, "qwen2": QWEN2_PATTERN}
# The exact regex texts accepted in place of a name (files of older nanoframe versions hold them).
REGEX_NAMES = {**{regex: name for name, regex in HF_SPLIT_PATTERNS.items()},
               **{regex: name for name, regex in PATTERNS.items()}}

# Unicode White_Space (PropList.txt, unchanged since Unicode 6.3): what Rust's `\s` matches.
WHITESPACE = "\t\n\x0b\x0c\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"

_NON_BMP = re.compile("[\U00010000-\U0010ffff]")
# Escapes allowed in a pattern that gets the fast non-BMP swap (see module docstring).
_SAFE_ESCAPES = set("pPsSrntfv") | set(r"""\.^$*+?{}[]()|'"-/ #&~!<>=,:;%@`""")


def resolve_pattern(pattern):
    """The built-in name of `pattern`: a name, or the exact regex text of a built-in pattern."""
    if isinstance(pattern, str):
        if pattern in BUILTIN_PATTERNS:
            return pattern
        if pattern in REGEX_NAMES:
            return REGEX_NAMES[pattern]
    raise TokenizerError(f"unknown pattern {bounded(repr(pattern), 80)}: use one of "
                         f"{', '.join(BUILTIN_PATTERNS)}")


# ---- Unicode 16 classes -----------------------------------------------------------------
# Class name -> table letters: the two-letter categories and their unions L, M, N.
_CLASS_LETTERS = dict(unicode_table.CLASS_LETTERS)
for _cat, _letter in unicode_table.CLASS_LETTERS.items():
    _CLASS_LETTERS[_cat[0]] = _CLASS_LETTERS.get(_cat[0], "") + _letter


@functools.lru_cache(maxsize=None)
def _runs():
    """(starts, letters): run i covers code points starts[i] .. starts[i+1]-1, class letters[i]."""
    starts, letters, cp = [], [], 0
    for letter, length in re.findall(r"([a-z.])([0-9A-Z]*)", "".join(unicode_table.RUNS)):
        starts.append(cp)
        letters.append(letter)
        cp += int(length, 36) if length else 1
    if cp != 0x110000:
        raise AssertionError(f"unicode_table.RUNS covers {cp:#x} code points, not 0x110000")
    return starts, "".join(letters)


def class_letter(char):
    """The unicode_table letter of a character ("." outside the table's classes)."""
    starts, letters = _runs()
    return letters[bisect.bisect_right(starts, ord(char)) - 1]


@functools.lru_cache(maxsize=None)
def category_class(name, bmp_only=False):
    """Body of a regex character class matching Unicode 16 class `name` (e.g. "L", "Nd")."""
    wanted = _CLASS_LETTERS.get(name)
    if wanted is None:
        raise ValueError(f"unsupported Unicode class \\p{{{name}}}: use one of "
                         f"{', '.join(sorted(_CLASS_LETTERS))}")
    limit = 0x10000 if bmp_only else 0x110000
    starts, letters = _runs()
    merged = []
    for i, letter in enumerate(letters):
        lo, hi = starts[i], (starts[i + 1] if i + 1 < len(starts) else 0x110000) - 1
        if letter not in wanted or lo >= limit:
            continue
        hi = min(hi, limit - 1)
        if merged and merged[-1][1] + 1 == lo:
            merged[-1][1] = hi
        else:
            merged.append([lo, hi])
    esc = "\\U{:08x}".format
    return "".join(esc(lo) if lo == hi else f"{esc(lo)}-{esc(hi)}" for lo, hi in merged)


@functools.lru_cache(maxsize=None)
def _stand_ins():
    """Class letter -> a BMP character of that class that no pattern literal matches (not ASCII,
    not whitespace, no ASCII case partner); "." -> a private-use character."""
    starts, letters = _runs()
    out = {".": "\ue000"}
    for i, letter in enumerate(letters):
        hi = (starts[i + 1] if i + 1 < len(starts) else 0x110000) - 1
        for cp in range(max(starts[i], 0x100), min(hi, 0xFFFF) + 1):
            c = chr(cp)
            if letter != "." and not (c.upper() + c.lower() + c.casefold()).isascii() \
                    and cp not in (0x17F, 0x212A):
                out[letter] = c  # the last such character of the BMP wins
    return out


def _stand_in(match):
    return _stand_ins()[class_letter(match.group())]


def translate(pattern, bmp_only=False):
    """Rewrite a tiktoken (fancy_regex) pattern into an equivalent Python `re` pattern."""
    out = []
    i, n = 0, len(pattern)
    in_class = False
    while i < n:
        c = pattern[i]
        if c == "\\" and i + 1 < n:
            e = pattern[i + 1]
            i += 2
            if e in "pP":
                if i < n and pattern[i] == "{":
                    end = pattern.find("}", i)
                    if end < 0:
                        raise ValueError(f"unterminated \\{e}{{...}} in pattern {pattern!r}")
                    name, i = pattern[i + 1:end], end + 1
                else:
                    name, i = pattern[i:i + 1], i + 1
                body = category_class(name, bmp_only)
                if e == "P" and in_class:
                    raise ValueError(f"\\P{{{name}}} inside [...] is not supported")
                out.append(body if in_class else f"[{'^' if e == 'P' else ''}{body}]")
            elif e == "s":
                out.append(WHITESPACE if in_class else f"[{WHITESPACE}]")
            elif e == "S":
                if in_class:
                    raise ValueError("\\S inside [...] is not supported")
                out.append(f"[^{WHITESPACE}]")
            else:
                out.append("\\" + e)
        elif c == "[" and not in_class:
            in_class = True
            out.append(c)
            i += 1
            if pattern.startswith("^", i):
                out.append("^")
                i += 1
            if pattern.startswith("]", i):  # a leading ']' is a literal
                out.append("\\]")
                i += 1
        elif c == "]" and in_class:
            in_class = False
            out.append(c)
            i += 1
        elif c == "$" and not in_class:
            out.append("\\Z")
            i += 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


def _swap_is_safe(pattern):
    """True if non-BMP characters can only reach `pattern` through the table's classes, \\s,
    \\S, . or [^...] (so a same-class BMP stand-in matches the same way)."""
    if not pattern.isascii():
        return False
    escapes = re.findall(r"\\(.)", pattern)
    categories = re.findall(r"\\[pP](\{[^}]*\}|.)", pattern)
    return (all(e in _SAFE_ESCAPES for e in escapes)
            and all(c.strip("{}") in _CLASS_LETTERS for c in categories))


@functools.lru_cache(maxsize=None)
def _compile(name):
    """(compiled regex, compiled number splitter or None, swap) of a built-in pattern."""
    regex_name, isolate_numbers = BUILTIN_PATTERNS[name]
    pattern = PATTERNS[regex_name]
    swap = _swap_is_safe(pattern)
    regex = re.compile(translate(pattern, bmp_only=swap))
    numbers = re.compile(f"[{category_class('N', bmp_only=swap)}]") if isolate_numbers else None
    return regex, numbers, swap


class Pretokenizer:
    """Splits text into chunks exactly as tiktoken / `tokenizers` do for a built-in pattern.

    `pattern` is a built-in name (see the module docstring) or the exact regex text of one;
    `split(text)` returns the list of chunks (they concatenate back to `text`).
    """

    def __init__(self, pattern="gpt2"):
        self.name = resolve_pattern(pattern)
        self._regex, self._numbers, self._swap = _compile(self.name)

    @property
    def regex(self):
        """The pattern's regex in tiktoken syntax (None for `smollm2`, which is two steps)."""
        return PATTERNS.get(self.name) if self._numbers is None else None

    def split(self, text):
        """Return the list of chunks of `text`."""
        swapped = text
        if self._swap and not text.isascii() and _NON_BMP.search(text):
            swapped = _NON_BMP.sub(_stand_in, text)
        if self._numbers is None:
            if swapped is text:
                return self._regex.findall(text)
            return [text[m.start():m.end()] for m in self._regex.finditer(swapped)]
        # number characters alone, the regex on the text between them (as separate strings:
        # finditer's endpos acts as the end of the text for `\Z` and lookaheads)
        out, start = [], 0
        finditer = self._regex.finditer
        for number in self._numbers.finditer(swapped):
            pos = number.start()
            out += [text[m.start():m.end()] for m in finditer(swapped, start, pos)]
            out.append(text[pos])
            start = pos + 1
        out += [text[m.start():m.end()] for m in finditer(swapped, start)]
        return out

    def __repr__(self):
        return f"Pretokenizer({self.name!r})"
