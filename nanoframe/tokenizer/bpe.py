"""Byte-level BPE tokenizer (GPT-2, GPT-4, Llama 3, Qwen2, SmolLM2 style).

The vocabulary is a map `ranks: bytes -> id` that holds all 256 single bytes, plus special
tokens (str -> id) outside it. Encoding cuts the text at the allowed special tokens, normalizes
the pieces (only tokenizers read from a tokenizer.json with an NFC normalizer), splits them into
chunks with a built-in pattern, then merges the bytes of each chunk by one of two rules:

- "ranks", tiktoken's: merge the adjacent pair of parts whose concatenation is the token with
  the lowest id (leftmost first), until no pair is a token; a chunk that is itself a token is
  emitted whole. Trained tokenizers and tiktoken files use it.
- "merges", the BPE model of Hugging Face `tokenizers`: merge the adjacent pair that comes
  first in an ordered merge list (leftmost first), until none is in the list; with
  `ignore_merges` (Llama 3 sets it) a chunk that is itself a token is emitted whole.
  tokenizer.json, vocab.json + merges.txt and encoder.json + vocab.bpe files use it.

Both are one loop (`_merge_small`, `_merge_long`) with a different rank of a pair of parts.
Ids of trained tokenizers are: byte b -> b, merges -> 256, 257, ... in training order, then
the special tokens.
"""

import functools
import heapq
import operator
import re
import warnings
from itertools import repeat

from nanoframe.errors import TokenizerError
from nanoframe.tokenizer import formats, schema
from nanoframe.tokenizer.bpe_train import count_chunks, learn_merges
from nanoframe.tokenizer.normalize import NORMALIZERS, fix_surrogates, nfc
from nanoframe.tokenizer.pretokenize import Pretokenizer

ENDOFTEXT = "<|endoftext|>"
MERGE_RULES = ("ranks", "merges")
_CACHE_MAX = 1 << 18  # chunk-cache entries before the cache is cleared
_CACHE_CHUNK_MAX = 128  # longer chunks are not cached
_LONG_CHUNK = 256  # chunks with more bytes use the O(n log n) heap merge
_NO_RANK = 1 << 62  # rank of a pair that does not merge
_BYTE_TOKENS = [bytes([b]) for b in range(256)]


def _merge_small(data, ranks, get, by_pair):
    """Merge the bytes of `data`: repeatedly the adjacent pair of parts with the lowest rank,
    the leftmost among equal ranks (as tiktoken and `tokenizers` do). A pair's rank is
    get((left, right)) if `by_pair`, else get(left + right); None: it does not merge. Returns
    the ids of the parts. O(n^2) in C-speed list scans; best for short chunks."""
    parts = list(map(_BYTE_TOKENS.__getitem__, data))
    pairs = zip(parts, parts[1:]) if by_pair else map(operator.add, parts, parts[1:])
    pair_ranks = list(map(get, pairs, repeat(_NO_RANK)))
    while pair_ranks:
        best = min(pair_ranks)
        if best == _NO_RANK:
            break
        i = pair_ranks.index(best)
        parts[i:i + 2] = [parts[i] + parts[i + 1]]
        del pair_ranks[i]
        if i > 0:
            left, right = parts[i - 1], parts[i]
            pair_ranks[i - 1] = get((left, right) if by_pair else left + right, _NO_RANK)
        if i < len(pair_ranks):
            left, right = parts[i], parts[i + 1]
            pair_ranks[i] = get((left, right) if by_pair else left + right, _NO_RANK)
    return list(map(ranks.__getitem__, parts))


