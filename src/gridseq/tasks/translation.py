"""Translation scores for seq2seq on sentences: sacreBLEU's corpus `bleu` and `chrf` of the detokenised output.

A seq2seq dataset whose target vocabulary is words or subwords (`target_level` "word" or "subword" in its
preprocessing record: sentences, not codes such as ISO dates) is scored as machine translation is: every
decoded target is turned back into text by its vocabulary (`SubwordVocab.decode` is the detokeniser), and
sacreBLEU compares it with the reference *string* (`split.targets`' text, decoded from the target ids):

- `bleu4`: corpus BLEU-4 (sacreBLEU defaults: 13a tokenisation, exponential smoothing; the caption task's
  `BleuCounts`), in [0, 1] like every gridseq metric — sacreBLEU's printed BLEU is 100 × bleu4;
- `chrf`: corpus chrF (character 6-grams, beta 2, sacreBLEU defaults), in [0, 1] (sacreBLEU prints 100 × chrf).

Both come from sufficient statistics that add up over batches (and DDP ranks), so the figure equals one
sacreBLEU `corpus_score` call over the whole split. `bleu4` is then the task's primary metric.
`corpus_scores(hypotheses, references)` is that one call, used by the baselines and benchmarks.
"""

from __future__ import annotations

from torch import Tensor

from gridseq.data.contract import Batch
from gridseq.errors import ConfigError
from gridseq.tasks.caption import BleuCounts
from gridseq.tasks.seq2seq import Seq2SeqMetrics

SENTENCE_LEVELS = ("word", "subword")


def _chrf():
    try:
        from sacrebleu.metrics import CHRF
    except ImportError as e:
        raise ConfigError(
            f"translation metrics (bleu4, chrf) need sacreBLEU, which is not installed ({e}); install it with: "
            f"pip install 'gridseq[text]' (or pip install sacrebleu)."
        ) from None
    return CHRF()


def is_translation(record: dict | None) -> bool:
    """Whether a seq2seq dataset's targets are sentences (word or subword tokens), scored by BLEU and chrF."""
    return (record or {}).get("target_level") in SENTENCE_LEVELS


def corpus_scores(hypotheses: list[str], references: list[str]) -> dict[str, float]:
    """sacreBLEU corpus BLEU-4 and chrF of detokenised `hypotheses` against one reference each, in [0, 1]."""
    chrf = _chrf()  # first: its message names the translation metrics
    bleu = BleuCounts()
    return {"bleu4": bleu.score(bleu.counts(hypotheses, references)),
            "chrf": chrf.corpus_score(hypotheses, [references]).score / 100.0}


class TranslationMetrics(Seq2SeqMetrics):
    """Seq2seq's metrics of freely decoded targets plus corpus `bleu` and `chrf` (module docstring)."""

    def __init__(self, task):
        super().__init__(task)
        from gridseq.data.vocab import Vocab

        self.vocab = Vocab.from_json(task.info.preprocessing["target_vocab"])
        self.chrf = _chrf()
        self.bleu = BleuCounts()

    def update(self, output: Tensor, batch: Batch, loss: Tensor) -> None:
        decoded = self.task.decoded  # the parent's update consumes it
        super().update(output, batch, loss)
        if decoded is None:  # training batches: no free decoding
            return
        hypotheses = [self.vocab.decode(row) for row in decoded.tolist()]
        references = [self.vocab.decode(row) for row in batch.y.tolist()]
        sums = self.bleu.counts(hypotheses, references)
        per_sentence = self.chrf._extract_corpus_statistics(hypotheses, [references])
        sums.update({f"chrf_stat{j}": float(sum(s[j] for s in per_sentence)) for j in range(len(per_sentence[0]))})
        self.add(**sums)

    def finish(self, s: dict[str, float]) -> dict[str, float]:
        out = super().finish(s)
        if "bleu_hyp_len" in s:
            out["bleu4"] = self.bleu.score(s)
            stats = [int(round(s[f"chrf_stat{j}"])) for j in range(sum(k.startswith("chrf_stat") for k in s))]
            out["chrf"] = self.chrf._compute_score_from_stats(stats).score / 100.0
        return out
