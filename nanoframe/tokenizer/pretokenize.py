"""Pretokenization: split text into chunks with tiktoken's regex patterns, using stdlib `re`.

tiktoken compiles its patterns with Rust's fancy_regex, whose `\\p{L}`, `\\p{N}` and `\\s` are
Unicode classes that Python's `re` lacks (and Python's `\\s` differs from Unicode White_Space:
it also matches U+001C..U+001F). `translate` rewrites a tiktoken-style pattern into an
equivalent `re` pattern:

- `\\p{X}` (X a general category such as L, N, Lu) becomes an explicit class of code point
  ranges, built once from `unicodedata`. tiktoken 0.14 follows Unicode 16.0 while Python 3.11
  has 14.0, so `_UNICODE16_EXTRA` adds the letters and numbers assigned since (only to
  L and N; for other categories code points unknown to Python count as unassigned);
- `\\s` / `\\S` become Unicode White_Space and its complement;
- `$` becomes `\\Z` (Rust's `$` only matches at the very end, Python's also before a final
  newline).

Possessive quantifiers (`++`, `?+`, `{1,3}+`) are native since Python 3.11.

Speed: `re` tests non-BMP ranges of a class one by one, which is slow for large classes.
For patterns that only see non-BMP characters through those classes (true for the GPT-2 and
GPT-4 patterns), `Pretokenizer` swaps every non-BMP character for a BMP stand-in of the same
class (letter, number or other) and uses BMP-only classes; spans are unchanged because the
swap is one code point for one, so chunks are cut from the original text.
"""

import functools
import re
import unicodedata

# tiktoken's r50k_base / gpt2 pattern (same split as GPT-2's original, faster form).
GPT2_PATTERN = (
    r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}++| ?\p{N}++| ?[^\s\p{L}\p{N}]++|\s++$|\s+(?!\S)|\s"""
)
# tiktoken's cl100k_base (GPT-4) pattern.
GPT4_PATTERN = (
    r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+"""
    r"""|\s++$|\s*[\r\n]|\s+(?!\S)|\s"""
)
PATTERNS = {"gpt2": GPT2_PATTERN, "gpt4": GPT4_PATTERN}

# Unicode White_Space (PropList.txt, unchanged since Unicode 6.3): what Rust's `\s` matches.
WHITESPACE = "\t\n\x0b\x0c\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"

# Letters and numbers of Unicode 16.0 (tiktoken's regex tables) that are unassigned in
# Unicode 14.0 (Python 3.11's unicodedata); checked against tiktoken code point by code point.
_UNICODE16_EXTRA = {
    "L": [(0x1C89, 0x1C8A), (0xA7CB, 0xA7CD), (0xA7DA, 0xA7DC), (0x105C0, 0x105F3),
          (0x10D4A, 0x10D65), (0x10D6F, 0x10D85), (0x10EC2, 0x10EC4), (0x1123F, 0x11240),
          (0x11380, 0x11389), (0x1138B, 0x1138B), (0x1138E, 0x1138E), (0x11390, 0x113B5),
          (0x113B7, 0x113B7), (0x113D1, 0x113D1), (0x113D3, 0x113D3), (0x11BC0, 0x11BE0),
          (0x11F02, 0x11F02), (0x11F04, 0x11F10), (0x11F12, 0x11F33), (0x1342F, 0x1342F),
          (0x13441, 0x13446), (0x13460, 0x143FA), (0x16100, 0x1611D), (0x16D40, 0x16D6C),
          (0x18CFF, 0x18CFF), (0x1B132, 0x1B132), (0x1B155, 0x1B155), (0x1DF25, 0x1DF2A),
          (0x1E030, 0x1E06D), (0x1E4D0, 0x1E4EB), (0x1E5D0, 0x1E5ED), (0x1E5F0, 0x1E5F0),
          (0x2B739, 0x2B739), (0x2EBF0, 0x2EE5D), (0x31350, 0x323AF)],
    "N": [(0x10D40, 0x10D49), (0x116D0, 0x116E3), (0x11BF0, 0x11BF9), (0x11F50, 0x11F59),
          (0x16130, 0x16139), (0x16D70, 0x16D79), (0x1CCF0, 0x1CCF9), (0x1D2C0, 0x1D2D3),
          (0x1E4F0, 0x1E4F9), (0x1E5F1, 0x1E5FA)],
}