def _merge_long(data, ranks, get, by_pair):
    """Same result as `_merge_small` in O(n log n): a heap of (rank, start) over a linked list.

    Parts are identified by their start offset; nxt[s] is the start of the next part (n at
    the end), prv[s] the previous one. Heap entries are checked when popped and skipped if
    the pair at that start no longer has that rank.
    """
    n = len(data)
    nxt = list(range(1, n + 1))
    prv = list(range(-1, n - 1))
    alive = [True] * n

    def rank(i, j, k):  # rank of the parts data[i:j] + data[j:k], or None
        return get((data[i:j], data[j:k]) if by_pair else data[i:k])

    heap = [(r, i) for i in range(n - 1) if (r := rank(i, i + 1, i + 2)) is not None]
    heapq.heapify(heap)
    while heap:
        r, i = heapq.heappop(heap)
        if not alive[i] or nxt[i] >= n:
            continue
        j = nxt[i]
        if rank(i, j, nxt[j]) != r:
            continue  # stale entry
        alive[j] = False
        k = nxt[i] = nxt[j]
        if k < n:
            prv[k] = i
            if (rr := rank(i, k, nxt[k])) is not None:
                heapq.heappush(heap, (rr, i))
        p = prv[i]
        if p >= 0 and (rr := rank(p, i, k)) is not None:
            heapq.heappush(heap, (rr, p))
    out, i = [], 0
    while i < n:
        out.append(ranks[data[i:nxt[i]]])
        i = nxt[i]
    return out


def encode_chunk(data, ranks, pair_ranks=None, whole=True):
    """Token ids of one chunk (bytes).

    pair_ranks None: tiktoken's rule (the rank of a pair is the id of its concatenation in
    `ranks`). Otherwise {(left bytes, right bytes): position in the merge list}, the rule of
    `tokenizers`. `whole`: a chunk that is itself a token is emitted as that token.
    """
    if whole:
        token = ranks.get(data)
        if token is not None:
            return [token]
    by_pair = pair_ranks is not None
    merge = _merge_small if len(data) <= _LONG_CHUNK else _merge_long
    return merge(data, ranks, pair_ranks.get if by_pair else ranks.get, by_pair)


