"""An interpolated Kneser-Ney character n-gram language model (Chen & Goodman 1998), the count-based baseline
that gridseq's character language models are measured against (benchmarks/text_baselines.py, real_text.py).

Counts are plain `collections.Counter`s of substrings of the training text, built in C by Counter's update
(fitted in 37 s on the Bible's 3.17M training characters at order 5, on 2 shared cores). Libraries checked
first: KenLM's PyPI package (kenlm 0.3.0, a source distribution) only queries models, which its `lmplz`
binary — not on PyPI — estimates; NLTK's `KneserNeyInterpolated` is too slow at millions of characters
(the issue's assessment, not re-measured here).

    >>> lm = KneserNey("abracadabra", order=3)
    >>> round(sum(lm.prob("ab", c) for c in lm.vocab), 6)
    1.0
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict


class KneserNey:
    """Interpolated Kneser-Ney character n-gram model (Chen & Goodman 1998, one discount per order).

    P(w | h) = max(c(h w) - D, 0) / c(h) + D · N1+(h •) / c(h) · P(w | h[1:]); the highest order counts
    occurrences, lower orders count distinct left extensions (continuation counts); an unseen context
    falls through to the shorter one.
    """

    def __init__(self, text: str, order: int = 5):
        self.order = order
        self.vocab = set(text) | {"<unk>"}
        raw = [Counter(text[i:i + k] for i in range(len(text) - k + 1)) for k in range(1, order + 1)]
        self.counts = []  # per length k (1..order): k-gram -> (continuation) count
        for k in range(1, order + 1):
            if k == order:
                self.counts.append(raw[k - 1])
            else:
                cont = Counter(g[1:] for g in raw[k])  # distinct left extensions of each k-gram
                self.counts.append(cont)
        self.discount, self.total, self.types = [], [], []
        for table in self.counts:
            n = Counter(table.values())
            self.discount.append(n[1] / (n[1] + 2 * n[2]) if n[1] else 0.5)
            total, types = defaultdict(int), defaultdict(int)
            for gram, c in table.items():
                total[gram[:-1]] += c
                types[gram[:-1]] += 1
            self.total.append(total)
            self.types.append(types)

    def prob(self, context: str, w: str) -> float:
        p = 1.0 / len(self.vocab)  # uniform floor: every character, seen or not, keeps some mass
        for k in range(1, self.order + 1):  # from unigram (empty context) up
            if k - 1 > len(context):
                break
            h = context[len(context) - (k - 1):] if k > 1 else ""
            total = self.total[k - 1].get(h, 0)
            if total == 0:
                continue  # unseen context: keep the shorter context's estimate
            d = self.discount[k - 1]
            c = self.counts[k - 1].get(h + w, 0)
            p = max(c - d, 0.0) / total + d * self.types[k - 1][h] / total * p
        return p

    def bits_per_char(self, text: str, start: int = 1) -> float:
        bits = 0.0
        for i in range(start, len(text)):
            bits -= math.log2(self.prob(text[max(0, i - self.order + 1):i], text[i]))
        return bits / (len(text) - start)
