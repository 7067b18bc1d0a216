"""Generate nanoframe/tokenizer/unicode_table.py: the Unicode data the tokenizers need.

    pip install --target /tmp/udplus unicodedataplus==16.0.0.post1
    PYTHONPATH=/tmp/udplus python tests/tokenizer/generate_unicode_table.py > nanoframe/tokenizer/unicode_table.py

unicodedataplus 16.0.0 is the stdlib's `unicodedata` built from the Unicode 16.0 database (the
version tiktoken's and tokenizers' regex engines use) plus properties such as `age`. nanoframe
never imports it: the table it writes is plain data. test_unicode_table.py reruns this script
when unicodedataplus 16 is importable and checks the committed table is its output, and checks
every code point against tiktoken and tokenizers when those are installed.

Two tables:
- RUNS: the general category classes of the built-in patterns, for every code point;
- NFC_UNKNOWN: the code points that `tokenizers`' NFC normalizer does not know. It uses Unicode
  9.0 normalization data (measured: it reorders every combining mark of Unicode <= 9.0 and none
  newer), so a character added after 9.0 that takes part in normalization (a non-zero combining
  class, a canonical decomposition, or part of one) passes through it untouched.
"""

import sys

# Class letters of the table; every other general category (P*, S*, Z*, C*) is ".".
CLASS_LETTERS = {"Lu": "u", "Ll": "l", "Lt": "t", "Lm": "m", "Lo": "o",
                 "Mn": "n", "Mc": "c", "Me": "e", "Nd": "d", "Nl": "r", "No": "x"}
DIGITS36 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def base36(n):
    out = ""
    while n:
        n, r = divmod(n, 36)
        out = DIGITS36[r] + out
    return out


def runs(category):
    """[(class letter, length)] over U+0000..U+10FFFF."""
    out = []
    for cp in range(0x110000):
        letter = CLASS_LETTERS.get(category(chr(cp)), ".")
        if out and out[-1][0] == letter:
            out[-1][1] += 1
        else:
            out.append([letter, 1])
    return out


def nfc_unknown(unicodedata):
    """Code points added after Unicode 9.0 that have a combining class or take part in a
    canonical decomposition, as "lo-hi" hex ranges."""
    components, found = set(), []
    for cp in range(0x110000):
        d = unicodedata.decomposition(chr(cp))
        if d and not d.startswith("<"):
            components.update(int(x, 16) for x in d.split())
    for cp in range(0x110000):
        c, age = chr(cp), unicodedata.age(chr(cp))
        if not age[0].isdigit() or tuple(map(int, age.split("."))) <= (9, 0):
            continue
        d = unicodedata.decomposition(c)
        if unicodedata.combining(c) or (d and not d.startswith("<")) or cp in components:
            if found and found[-1][1] == cp - 1:
                found[-1][1] = cp
            else:
                found.append([cp, cp])
    return " ".join(f"{lo:X}-{hi:X}" for lo, hi in found)


def wrap(text, width=92):
    return "\n".join(f'    "{text[i:i + width]}"' for i in range(0, len(text), width))


def render(unicodedata):
    encoded = "".join(letter + (base36(n) if n > 1 else "") for letter, n in runs(unicodedata.category))
    return f'''"""Unicode {unicodedata.unidata_version} data for the tokenizers. GENERATED: do not edit.

Made by tests/tokenizer/generate_unicode_table.py from unicodedataplus {unicodedata.unidata_version} (see there).
RUNS: the general category classes the built-in patterns use. It covers U+0000..U+10FFFF in order
as runs of one class: a class letter, then the run length in base 36 (no digits: length 1).
Letters: {", ".join(f"{v} {k}" for k, v in CLASS_LETTERS.items())}, "." every other category.
NFC_UNKNOWN: "lo-hi" hex ranges of the characters that take part in normalization but are newer
than the Unicode 9.0 data of `tokenizers`' NFC normalizer, which leaves them untouched.
"""

UNICODE_VERSION = "{unicodedata.unidata_version}"
CLASS_LETTERS = {CLASS_LETTERS!r}
RUNS = (
{wrap(encoded)}
)
NFC_UNKNOWN = (
{wrap(nfc_unknown(unicodedata) + " ")}
)
'''


def main():
    import unicodedataplus
    if unicodedataplus.unidata_version != "16.0.0":
        sys.exit(f"need unicodedataplus 16.0.0, found {unicodedataplus.unidata_version}")
    sys.stdout.write(render(unicodedataplus))


if __name__ == "__main__":
    main()