class BPETokenizer:
    """Byte-level BPE tokenizer: train, encode, decode, save and load.

    Build one with `BPETokenizer().train(...)`, `BPETokenizer.load(path)` (nanoframe's JSON),
    `from_tokenizer_json(path)` (Hugging Face), `from_gpt2_files(...)` or
    `from_tiktoken_file(...)`; `nanoframe.tokenizer.load_tokenizer` picks the right one.
    A new tokenizer holds only the 256 byte tokens (byte b has id b).

    Args:
        ranks: dict bytes -> id of the ordinary tokens; must contain all 256 single bytes.
        pattern: the name of a built-in split pattern ("gpt2", "gpt4", "gpt4o", "llama3",
            "qwen2", "smollm2"; see `nanoframe.tokenizer.pretokenize`).
        special_tokens: dict str -> id, ids distinct from those in `ranks`.
        merges: with merge_rule "merges", the ordered list of (left id, right id) pairs that
            defines the encoding. Not used with "ranks", whose merges follow from the ranks
            (see `merge_pairs`).
        merge_rule: "ranks" (tiktoken's) or "merges" (Hugging Face's); see the module docstring.
        ignore_merges: with merge_rule "merges", emit a chunk that is itself a token whole.
        normalizer: None or "nfc" (NFC exactly as `tokenizers` applies it).
    """

    def __init__(self, ranks=None, pattern="gpt2", special_tokens=None, merges=None, *,
                 merge_rule="ranks", ignore_merges=False, normalizer=None):
        ranks = {bytes([b]): b for b in range(256)} if ranks is None else dict(ranks)
        special_tokens = dict(special_tokens or {})
        _check_vocab(ranks, special_tokens)
        if merge_rule not in MERGE_RULES:
            raise TokenizerError(f"merge_rule must be one of {MERGE_RULES}, got {merge_rule!r}")
        if normalizer is not None and normalizer not in NORMALIZERS:
            raise TokenizerError(f"normalizer must be None or one of {NORMALIZERS}, "
                                 f"got {normalizer!r}")
        if (merge_rule == "merges") != (merges is not None):
            raise TokenizerError('merge_rule "merges" needs the merge list, and only it takes one '
                                 '(tiktoken\'s "ranks" rule derives the merges from the ranks)')
        self._ranks = ranks
        self._special = special_tokens
        self._decoder = {i: b for b, i in ranks.items()}
        self._decoder.update((i, s.encode("utf-8")) for s, i in special_tokens.items())
        self._vocab_size = max(self._decoder) + 1
        self._merges = None if merges is None else _check_merges(merges, self._decoder, ranks)
        self._merge_rule = merge_rule
        self._ignore_merges = bool(ignore_merges) and merge_rule == "merges"
        self._normalizer = normalizer
        self._pretok = Pretokenizer(pattern)
        if merge_rule == "ranks":
            self._encode_chunk = functools.partial(encode_chunk, ranks=ranks)
        else:  # a pair listed twice keeps its last position, as in `tokenizers`
            decoder = self._decoder
            pair_ranks = {(decoder[l], decoder[r]): k for k, (l, r) in enumerate(self._merges)}
            self._encode_chunk = functools.partial(encode_chunk, ranks=ranks,
                                                   pair_ranks=pair_ranks,
                                                   whole=self._ignore_merges)
        self._cache = {}
        self._special_regex_cache = {}

    # ---- properties -------------------------------------------------------------------
    @property
    def pattern(self):
        """The name of the built-in split pattern ("gpt2", "gpt4", ...)."""
        return self._pretok.name

    @property
    def merge_rule(self):
        """"ranks" (tiktoken's rule) or "merges" (Hugging Face's)."""
        return self._merge_rule

    @property
    def ignore_merges(self):
        """With merge_rule "merges": whether a chunk that is a token is emitted whole."""
        return self._ignore_merges

    @property
    def normalizer(self):
        """None or "nfc"."""
        return self._normalizer

    @property
    def merges(self):
        """The merge list [(left id, right id)] of the "merges" rule (a copy); None under
        "ranks" (see `merge_pairs`)."""
        return None if self._merges is None else list(self._merges)

    @property
    def vocab_size(self):
        """Largest id + 1 (the embedding size a model needs)."""
        return self._vocab_size

    @property
    def special_tokens(self):
        """dict str -> id of the special tokens (a copy)."""
        return dict(self._special)

    @property
    def mergeable_ranks(self):
        """dict bytes -> id of the non-special tokens (a copy; tiktoken's `mergeable_ranks`)."""
        return dict(self._ranks)

    @property
    def eot_id(self):
        """Id of "<|endoftext|>" if it is a special token, else None."""
        return self._special.get(ENDOFTEXT)

    def id_to_token(self, token_id):
        """The bytes of one token (a special token's UTF-8 text)."""
        try:
            return self._decoder[token_id]
        except (KeyError, TypeError):
            raise ValueError(f"invalid token id {token_id!r}") from None

    def token_to_id(self, token):
        """The id of a token given as bytes, or as str (its UTF-8 bytes, or a special token)."""
        if isinstance(token, str):
            if token in self._special:
                return self._special[token]
            token = token.encode("utf-8")
        if token in self._ranks:
            return self._ranks[token]
        for text, i in self._special.items():
            if text.encode("utf-8") == token:
                return i
        raise ValueError(f"{token!r} is not a token of this vocabulary")

    def __repr__(self):
        return (f"BPETokenizer(vocab_size={self.vocab_size}, "
                f"special_tokens={len(self._special)}, pattern={self.pattern!r}, "
                f"merge_rule={self.merge_rule!r})")

    # ---- training ---------------------------------------------------------------------
    def train(self, text, vocab_size, pattern="gpt2", special_tokens=(), min_frequency=1,
              show_progress=True):
        """Learn merges from `text` (a str or an iterable of str) until `vocab_size` tokens.

        Replaces the current vocabulary (the result uses tiktoken's "ranks" rule, no
        normalizer). `vocab_size` counts the 256 byte tokens, the merges and
        `special_tokens` (a sequence of str, given the last ids; their text is cut out of the
        training data). Pairs seen fewer than `min_frequency` times are not merged, so the
        vocabulary can end up smaller (a warning says so).

        Chunks are counted once; pair counts are kept incrementally and only the chunks a
        merge touches are updated. The most frequent pair is merged next; ties go to the
        smallest (left id, right id). If a merge yields bytes already in the vocabulary, the
        existing id is reused. Returns self.
        """
        special_tokens = list(special_tokens)
        if len(set(special_tokens)) != len(special_tokens) or not all(
                isinstance(s, str) and s for s in special_tokens):
            raise ValueError(f"special_tokens must be distinct non-empty str, got {special_tokens}")
        if vocab_size < 256 + len(special_tokens):
            raise ValueError(f"vocab_size={vocab_size} is too small: it must be at least 256 "
                             f"(byte tokens) + {len(special_tokens)} (special tokens)")
        if vocab_size > schema.MAX_VOCAB:
            raise ValueError(f"vocab_size={vocab_size} is above the maximum {schema.MAX_VOCAB}")
        pretok = Pretokenizer(pattern)
        words, freqs = count_chunks(text, pretok, special_tokens)
        n_merges = vocab_size - 256 - len(special_tokens)
        ranks, merges = learn_merges(words, freqs, n_merges, min_frequency, show_progress)
        next_id = len(ranks)
        if len(merges) < n_merges:
            warnings.warn(f"training stopped after {len(merges)} of {n_merges} merges "
                          f"(no pair occurs at least min_frequency={min_frequency} times)")
        special = {s: next_id + k for k, s in enumerate(special_tokens)}
        self.__init__(ranks, pretok.name, special)
        return self

    # ---- encoding ---------------------------------------------------------------------
    def encode_ordinary(self, text):
        """Encode `text` ignoring special tokens (their text is encoded as ordinary text)."""
        return self._encode_ordinary(fix_surrogates(text))

    def _encode_ordinary(self, text):
        if self._normalizer is not None:
            text = nfc(text)
        cache = self._cache
        get = cache.get
        encode = self._encode_chunk
        out = []
        extend = out.extend
        for chunk in self._pretok.split(text):
            ids = get(chunk)
            if ids is None:
                ids = encode(chunk.encode("utf-8"))
                if len(chunk) <= _CACHE_CHUNK_MAX:
                    if len(cache) >= _CACHE_MAX:
                        cache.clear()
                    cache[chunk] = ids
            extend(ids)
        return out

    def encode(self, text, allowed_special="none_raise", disallowed_special="all"):
        """Encode `text`, with tiktoken's rules for special tokens.

        allowed_special: "none_raise" (default, same as an empty set), "all", a collection of
            special-token strings encoded as special tokens, or "none" (minbpe: all special
            text is encoded as ordinary text and nothing raises).
        disallowed_special: "all" (every special token not allowed) or a collection; text
            matching a disallowed special token raises ValueError.

        With allowed_special="all" the ids are those of `tokenizers`' `encode(text,
        add_special_tokens=False)` for a tokenizer read from a tokenizer.json.
        """
        text = fix_surrogates(text)
        if allowed_special == "none":
            return self._encode_ordinary(text)
        if allowed_special == "all":
            allowed = set(self._special)
        elif allowed_special == "none_raise":
            allowed = set()
        else:
            if isinstance(allowed_special, str):
                raise ValueError(f"allowed_special must be 'all', 'none', 'none_raise' or a "
                                 f"set of special tokens, got {allowed_special!r}")
            allowed = set(allowed_special)
            unknown = allowed - set(self._special)
            if unknown:
                raise ValueError(f"allowed_special has unknown special tokens {sorted(unknown)}")
        if disallowed_special == "all":
            disallowed = set(self._special) - allowed
        else:
            disallowed = set(disallowed_special)
        if disallowed:
            match = self._special_regex(disallowed).search(text)
            if match:
                raise ValueError(
                    f"text contains the disallowed special token {match.group()!r}; pass it in "
                    "allowed_special to encode it as a special token, or disallowed_special=() "
                    "to encode it as ordinary text")
        if not allowed:
            return self._encode_ordinary(text)
        ids, start = [], 0
        for match in self._special_regex(allowed).finditer(text):
            ids.extend(self._encode_ordinary(text[start:match.start()]))
            ids.append(self._special[match.group()])
            start = match.end()
        ids.extend(self._encode_ordinary(text[start:]))
        return ids

    def encode_batch(self, texts, allowed_special="none_raise", disallowed_special="all"):
        """Encode each text of a list; returns a list of id lists."""
        return [self.encode(t, allowed_special, disallowed_special) for t in texts]

    def _special_regex(self, tokens):
        key = frozenset(tokens)
        regex = self._special_regex_cache.get(key)
        if regex is None:  # longest first: leftmost-longest, as `tokenizers` matches them
            alternatives = sorted(key, key=lambda s: (-len(s), s))
            regex = re.compile("|".join(map(re.escape, alternatives)))
            self._special_regex_cache[key] = regex
        return regex

    # ---- decoding ---------------------------------------------------------------------
    def decode_bytes(self, ids):
        """The bytes of a sequence of ids (accepts ints, numpy integers or a numpy array)."""
        decoder = self._decoder
        try:
            return b"".join([decoder[i] for i in ids])
        except (KeyError, TypeError):
            for i in ids:
                self.id_to_token(i)  # raises ValueError naming the first bad id
            raise

    def decode(self, ids):
        """The text of a sequence of ids; invalid UTF-8 becomes U+FFFD."""
        return self.decode_bytes(ids).decode("utf-8", errors="replace")

    # ---- files ------------------------------------------------------------------------
    def save(self, path):
        """Write the tokenizer as nanoframe's readable JSON (tokens in GPT-2's byte-to-unicode
        spelling); `load` reads it back exactly."""
        formats.write_nanoframe_file(path, self._ranks, self.pattern, self._special,
                                     self._merges, self._merge_rule, self._ignore_merges,
                                     self._normalizer)

    @classmethod
    def load(cls, path):
        """Read a file written by `save`; a bad file raises TokenizerError naming it."""
        parts = formats.read_nanoframe_file(path)
        return cls._from_file_parts(path, **parts)

    @classmethod
    def from_tokenizer_json(cls, path):
        """Load a Hugging Face tokenizer.json of a byte-level BPE tokenizer (GPT-2, Llama 3,
        Qwen2, SmolLM2 style); anything else is refused with a TokenizerError naming what is
        unsupported. Ids are those of `tokenizers` (see `encode`)."""
        from nanoframe.tokenizer import hf_json
        return cls._from_file_parts(path, **hf_json.read_tokenizer_json(path))

    def save_tokenizer_json(self, path):
        """Write a Hugging Face tokenizer.json that `tokenizers` loads and encodes with the
        same ids (tiktoken-rule tokenizers are written with their merges and ignore_merges)."""
        from nanoframe.tokenizer import hf_json
        hf_json.write_tokenizer_json(path, self)

    @classmethod
    def from_gpt2_files(cls, encoder_json, vocab_bpe, pattern="gpt2"):
        """Load OpenAI / Hugging Face GPT-2 files (encoder.json + vocab.bpe, or vocab.json +
        merges.txt), with the "merges" rule those files have in `tokenizers`.

        Token ids are taken from encoder.json; entries that are neither single bytes nor
        merges of vocab.bpe are special tokens (GPT-2: "<|endoftext|>" = 50256).
        """
        ranks, special, merges = formats.read_gpt2_files(encoder_json, vocab_bpe)
        return cls._from_file_parts(encoder_json, ranks, pattern, special, merges,
                                    merge_rule="merges")

    @classmethod
    def from_tiktoken_file(cls, path, pattern="gpt2", special_tokens=None):
        """Load a tiktoken base64 rank file; `special_tokens` is a dict str -> id."""
        ranks = formats.read_tiktoken_file(path)
        return cls._from_file_parts(path, ranks, pattern, special_tokens or {}, None)

    @classmethod
    def _from_file_parts(cls, path, ranks, pattern, special, merges, **options):
        try:
            return cls(ranks, pattern, special, merges, **options)
        except TokenizerError as err:
            raise TokenizerError(f"{path}: {err}") from None

    def save_gpt2_files(self, encoder_json, vocab_bpe):
        """Write encoder.json (all tokens, specials included) and vocab.bpe (the merges)."""
        formats.write_gpt2_files(encoder_json, vocab_bpe, self._ranks, self._special,
                                 self.merge_pairs())

    def save_tiktoken_file(self, path):
        """Write the mergeable ranks in tiktoken's base64 format (special tokens are not
        part of that format: pass `special_tokens` again when loading)."""
        formats.write_tiktoken_file(path, self._ranks)

    def merge_pairs(self):
        """The merges as [(left bytes, right bytes)]: the merge list under the "merges" rule;
        under "ranks" one merge per multi-byte token in id order, tiktoken's canonical split
        (the token's bytes merged with lower ranks only; for a trained tokenizer these are its
        training merges). TokenizerError if a token has no such split."""
        decoder = self._decoder
        if self._merge_rule == "merges":
            return [(decoder[l], decoder[r]) for l, r in self._merges]
        out = []
        for token, i in sorted(self._ranks.items(), key=lambda kv: kv[1]):
            if len(token) == 1:
                continue
            parts = _split_by_rank(token, self._ranks, i)
            if len(parts) != 2:
                raise TokenizerError(f"token {i} ({token!r}) cannot be built by merging two "
                                     "lower-ranked tokens, so it has no merge to write")
            out.append((parts[0], parts[1]))
        return out