_NON_BMP = re.compile("[\U00010000-\U0010ffff]")
# BMP stand-ins for non-BMP characters, by class: letter, number, anything else.
_STAND_IN = {"L": "\u4e00", "N": "\u0660"}
_OTHER_STAND_IN = "\ue000"
# Escapes allowed in a pattern that gets the fast non-BMP swap (see module docstring).
_SAFE_ESCAPES = set("pPsSrntfv") | set(r"""\.^$*+?{}[]()|'"-/ #&~!<>=,:;%@`""")


def resolve_pattern(pattern):
    """Map "gpt2"/"gpt4" to their regex; any other string is taken as a regex itself."""
    if not isinstance(pattern, str) or not pattern:
        raise ValueError(f"pattern must be 'gpt2', 'gpt4' or a non-empty regex, got {pattern!r}")
    return PATTERNS.get(pattern, pattern)


@functools.lru_cache(maxsize=None)
def _category_runs(limit):
    """{two-letter category: [(lo, hi), ...]} for all code points below `limit`."""
    runs = {}
    category = unicodedata.category
    start, current = 0, category("\x00")
    for cp in range(1, limit):
        cat = category(chr(cp))
        if cat != current:
            runs.setdefault(current, []).append((start, cp - 1))
            start, current = cp, cat
    runs.setdefault(current, []).append((start, limit - 1))
    return runs


@functools.lru_cache(maxsize=None)
def category_class(name, bmp_only=False):
    """Body of a regex character class matching general category `name` (e.g. "L", "Nd")."""
    limit = 0x10000 if bmp_only else 0x110000
    runs = _category_runs(limit)
    ranges = [r for cat, rs in runs.items() if cat.startswith(name) for r in rs]
    for lo, hi in _UNICODE16_EXTRA.get(name, ()):
        ranges += [(cp, cp) for cp in range(lo, min(hi + 1, limit)) if _is_unassigned(cp)]
    ranges.sort()
    if not ranges or len(name) > 2:
        raise ValueError(f"unknown Unicode general category \\p{{{name}}}")
    merged = [list(ranges[0])]
    for lo, hi in ranges[1:]:
        if lo == merged[-1][1] + 1:
            merged[-1][1] = hi
        else:
            merged.append([lo, hi])
    esc = "\\U{:08x}".format
    return "".join(esc(lo) if lo == hi else f"{esc(lo)}-{esc(hi)}" for lo, hi in merged)


def _is_unassigned(cp):
    return unicodedata.category(chr(cp)) == "Cn"


def _major_category(char):
    """"L", "N" or another letter: the general category class, with Unicode 16 additions."""
    major = unicodedata.category(char)[0]
    if major == "C" and _is_unassigned(ord(char)):
        cp = ord(char)
        for name, ranges in _UNICODE16_EXTRA.items():
            if any(lo <= cp <= hi for lo, hi in ranges):
                return name
    return major


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
    """True if non-BMP characters can only reach `pattern` through \\p{L}, \\p{N}, \\P{L},
    \\P{N}, \\s, \\S, . or [^...] (so a same-class BMP stand-in matches the same way)."""
    if not pattern.isascii():
        return False
    escapes = re.findall(r"\\(.)", pattern)
    categories = re.findall(r"\\[pP](\{[^}]*\}|.)", pattern)
    return (all(e in _SAFE_ESCAPES for e in escapes)
            and all(c.strip("{}") in ("L", "N") for c in categories))


def _stand_in(match):
    return _STAND_IN.get(_major_category(match.group()), _OTHER_STAND_IN)


class Pretokenizer:
    """Splits text into chunks exactly as tiktoken's regex split does.

    `pattern` is "gpt2", "gpt4" or a regex in tiktoken syntax; `split(text)` returns the
    list of chunks (they concatenate back to `text` for the built-in patterns).
    """

    def __init__(self, pattern="gpt2"):
        self.pattern = resolve_pattern(pattern)
        self._swap = _swap_is_safe(self.pattern)
        try:
            self._regex = re.compile(translate(self.pattern, bmp_only=self._swap))
        except re.error as err:
            raise ValueError(f"invalid split pattern {self.pattern!r}: {err}") from None

    def split(self, text):
        """Return the list of chunks of `text`."""
        if self._swap and not text.isascii() and _NON_BMP.search(text):
            swapped = _NON_BMP.sub(_stand_in, text)
            return [text[m.start():m.end()] for m in self._regex.finditer(swapped)]
        return self._regex.findall(text)

    def __repr__(self):
        return f"Pretokenizer({self.pattern!r})"
