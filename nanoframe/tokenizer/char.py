"""Character-level tokenizer (nanoGPT's shakespeare_char mode), with BPETokenizer's interface."""

import json

from nanoframe.errors import TokenizerError
from nanoframe.io import atomic_open
from nanoframe.tokenizer import schema

FORMAT_NAME = "nanoframe.CharTokenizer"
FORMAT_VERSION = 1


class CharTokenizer:
    """One token per distinct character; ids follow the sorted characters.

    There are no special tokens (`special_tokens` is {}, `eot_id` is None).
    """

    def __init__(self, chars=()):
        chars = list(chars)
        if len(set(chars)) != len(chars) or not all(isinstance(c, str) and len(c) == 1
                                                     for c in chars):
            raise TokenizerError("chars must be distinct single characters")
        if len(chars) > schema.MAX_VOCAB:
            raise TokenizerError(f"{len(chars)} characters, more than {schema.MAX_VOCAB}")
        self.chars = chars
        self._stoi = {c: i for i, c in enumerate(chars)}

    @property
    def vocab_size(self):
        """Number of characters."""
        return len(self.chars)

    @property
    def special_tokens(self):
        """Always {}: character tokenizers have no special tokens."""
        return {}

    @property
    def eot_id(self):
        """Always None."""
        return None

    def train(self, text, vocab_size=None, show_progress=False):
        """Build the vocabulary: the sorted distinct characters of `text` (str or iterable of
        str). `vocab_size`, if given, must be at least their number. Returns self."""
        texts = [text] if isinstance(text, str) else text
        chars = set()
        for t in texts:
            chars.update(t)
        if vocab_size is not None and vocab_size < len(chars):
            raise ValueError(f"vocab_size={vocab_size} is smaller than the {len(chars)} "
                             "distinct characters of the text")
        self.__init__(sorted(chars))
        return self

    def encode_ordinary(self, text):
        """Ids of the characters of `text`; an unknown character raises ValueError."""
        stoi = self._stoi
        try:
            return [stoi[c] for c in text]
        except KeyError:
            for pos, c in enumerate(text):
                if c not in stoi:
                    raise ValueError(f"character {c!r} at position {pos} is not in the "
                                     "vocabulary") from None
            raise

    def encode(self, text, allowed_special="none_raise", disallowed_special="all"):
        """Same as `encode_ordinary` (the special-token arguments have nothing to act on)."""
        return self.encode_ordinary(text)

    def encode_batch(self, texts, allowed_special="none_raise", disallowed_special="all"):
        """Encode each text of a list."""
        return [self.encode_ordinary(t) for t in texts]

    def id_to_token(self, token_id):
        """The character of an id."""
        try:
            if token_id < 0:
                raise IndexError
            return self.chars[token_id]
        except (IndexError, TypeError):
            raise ValueError(f"invalid token id {token_id!r}") from None

    def token_to_id(self, token):
        """The id of a character."""
        if token not in self._stoi:
            raise ValueError(f"{token!r} is not in the vocabulary")
        return self._stoi[token]

    def decode(self, ids):
        """The text of a sequence of ids."""
        return "".join([self.id_to_token(i) for i in ids])

    def decode_bytes(self, ids):
        """The UTF-8 bytes of `decode(ids)`."""
        return self.decode(ids).encode("utf-8")

    def save(self, path):
        """Write the vocabulary as JSON."""
        with atomic_open(path, "w") as f:
            json.dump({"format": FORMAT_NAME, "version": FORMAT_VERSION, "chars": self.chars},
                      f, ensure_ascii=False, indent=1)

    @classmethod
    def load(cls, path):
        """Read a file written by `save`; a bad file raises TokenizerError naming it and the field."""
        data = schema.expect(path, "", schema.read_json(path), "object")
        version = data.get("version")
        if data.get("format") != FORMAT_NAME or type(version) is not int or version != FORMAT_VERSION:
            schema.fail(path, "format", f"not a {FORMAT_NAME} v{FORMAT_VERSION} file")
        chars = schema.expect(path, "chars", data.get("chars"), "array")
        if len(chars) > schema.MAX_VOCAB:
            schema.fail(path, "chars", f"{len(chars)} characters, more than {schema.MAX_VOCAB}")
        seen = set()
        for k, c in enumerate(chars):
            schema.expect_text(path, f"chars[{k}]", c)
            if len(c) != 1:
                schema.fail(path, f"chars[{k}]", f"{schema.show(c)} is not one character")
            if c in seen:
                schema.fail(path, f"chars[{k}]", f"{schema.show(c)} appears twice")
            seen.add(c)
        return cls(chars)

    def __repr__(self):
        return f"CharTokenizer(vocab_size={self.vocab_size})"