def _split_by_rank(token, ranks, max_rank):
    """Merge the bytes of `token` using only ranks below `max_rank`; returns the parts."""
    parts = [token[i:i + 1] for i in range(len(token))]
    while len(parts) > 1:
        best, best_i = max_rank, -1
        for i in range(len(parts) - 1):
            r = ranks.get(parts[i] + parts[i + 1])
            if r is not None and r < best:
                best, best_i = r, i
        if best_i < 0:
            break
        parts[best_i:best_i + 2] = [parts[best_i] + parts[best_i + 1]]
    return parts


def _check_vocab(ranks, special):
    """Raise TokenizerError unless ranks/special form a usable vocabulary."""
    for token in ranks:
        if not isinstance(token, bytes) or not token:
            raise TokenizerError(f"tokens must be non-empty bytes, got {schema.show(token)}")
        if len(token) > schema.MAX_TOKEN_BYTES:
            raise TokenizerError(f"token of {len(token)} bytes, more than {schema.MAX_TOKEN_BYTES}")
    missing = [b for b in range(256) if bytes([b]) not in ranks]
    if missing:
        raise TokenizerError(f"vocabulary lacks {len(missing)} of the 256 byte tokens "
                             f"(first missing byte: {missing[0]})")
    for text in special:
        schema.expect_text("special_tokens", "special token", text)
    schema.check_ids(ranks, special, "vocabulary")


def _check_merges(merges, decoder, ranks):
    """The merges as a list of (left id, right id) tuples, each naming two ordinary tokens whose
    concatenation is a token."""
    out = []
    try:
        merges = list(merges)
    except TypeError:
        raise TokenizerError(f"merges must be a list of (left id, right id), "
                             f"got {schema.show(merges)}") from None
    for k, pair in enumerate(merges):
        if not (isinstance(pair, (tuple, list)) and len(pair) == 2
                and all(isinstance(i, int) and not isinstance(i, bool) for i in pair)):
            raise TokenizerError(f"merge {k}: expected (left id, right id), got {schema.show(pair)}")
        left, right = decoder.get(pair[0]), decoder.get(pair[1])
        if left is None or right is None or left not in ranks or right not in ranks:
            raise TokenizerError(f"merge {k}: {schema.show(pair)} does not name two ordinary tokens")
        if left + right not in ranks:
            raise TokenizerError(f"merge {k}: {schema.show(left + right)} is not a token")
        out.append((pair[0], pair[1]))
    return out
