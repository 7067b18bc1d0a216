"""Byte-level BPE tokenizer (GPT-2 / GPT-4 style) with tiktoken's encoding semantics.

The vocabulary is a map `ranks: bytes -> id` that holds all 256 single bytes, plus special
tokens (str -> id) outside it. Encoding splits text into chunks with the pattern, then merges
the bytes of each chunk by rank, lowest first, as tiktoken does: the rank of a pair of
adjacent parts is the id of their concatenation, and a chunk that is itself a token is
emitted whole. Ids of trained tokenizers are: byte b -> b, merges -> 256, 257, ... in
training order, then the special tokens.
"""

import heapq
import operator
import re
import warnings
from collections import Counter
from itertools import repeat

from tqdm import tqdm

from nanoframe.tokenizer import formats
from nanoframe.tokenizer.pretokenize import Pretokenizer

ENDOFTEXT = "<|endoftext|>"
_SURROGATE = re.compile("[\ud800-\udfff]")
_CACHE_MAX = 1 << 18  # chunk-cache entries before the cache is cleared
_CACHE_CHUNK_MAX = 128  # longer chunks are not cached
_LONG_CHUNK = 256  # chunks with more bytes use the O(n log n) heap merge
_NO_RANK = 1 << 62  # rank of a pair that is not a token
_BYTE_TOKENS = [bytes([b]) for b in range(256)]


def fix_surrogates(text):
    """Replace surrogates as tiktoken does: pairs become their character, lone ones U+FFFD."""
    if _SURROGATE.search(text):
        return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return text


def _merge_small(data, ranks):
    """tiktoken's byte-pair merge: repeatedly merge the lowest-ranked adjacent pair.

    O(n^2) in C-speed list scans; best for the short chunks of ordinary text.
    """
    parts = list(map(_BYTE_TOKENS.__getitem__, data))
    get = ranks.get
    pair_ranks = list(map(get, map(operator.add, parts, parts[1:]), repeat(_NO_RANK)))
    while pair_ranks:
        best = min(pair_ranks)
        if best == _NO_RANK:
            break
        i = pair_ranks.index(best)  # leftmost among equal ranks, like tiktoken
        parts[i:i + 2] = [parts[i] + parts[i + 1]]
        del pair_ranks[i]
        if i > 0:
            pair_ranks[i - 1] = get(parts[i - 1] + parts[i], _NO_RANK)
        if i < len(pair_ranks):
            pair_ranks[i] = get(parts[i] + parts[i + 1], _NO_RANK)
    return list(map(ranks.__getitem__, parts))


def _merge_long(data, ranks):
    """Same result as `_merge_small` in O(n log n): a heap of (rank, start) over a linked list.

    Parts are identified by their start offset; nxt[s] is the start of the next part (n at
    the end), prv[s] the previous one. Heap entries are checked when popped and skipped if
    the pair at that start no longer has that rank.
    """
    n = len(data)
    nxt = list(range(1, n + 1))
    prv = list(range(-1, n - 1))
    alive = [True] * n
    get = ranks.get
    heap = [(r, i) for i in range(n - 1) if (r := get(data[i:i + 2])) is not None]
    heapq.heapify(heap)
    while heap:
        r, i = heapq.heappop(heap)
        if not alive[i] or nxt[i] >= n:
            continue
        j = nxt[i]
        if get(data[i:nxt[j]]) != r:
            continue  # stale entry
        alive[j] = False
        k = nxt[i] = nxt[j]
        if k < n:
            prv[k] = i
            if (rr := get(data[i:nxt[k]])) is not None:
                heapq.heappush(heap, (rr, i))
        p = prv[i]
        if p >= 0 and (rr := get(data[p:k])) is not None:
            heapq.heappush(heap, (rr, p))
    out, i = [], 0
    while i < n:
        out.append(ranks[data[i:nxt[i]]])
        i = nxt[i]
    return out


def encode_chunk(data, ranks):
    """Token ids of one chunk (bytes) under `ranks`, exactly as tiktoken encodes a piece."""
    token = ranks.get(data)
    if token is not None:
        return [token]
    return _merge_small(data, ranks) if len(data) <= _LONG_CHUNK else _merge_long(data, ranks)


