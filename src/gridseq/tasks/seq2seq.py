"""Sequence to sequence (many-to-many, encoder-decoder): a source token sequence → a target sequence.

Targets `y` are `(N, U)` target-vocabulary ids, each target followed by `<eos>` and padded with
`<pad>` (0). Training is teacher-forced cross-entropy over the non-pad target tokens (the model's
teacher-forcing ratio decides what it feeds back). Evaluation also **decodes freely** — greedy, or beam
search with `beam` > 1 — because that is what a user gets, and scores the decoded sequences:

- `exact_match`: the decoded sequence equals the target (the primary metric);
- `token_accuracy`: decoded token i equals target token i, over target tokens (`<eos>` included);
- `cer`: character (token) error rate — Levenshtein distance / target length, summed over items;
- `loss`: the teacher-forced cross-entropy per target token.

Targets that are sentences (a "word" or "subword" target vocabulary: translation) are also scored with
sacreBLEU's corpus `bleu4` and `chrf` of the detokenised output, and `bleu4` becomes the primary metric
(gridseq.tasks.translation).
"""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gridseq._validation import check_positive_int
from gridseq.data.contract import Batch, DatasetInfo, Split
from gridseq.data.vocab import EOS, PAD
from gridseq.errors import DataError, ShapeError
from gridseq.models.traits import unwrap
from gridseq.tasks.base import SumMetrics, Task, register


def edit_distance(a: list[int], b: list[int]) -> int:
    """Levenshtein distance between two token lists (insertions, deletions, substitutions cost 1)."""
    previous = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        current = [i]
        for j, y in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (x != y)))
        previous = current
    return previous[-1]


def trim_targets(y: Tensor) -> Tensor:
    """`y` (B, U) without its trailing all-`<pad>` columns: a split pads every target to its longest, so a
    batch of short targets would otherwise be teacher-forced (and its logits formed) over all U steps.
    Targets are left-aligned (tokens, `<eos>`, then padding), so nothing but padding is cut."""
    filled = (y != PAD).any(0).nonzero()
    return y[:, : int(filled[-1]) + 1] if len(filled) else y[:, :1]


def strip(ids: list[int]) -> list[int]:
    """Token ids up to (not including) the first `<eos>`, without padding."""
    out = []
    for i in ids:
        if i == EOS:
            break
        if i != PAD:
            out.append(i)
    return out


class Seq2SeqMetrics(SumMetrics):
    """Teacher-forced loss plus exact match, token accuracy and CER of freely decoded sequences."""

    def __init__(self, task: Seq2SeqTask):
        super().__init__()
        self.task = task

    def update(self, output: Tensor, batch: Batch, loss: Tensor) -> None:
        target = batch.y
        tokens = (target != PAD).sum()
        self.add(loss=loss * tokens, tokens=tokens)
        decoded = self.task.decoded
        if decoded is None:  # training batches: teacher-forced argmax only
            return
        self.task.decoded = None
        width = max(decoded.shape[1], target.shape[1])
        pred = F.pad(decoded, (0, width - decoded.shape[1]), value=PAD)
        true = F.pad(target, (0, width - target.shape[1]), value=PAD)
        scored = true != PAD
        pairs = [(strip(p), strip(t)) for p, t in zip(pred.tolist(), true.tolist())]
        self.add(token_right=((pred == true) & scored).sum(), target_tokens=scored.sum(), items=len(batch),
                 exact=sum(p == t for p, t in pairs), edits=sum(edit_distance(p, t) for p, t in pairs),
                 chars=sum(len(t) for _, t in pairs))

    def finish(self, s: dict[str, float]) -> dict[str, float]:
        out = {"loss": s["loss"] / max(s["tokens"], 1.0)}
        if "items" in s:
            out.update(exact_match=s["exact"] / max(s["items"], 1.0), token_accuracy=s["token_right"] / max(s["target_tokens"], 1.0),
                       cer=s["edits"] / max(s["chars"], 1.0))
        return out


