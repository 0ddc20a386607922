"""Image captioning (one-to-many): an image → a sequence of words.

Inputs are images `(N, C, H, W)`; targets are `(N, U)` caption word ids, each caption followed by
`<eos>` and padded with `<pad>` (0) — the seq2seq target layout, so training and free decoding are
seq2seq's (`Seq2SeqTask`): teacher-forced cross-entropy, and evaluation decodes greedily (or with a
beam) and scores what a user would get:

- `exact_match`: the decoded caption equals the reference (the primary metric);
- `bleu4`: corpus BLEU-4 of the decoded captions against the references, from sacreBLEU (its
  standard 13a tokenisation and exponential smoothing), as a fraction in [0, 1] (sacreBLEU's score
  / 100). The n-gram counts are summed over batches, so the score is the corpus score, not a mean
  of batch scores;
- `token_accuracy`, `cer` (word error rate here: Levenshtein distance over words / reference
  words) and the teacher-forced `loss`, as for seq2seq.

sacreBLEU is imported only when metrics are made; without it they fail with how to install it.
"""

from __future__ import annotations

from collections import Counter
from typing import ClassVar

from torch import Tensor, nn

from gridseq.data.contract import Batch, DatasetInfo, Split
from gridseq.data.vocab import Vocab
from gridseq.errors import ConfigError, DataError, ShapeError
from gridseq.models.traits import unwrap
from gridseq.tasks.base import register
from gridseq.tasks.seq2seq import Seq2SeqMetrics, Seq2SeqTask, strip, trim_targets

ORDER = 4  # BLEU-4


def sacrebleu_bleu():
    """A sacreBLEU `BLEU` scorer (corpus BLEU-4, 13a tokenisation, exponential smoothing).

    Raises:
        ConfigError: sacreBLEU is not installed.
    """
    try:
        from sacrebleu.metrics import BLEU
    except ImportError as e:
        raise ConfigError(
            f"the caption task's bleu4 metric needs sacreBLEU, which is not installed ({e}); install it with: "
            f"pip install 'gridseq[caption]' (or pip install sacrebleu)."
        ) from None
    return BLEU(max_ngram_order=ORDER)


class BleuCounts:
    """Corpus BLEU from sufficient statistics that add up over batches (and over DDP ranks).

    `counts(hypotheses, references)` gives the n-gram matches and totals (n = 1..4) and the
    hypothesis and reference lengths of some sentences; `score(sums)` turns their sums into
    sacreBLEU's corpus score — the same number as one `corpus_score` call over all the sentences.

    Example:
        >>> b = BleuCounts()
        >>> s = b.counts(["a red circle left of a blue square"], ["a red circle left of a blue square"])
        >>> round(b.score(s), 4)
        1.0
    """

    def __init__(self) -> None:
        self.bleu = sacrebleu_bleu()

    def counts(self, hypotheses: list[str], references: list[str]) -> dict[str, float]:
        stats = self.bleu.corpus_score(hypotheses, [references])
        out = {f"bleu_match{n + 1}": float(c) for n, c in enumerate(stats.counts)}
        out.update({f"bleu_total{n + 1}": float(t) for n, t in enumerate(stats.totals)})
        out.update(bleu_hyp_len=float(stats.sys_len), bleu_ref_len=float(stats.ref_len))
        return out

    def score(self, sums: dict[str, float]) -> float:
        """BLEU-4 in [0, 1] of the summed statistics."""
        correct = [int(round(sums[f"bleu_match{n}"])) for n in range(1, ORDER + 1)]
        total = [int(round(sums[f"bleu_total{n}"])) for n in range(1, ORDER + 1)]
        result = self.bleu.compute_bleu(correct, total, int(round(sums["bleu_hyp_len"])), int(round(sums["bleu_ref_len"])),
                                        smooth_method="exp", max_ngram_order=ORDER)
        return min(result.score / 100.0, 1.0)  # a perfect corpus can come out as 1.0000000000000004