class BPETokenizer:
    """Byte-level BPE tokenizer: train, encode, decode, save and load.

    Build one with `BPETokenizer().train(...)`, `BPETokenizer.load(path)`,
    `BPETokenizer.from_gpt2_files(...)` or `BPETokenizer.from_tiktoken_file(...)`.
    A new tokenizer holds only the 256 byte tokens (byte b has id b).

    Args:
        ranks: dict bytes -> id of the mergeable tokens; must contain all 256 single bytes.
        pattern: "gpt2", "gpt4" or a regex in tiktoken syntax used to split text.
        special_tokens: dict str -> id, ids distinct from those in `ranks`.
        merges: optional dict merged id -> (left id, right id), how each multi-byte token
            was built; kept for GPT-2 export (derived from the ranks when absent).
    """

    def __init__(self, ranks=None, pattern="gpt2", special_tokens=None, merges=None):
        ranks = {bytes([b]): b for b in range(256)} if ranks is None else dict(ranks)
        special_tokens = dict(special_tokens or {})
        _check_vocab(ranks, special_tokens)
        self._ranks = ranks
        self._special = special_tokens
        self._merges = dict(merges) if merges is not None else None
        self._decoder = {i: b for b, i in ranks.items()}
        self._decoder.update((i, s.encode("utf-8")) for s, i in special_tokens.items())
        self._vocab_size = max(self._decoder) + 1
        self._pretok = Pretokenizer(pattern)
        self._cache = {}
        self._special_regex_cache = {}

    # ---- properties -------------------------------------------------------------------
    @property
    def pattern(self):
        """The split regex, in tiktoken syntax (usable as tiktoken's `pat_str`)."""
        return self._pretok.pattern

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
                f"special_tokens={len(self._special)}, pattern={self.pattern!r})")

    # ---- training ---------------------------------------------------------------------
    def train(self, text, vocab_size, pattern="gpt2", special_tokens=(), min_frequency=1,
              show_progress=True):
        """Learn merges from `text` (a str or an iterable of str) until `vocab_size` tokens.

        Replaces the current vocabulary. `vocab_size` counts the 256 byte tokens, the merges
        and `special_tokens` (a sequence of str, given the last ids; their text is cut out of
        the training data). Pairs seen fewer than `min_frequency` times are not merged, so
        the vocabulary can end up smaller (a warning says so).

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
        pretok = Pretokenizer(pattern)
        words, freqs = _count_chunks(text, pretok, special_tokens)
        n_merges = vocab_size - 256 - len(special_tokens)
        ranks, merges = _learn_merges(words, freqs, n_merges, min_frequency, show_progress)
        next_id = 256 + len(merges)
        if len(merges) < n_merges:
            warnings.warn(f"training stopped after {len(merges)} of {n_merges} merges "
                          f"(no pair occurs at least min_frequency={min_frequency} times)")
        special = {s: next_id + k for k, s in enumerate(special_tokens)}
        self.__init__(ranks, pretok.pattern, special, merges)
        return self

    # ---- encoding ---------------------------------------------------------------------
    def encode_ordinary(self, text):
        """Encode `text` ignoring special tokens (their text is encoded as ordinary text)."""
        return self._encode_ordinary(fix_surrogates(text))

    def _encode_ordinary(self, text):
        cache = self._cache
        get = cache.get
        ranks = self._ranks
        out = []
        extend = out.extend
        for chunk in self._pretok.split(text):
            ids = get(chunk)
            if ids is None:
                ids = encode_chunk(chunk.encode("utf-8"), ranks)
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
        if regex is None:  # longest first, so a special that prefixes another loses
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
        """Write the tokenizer as readable JSON (tokens in GPT-2's byte-to-unicode spelling)."""
        formats.write_nanoframe_file(path, self._ranks, self.pattern, self._special,
                                     self._merges)

    @classmethod
    def load(cls, path):
        """Read a file written by `save`; a corrupt file raises ValueError naming it."""
        ranks, pattern, special, merges = formats.read_nanoframe_file(path)
        return cls._from_file_parts(path, ranks, pattern, special, merges)

    @classmethod
    def from_gpt2_files(cls, encoder_json, vocab_bpe, pattern="gpt2"):
        """Load OpenAI / Hugging Face GPT-2 files (encoder.json, vocab.bpe).

        Token ids are taken from encoder.json; entries that are neither single bytes nor
        merges of vocab.bpe are special tokens (GPT-2: "<|endoftext|>" = 50256).
        """
        ranks, special, merges = formats.read_gpt2_files(encoder_json, vocab_bpe)
        return cls._from_file_parts(encoder_json, ranks, pattern, special, merges)

    @classmethod
    def from_tiktoken_file(cls, path, pattern="gpt2", special_tokens=None):
        """Load a tiktoken base64 rank file; `special_tokens` is a dict str -> id."""
        ranks = formats.read_tiktoken_file(path)
        return cls._from_file_parts(path, ranks, pattern, special_tokens or {}, None)

    @classmethod
    def _from_file_parts(cls, path, ranks, pattern, special, merges):
        try:
            return cls(ranks, pattern, special, merges)
        except ValueError as err:
            raise ValueError(f"{path}: {err}") from None

    def save_gpt2_files(self, encoder_json, vocab_bpe):
        """Write encoder.json (all tokens, specials included) and vocab.bpe (the merges)."""
        formats.write_gpt2_files(encoder_json, vocab_bpe, self._ranks, self._special,
                                 self._merge_list())

    def save_tiktoken_file(self, path):
        """Write the mergeable ranks in tiktoken's base64 format (special tokens are not
        part of that format: pass `special_tokens` again when loading)."""
        formats.write_tiktoken_file(path, self._ranks)

    def _merge_list(self):
        """[(left bytes, right bytes)] for every multi-byte token, in id order."""
        out = []
        for token, i in sorted(self._ranks.items(), key=lambda kv: kv[1]):
            if len(token) == 1:
                continue
            if self._merges is not None and i in self._merges:
                left, right = (self._decoder[j] for j in self._merges[i])
            else:  # tiktoken's canonical split: merge the token's bytes with lower ranks only
                parts = _split_by_rank(token, self._ranks, i)
                if len(parts) != 2:
                    raise ValueError(f"token {i} ({token!r}) cannot be built by merging two "
                                     "lower-ranked tokens, so it has no GPT-2 merge")
                left, right = parts
            out.append((left, right))
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
    """Raise ValueError unless ranks/special form a usable vocabulary."""
    missing = [b for b in range(256) if bytes([b]) not in ranks]
    if missing:
        raise ValueError(f"vocabulary lacks {len(missing)} of the 256 byte tokens "
                         f"(first missing byte: {missing[0]})")
    ids = list(ranks.values()) + list(special.values())
    if not all(isinstance(i, int) and i >= 0 for i in ids):
        raise ValueError("token ids must be non-negative integers")
    if len(set(ids)) != len(ids):
        raise ValueError("token ids are not unique")
    if not all(isinstance(s, str) and s for s in special):
        raise ValueError("special tokens must be non-empty strings")


def _count_chunks(text, pretok, special_tokens):
    """Distinct chunks of the corpus as lists of byte values, with their counts."""
    texts = [text] if isinstance(text, str) else text
    splitter = re.compile("|".join(map(re.escape, special_tokens))) if special_tokens else None
    counts = Counter()
    for t in texts:
        t = fix_surrogates(t)
        for segment in splitter.split(t) if splitter else (t,):
            counts.update(pretok.split(segment))
    words = [list(chunk.encode("utf-8")) for chunk in counts]
    return words, list(counts.values())


def _learn_merges(words, freqs, n_merges, min_frequency, show_progress):
    """The BPE training loop. Returns (ranks, merges {new id: (left, right)})."""
    vocab = [bytes([b]) for b in range(256)]
    ranks = {t: i for i, t in enumerate(vocab)}
    merges = {}
    # pair -> total count, pair -> indices of words that (may) contain it
    counts, where = {}, {}
    for wi, w in enumerate(words):
        f = freqs[wi]
        for pair in zip(w, w[1:]):
            counts[pair] = counts.get(pair, 0) + f
            s = where.get(pair)
            if s is None:
                where[pair] = {wi}
            else:
                s.add(wi)
    heap = [(-c, pair) for pair, c in counts.items()]
    heapq.heapify(heap)
    bar = tqdm(total=n_merges, desc="BPE merges", unit="merge", disable=not show_progress)
    while len(merges) < n_merges and heap:
        negc, pair = heapq.heappop(heap)
        if counts.get(pair) != -negc:
            continue  # stale heap entry
        if -negc < min_frequency:
            break
        a, b = pair
        token = vocab[a] + vocab[b]
        new = ranks.get(token)
        if new is None:  # a genuinely new token (else reuse the existing id)
            new = len(vocab)
            vocab.append(token)
            ranks[token] = new
            merges[new] = pair
            bar.update(1)
        delta = _apply_merge(words, freqs, where, where.pop(pair), a, b, new)
        del counts[pair]
        for q, d in delta.items():
            if d and q != pair:
                c = counts.get(q, 0) + d
                if c > 0:
                    counts[q] = c
                    heapq.heappush(heap, (-c, q))
                else:
                    counts.pop(q, None)
    bar.close()
    return ranks, merges


def _apply_merge(words, freqs, where, indices, a, b, new):
    """Replace (a, b) by `new` in the given words; return the pair-count changes.

    Left neighbours are read from the output so far (already merged), right neighbours from
    the input, which makes runs like a b a b -> X X come out right.
    """
    delta = {}
    for wi in indices:
        w = words[wi]
        if a not in w:
            continue
        f = freqs[wi]
        out = []
        i, n = 0, len(w)
        while i < n:
            x = w[i]
            if x == a and i + 1 < n and w[i + 1] == b:
                if out:
                    left = out[-1]
                    q = (left, a)
                    delta[q] = delta.get(q, 0) - f
                    q = (left, new)
                    delta[q] = delta.get(q, 0) + f
                    where.setdefault(q, set()).add(wi)
                if i + 2 < n:
                    right = w[i + 2]
                    q = (b, right)
                    delta[q] = delta.get(q, 0) - f
                    q = (new, right)
                    delta[q] = delta.get(q, 0) + f
                    where.setdefault(q, set()).add(wi)
                out.append(new)
                i += 2
            else:
                out.append(x)
                i += 1
        words[wi] = out
    return delta