@register
class Seq2SeqTask(Task):
    """Encoder-decoder training and evaluation by free decoding.

    Args:
        info: the dataset's info (`num_classes` = target vocabulary size).

    Attributes:
        beam: beam width for evaluation decoding (1 = greedy). Default: 1.
        max_length: decoding limit in target tokens; None = the model's own limit.
    """

    name = "seq2seq"
    smooths_labels = True
    topologies = ("encoder-decoder",)
    record_key = "output"
    options: ClassVar[dict] = {"beam": 1}
    primary = "exact_match"
    higher_is_better = True

    def __init__(self, info: DatasetInfo | None = None):
        super().__init__(info)
        self.beam = 1
        self.max_length: int | None = None
        self.decoded: Tensor | None = None  # (B, U') ids decoded by the last evaluation forward
        if self.translation:
            self.primary = "bleu4"  # sentences: exact match is ~0 and says little (gridseq.tasks.translation)

    @property
    def translation(self) -> bool:
        """Whether the targets are sentences (word or subword tokens), scored with BLEU and chrF too."""
        from gridseq.tasks.translation import is_translation  # here: it imports this module

        return self.info is not None and type(self).metrics is Seq2SeqTask.metrics and is_translation(self.info.preprocessing)

    def forward(self, model: nn.Module, batch: Batch) -> Tensor:
        logits = model(batch.x, batch.lengths, target=trim_targets(batch.y))
        if not model.training:
            inner = unwrap(model)
            limit = self.max_length or batch.y.shape[1] + 8  # room to see overlong outputs as errors
            self.decoded = inner.generate(batch.x, batch.lengths, beam=self.beam, max_length=limit)
        return logits

    def infer(self, model: nn.Module, batch: Batch, options: dict) -> Tensor:
        """The target ids (B, U) the model's `generate` decodes (greedy, or beam search with `options["beam"]`)."""
        return model.generate(batch.x, batch.lengths, beam=options.get("beam", 1))

    def _check_output(self, output: Tensor, batch: Batch) -> None:
        y = trim_targets(batch.y)
        if output.dim() != 3 or output.shape[:2] != y.shape[:2] or (self.num_classes is not None and output.shape[2] != self.num_classes):
            v = self.num_classes if self.num_classes is not None else "V"
            raise ShapeError(f"seq2seq expects teacher-forced logits of shape (B, U, {v}) = {(*y.shape, v)} (U: the batch's "
                             f"longest target), got {tuple(output.shape)}.")

    def loss(self, output: Tensor, batch: Batch, *, label_smoothing: float = 0.0) -> Tensor:
        self._check_output(output, batch)
        return F.cross_entropy(output.flatten(0, 1), trim_targets(batch.y).flatten(), ignore_index=PAD,
                               label_smoothing=label_smoothing)

    def metrics(self) -> Seq2SeqMetrics:
        if self.translation:
            from gridseq.tasks.translation import TranslationMetrics

            return TranslationMetrics(self)
        return Seq2SeqMetrics(self)

    def decode(self, output: Tensor, batch: Batch, options: dict, model=None) -> dict[str, list]:
        """Each item's decoded text from `output`, the (B, U) target ids the model's `generate` returned."""
        from gridseq.data.vocab import Vocab

        vocab = Vocab.from_json(self.info.preprocessing["target_vocab"])
        return {"predictions": [vocab.decode(row) for row in output.tolist()]}

    def predict(self, output: Tensor) -> Tensor:
        """Token ids (B, U) of teacher-forced logits; for real outputs use the model's `generate`."""
        return output.argmax(dim=-1)

    def check_split(self, split: Split, name: str) -> None:
        y = split.y
        if y.dtype != torch.int64 or y.dim() != 2:
            raise DataError(f"seq2seq needs {name} targets y of shape (N, U) int64 target-token ids padded with 0, got {tuple(y.shape)} {y.dtype}.")
        if len(y) and bool(((y == EOS).sum(1) != 1).any()):
            raise DataError(f"every {name} target must hold exactly one <eos> (id {EOS}) after its tokens; encode targets with eos=True.")
        if self.num_classes is not None and len(y) and int(y.max()) >= self.num_classes:
            raise DataError(f"{name} target ids reach {int(y.max())}, beyond the target vocabulary of {self.num_classes}.")

    def configure(self, *, beam: int | None = None, max_length: int | None = None) -> Seq2SeqTask:
        """Set evaluation decoding: beam width and length limit."""
        if beam is not None:
            self.beam = check_positive_int(beam, "beam")
        if max_length is not None:
            self.max_length = check_positive_int(max_length, "max_length")
        return self