class CaptionMetrics(Seq2SeqMetrics):
    """Seq2seq's metrics of freely decoded captions plus corpus BLEU-4 (`bleu4`)."""

    def __init__(self, task: CaptionTask):
        super().__init__(task)
        self.bleu = BleuCounts()

    def update(self, output: Tensor, batch: Batch, loss: Tensor) -> None:
        decoded = self.task.decoded  # the parent's update consumes it
        super().update(output, batch, loss)
        if decoded is None:  # training batches: no free decoding, no BLEU
            return
        hypotheses = [self.task.text(row) for row in decoded.tolist()]
        references = [self.task.text(row) for row in batch.y.tolist()]
        self.add(**self.bleu.counts(hypotheses, references))

    def finish(self, s: dict[str, float]) -> dict[str, float]:
        out = super().finish(s)
        if "bleu_hyp_len" in s:
            out["bleu4"] = self.bleu.score(s)
        return out


@register
class CaptionTask(Seq2SeqTask):
    """Captioning: teacher-forced training, evaluation by free decoding (exact match, BLEU-4).

    Args:
        info: the dataset's info (`num_classes` = caption vocabulary size; the preprocessing
            record's "target_vocab" turns ids back into words for BLEU).

    Attributes:
        beam: beam width for evaluation decoding (1 = greedy). Default: 1.
        max_length: decoding limit in words; None = the reference length + 8.
    """

    name = "caption"
    topologies = ("one-to-many",)
    record_key = "caption"
    options: ClassVar[dict] = {"beam": 1, "invert": False}
    primary = "exact_match"
    higher_is_better = True

    def __init__(self, info: DatasetInfo | None = None):
        super().__init__(info)
        record = (info.preprocessing or {}) if info is not None else {}
        self.vocab = Vocab.from_json(record["target_vocab"]) if "target_vocab" in record else None

    def text(self, ids: list[int]) -> str:
        """The caption of word ids (up to <eos>), or the ids themselves without a vocabulary."""
        if self.vocab is not None:
            return self.vocab.decode(ids)
        return " ".join(str(i) for i in strip(ids))

    def forward(self, model: nn.Module, batch: Batch) -> Tensor:
        logits = model(batch.x, target=trim_targets(batch.y))
        if not model.training:
            inner = unwrap(model)  # DDP wraps the model; generate lives on the inner one
            limit = self.max_length or batch.y.shape[1] + 8  # room to see overlong captions as errors
            self.decoded = inner.generate(batch.x, beam=self.beam, max_length=limit)
        return logits

    def infer(self, model: nn.Module, batch: Batch, options: dict) -> Tensor:
        """The caption word ids (B, U) the model's `generate` decodes from the images alone."""
        return model.generate(batch.x, beam=options.get("beam", 1))

    def _check_output(self, output: Tensor, batch: Batch) -> None:
        wrong_vocab = self.num_classes is not None and output.dim() == 3 and output.shape[2] != self.num_classes
        y = trim_targets(batch.y)
        if output.dim() != 3 or output.shape[:2] != y.shape[:2] or wrong_vocab:
            v = self.num_classes if self.num_classes is not None else "V"
            raise ShapeError(f"caption expects teacher-forced logits of shape (B, U, {v}) = {(*y.shape, v)} (U: the batch's "
                             f"longest caption), got {tuple(output.shape)}.")

    def metrics(self) -> CaptionMetrics:
        return CaptionMetrics(self)

    def check_split(self, split: Split, name: str) -> None:
        if split.x.dim() != 4 or not split.x.is_floating_point():
            raise DataError(f"caption needs {name} images x of shape (N, C, H, W) float, "
                            f"got {tuple(split.x.shape)} {split.x.dtype}.")
        super().check_split(split, name)

    def baselines(self, split: Split) -> dict[str, dict[str, float]]:
        """`most_common_caption`: the split's most frequent caption, predicted for every image — the best
        any constant output can do (it peeks at the split's own captions, so it is an upper bound on a
        trivial captioner)."""
        if len(split) == 0:
            return {}
        references = [self.text(row) for row in split.y.tolist()]
        guess = Counter(references).most_common(1)[0][0]
        bleu = BleuCounts()
        sums = bleu.counts([guess] * len(references), references)
        exact = sum(r == guess for r in references) / len(references)
        return {"most_common_caption": {"exact_match": exact, "bleu4": bleu.score(sums)}}
