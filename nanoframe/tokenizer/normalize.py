"""Text clean-up before tokenization: tiktoken's surrogate fix, and NFC as `tokenizers` does it.

Qwen2's tokenizer.json normalizes with NFC.

`tokenizers`' NFC normalizer has Unicode 9.0 data: a character added later that takes part in
normalization (a combining mark, a composed character, a part of one) is unknown to it and passes
through as an inert character. Python's `unicodedata` (Unicode 14.0 in 3.11) knows more, so
`nfc` cuts the text at those characters (listed in unicode_table.NFC_UNKNOWN), normalizes the
pieces between them with `unicodedata`, and keeps them as they are. That is exact: an inert
character has combining class 0 and composes with nothing, so no reordering or composition
crosses it. Normalization data of characters never changes once assigned (Unicode's stability
policy), so Python's newer data agrees with Unicode 9.0 on everything else.
"""

import functools
import re
import unicodedata

from nanoframe.tokenizer import unicode_table

NORMALIZERS = ("nfc",)  # the names a tokenizer's `normalizer` may have (or None)
_SURROGATE = re.compile("[\ud800-\udfff]")


def fix_surrogates(text):
    """Replace surrogates as tiktoken does: pairs become their character, lone ones U+FFFD."""
    if _SURROGATE.search(text):
        return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return text


@functools.lru_cache(maxsize=None)
def _unknown_regex():
    ranges = "".join(unicode_table.NFC_UNKNOWN).split()
    body = "".join("\\U{:08x}-\\U{:08x}".format(*(int(x, 16) for x in r.split("-")))
                   for r in ranges)
    return re.compile(f"[{body}]")


def nfc(text):
    """`text` in NFC, as `tokenizers.normalizers.NFC` gives it."""
    if text.isascii() or unicodedata.is_normalized("NFC", text) and not _unknown_regex().search(text):
        return text
    out, start = [], 0
    for match in _unknown_regex().finditer(text):
        out.append(unicodedata.normalize("NFC", text[start:match.start()]))
        out.append(match.group())
        start = match.end()
    out.append(unicodedata.normalize("NFC", text[start:]))
    return "".join(out)
