"""BPE training: count the chunks of a corpus once, then merge the most frequent pair until the
vocabulary is full, updating pair counts only in the chunks a merge touches."""

import heapq
import re
from collections import Counter

from tqdm import tqdm

from nanoframe.tokenizer.normalize import fix_surrogates


def count_chunks(text, pretok, special_tokens):
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


def learn_merges(words, freqs, n_merges, min_frequency, show_progress):
    """The BPE training loop. Returns (ranks, merges [(left id, right id)] in id order from 256)."""
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
    return ranks, [merges[i] for i in sorted(merges)]


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
