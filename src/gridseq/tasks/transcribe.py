"""Transcription (CTC): a variable-length input → a shorter, unaligned label sequence.

Inputs are sequences `x` (B, T, F) with `lengths` — image columns or audio frames; targets `y` are
(B, U) int64 label ids 1..K-1 padded with 0, where id 0 is CTC's **blank** (so `DatasetInfo.class_names`
starts with "<blank>" and the alphabet follows). No alignment between steps and labels is given: the
model outputs class scores for each of its T' output frames (T' ≤ T when its CNN downsamples time)
and the loss is `torch.nn.functional.ctc_loss`, which sums over every alignment.

Decoding collapses a frame-wise path: repeated labels merge, blanks vanish ("1 1 _ 1 2" → "1 1 2"
needs the blank to keep two 1s). Greedy decoding takes the best label per frame; prefix beam search
(`beam` > 1) keeps the `beam` most probable *label prefixes*, summing the probability of every path
that collapses to the same prefix.

A target of U labels with R adjacent repeats needs at least U + R output frames (a blank between the
repeats). An input too short for its transcript would give an infinite loss; the task raises a
`DataError` naming the item instead (`zero_infinity` stays off, so a real problem is never hidden).

Metrics: `loss` (CTC, per item, averaged over target lengths as torch's "mean"), `cer` (Levenshtein
distance / target labels, the primary metric, lower is better) and `exact_match`.
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gridseq._validation import check_positive_int
from gridseq.data.contract import Batch, DatasetInfo, Split
from gridseq.errors import DataError, ShapeError
from gridseq.models.traits import traits, unwrap
from gridseq.tasks.base import SumMetrics, Task, register
from gridseq.tasks.inputs import InputLimits, check_length
from gridseq.tasks.seq2seq import edit_distance

BLANK = 0


def target_lengths(y: Tensor) -> Tensor:
    """(B,) labels per target row: the non-blank ids (targets are padded with 0 at the end)."""
    return (y != BLANK).sum(1)


def required_frames(y: Tensor) -> Tensor:
    """(B,) the fewest output frames that can emit each target: U labels + R adjacent repeats.

    Example:
        >>> required_frames(torch.tensor([[1, 1, 2, 0], [3, 0, 0, 0]])).tolist()
        [4, 1]
    """
    repeats = ((y[:, 1:] == y[:, :-1]) & (y[:, 1:] != BLANK)).sum(1)
    return target_lengths(y) + repeats


def greedy_decode(log_probs: Tensor, lengths: Tensor | None = None) -> list[list[int]]:
    """Best path: the argmax label per frame, repeats merged, blanks removed, for each item.

    Args:
        log_probs: (B, T, K) scores (log-probabilities or logits: only the argmax matters).
        lengths: (B,) valid frames per item, or None (all T).

    Example:
        >>> scores = torch.eye(3)[[1, 1, 0, 1, 2, 2]].unsqueeze(0)  # frames: 1 1 _ 1 2 2
        >>> greedy_decode(scores)
        [[1, 1, 2]]
    """
    best = log_probs.argmax(-1)  # (B, T)
    keep = best != BLANK
    keep[:, 1:] &= best[:, 1:] != best[:, :-1]  # a label is emitted where it starts, not where it repeats
    if lengths is not None:
        keep &= torch.arange(best.shape[1], device=best.device)[None, :] < lengths.to(best.device)[:, None]
    return [row[mask].tolist() for row, mask in zip(best.cpu(), keep.cpu())]


def _logsumexp(a: float, b: float) -> float:
    if a == -math.inf:
        return b
    if b == -math.inf:
        return a
    m = max(a, b)
    return m + math.log(math.exp(a - m) + math.exp(b - m))


def prefix_beam_search(log_probs: Tensor, beam: int = 8, prune: float = -12.0) -> list[int]:
    """CTC prefix beam search for one item: the most probable label sequence among `beam` prefixes.

    Each prefix keeps two log-probabilities, of the paths that end in a blank and of those that end
    in its last label, so "1 _ 1" (two 1s) and "1 1" (one 1) are told apart.

    Args:
        log_probs: (T, K) log-probabilities of one item's valid frames.
        beam: prefixes kept after each frame. Default: 8.
        prune: labels with log-probability below this at a frame are not tried (speed). Default: -12.

    Example:
        >>> lp = torch.tensor([[0.6, 0.4], [0.6, 0.4]]).log()  # blank 0.6, "1" 0.4 per frame
        >>> greedy_decode(lp[None]), prefix_beam_search(lp)  # "" has p 0.36; "1" has 0.4·0.4+2·0.4·0.6 = 0.64
        ([[]], [1])
    """
    check_positive_int(beam, "beam")
    lp = log_probs.detach().double().cpu().numpy()
    beams: dict[tuple[int, ...], tuple[float, float]] = {(): (0.0, -math.inf)}  # prefix -> (blank end, label end)
    for frame in lp:
        candidates = [k for k in np.flatnonzero(frame >= prune).tolist() if k != BLANK]
        nxt: dict[tuple[int, ...], list[float]] = defaultdict(lambda: [-math.inf, -math.inf])
        for prefix, (p_b, p_nb) in beams.items():
            total = _logsumexp(p_b, p_nb)
            entry = nxt[prefix]  # stay on the prefix: a blank, or the last label repeated (merged)
            entry[0] = _logsumexp(entry[0], total + frame[BLANK])
            if prefix:
                entry[1] = _logsumexp(entry[1], p_nb + frame[prefix[-1]])
            for k in candidates:
                extended = nxt[prefix + (k,)]
                # after a label k, a new k starts only from a path ending in a blank
                source = p_b if prefix and prefix[-1] == k else total
                extended[1] = _logsumexp(extended[1], source + frame[k])
        ranked = sorted(nxt.items(), key=lambda kv: -_logsumexp(*kv[1]))[:beam]
        beams = {prefix: (p[0], p[1]) for prefix, p in ranked}
    return list(max(beams.items(), key=lambda kv: _logsumexp(*kv[1]))[0])


def decode(output: Tensor, lengths: Tensor | None, beam: int = 1) -> list[list[int]]:
    """Label ids per item from model output (B, T', K): greedy with beam=1, else prefix beam search."""
    if beam == 1:
        return greedy_decode(output, lengths)
    log_probs = output.float().log_softmax(-1)
    lengths = lengths.tolist() if lengths is not None else [output.shape[1]] * output.shape[0]
    return [prefix_beam_search(row[:n], beam) for row, n in zip(log_probs, lengths)]


def label_text(ids: list[int], alphabet) -> str:
    """The transcript of label ids, `alphabet` being class_names (index 0 the blank)."""
    return "".join(alphabet[i] for i in ids)


class TranscribeMetrics(SumMetrics):
    """CTC loss, character error rate and exact match of the decoded transcripts."""

    def __init__(self, task: TranscribeTask):
        super().__init__()
        self.task = task

    def update(self, output: Tensor, batch: Batch, loss: Tensor) -> None:
        lengths = self.task.frames(output, batch)
        beam = self.task.beam if self.task.evaluating else 1  # beam search at evaluation only
        decoded = decode(output.detach(), lengths, beam)
        y = batch.y.cpu()
        targets = [row[row != BLANK].tolist() for row in y]
        self.add(loss=loss.detach() * len(batch), items=len(batch),
                 exact=sum(p == t for p, t in zip(decoded, targets)),
                 edits=sum(edit_distance(p, t) for p, t in zip(decoded, targets)),
                 labels=sum(len(t) for t in targets))

    def finish(self, s: dict[str, float]) -> dict[str, float]:
        items = max(s["items"], 1.0)
        return {"loss": s["loss"] / items, "cer": s["edits"] / max(s["labels"], 1.0), "exact_match": s["exact"] / items}


@register
class TranscribeTask(Task):
    """CTC training and decoding for models with one score vector per output frame.

    The model's output is (B, T', K) logits. If the model has `output_lengths(lengths)` (a CNN that
    downsamples time, e.g. "crnn-ctc"), it gives each item's valid frames; otherwise T' must equal T
    and the input lengths are used (e.g. an RNN with `per_step=True`).

    Shape:
        - output: (B, T', K) logits, K = 1 blank + the alphabet.
        - batch.y: (B, U) int64 label ids in [1, K) padded with 0.

    Attributes:
        beam: beam width for evaluation decoding (1 = greedy). Default: 1.

    Example:
        >>> task = TranscribeTask()
        >>> out = torch.zeros(2, 6, 4)  # uniform scores
        >>> float(task.loss(out, Batch(torch.zeros(2, 6, 3), torch.tensor([[1, 2], [3, 0]])))) > 0
        True
    """

    name = "transcribe"
    topologies = ("many-to-many",)
    record_key = "transcript"
    options: ClassVar[dict] = {"beam": 1}
    streams = ("audio",)  # audio runs only: the CLI and server reject image ones (see gridseq.serve.stream)
    primary = "cer"
    higher_is_better = False

    def __init__(self, info: DatasetInfo | None = None):
        super().__init__(info)
        self.beam = 1
        self.evaluating = False
        self._frames: Tensor | None = None  # output lengths of the last forward pass

    def forward(self, model: nn.Module, batch: Batch) -> Tensor:
        output = model(batch.x) if batch.lengths is None else model(batch.x, batch.lengths)
        self.evaluating = not model.training
        lengths = batch.lengths if batch.lengths is not None else torch.full((len(batch),), batch.x.shape[1], dtype=torch.int64)
        if traits(model).output_lengths:
            self._frames = unwrap(model).output_lengths(lengths.cpu())
        else:
            self._frames = lengths.cpu()
        self._frames_for = output.shape[:2]
        return output

    def frames(self, output: Tensor, batch: Batch) -> Tensor:
        """(B,) valid output frames of each item of `batch` (CPU int64)."""
        if self._frames is not None and getattr(self, "_frames_for", None) == output.shape[:2]:
            frames = self._frames
        elif batch.lengths is not None and output.shape[1] == batch.x.shape[1]:
            frames = batch.lengths.cpu()
        else:
            frames = torch.full((output.shape[0],), output.shape[1], dtype=torch.int64)
        if int(frames.max()) > output.shape[1]:
            raise ShapeError(f"the model reports up to {int(frames.max())} valid output frames but its output has "
                             f"T' = {output.shape[1]}; its output_lengths() does not match its forward().")
        return frames

    def _check_output(self, output: Tensor, batch: Batch) -> None:
        if output.dim() != 3 or output.shape[0] != len(batch) or (self.num_classes is not None and output.shape[2] != self.num_classes):
            k = self.num_classes if self.num_classes is not None else "K"
            raise ShapeError(f"transcribe expects per-frame logits of shape (B, T', {k}) with B = {len(batch)}, got "
                             f"{tuple(output.shape)}; use a model that scores every frame (e.g. crnn-ctc).")

    def check_frames(self, frames: Tensor, batch: Batch) -> None:
        """DataError if some item's output is too short for its transcript (its CTC loss would be infinite)."""
        need = required_frames(batch.y.cpu())
        short = torch.nonzero(frames < need).flatten()
        if len(short):
            i = int(short[0])
            steps = int(batch.lengths[i]) if batch.lengths is not None else batch.x.shape[1]
            raise DataError(
                f"{len(short)} item(s) in this batch are too short for their transcripts, e.g. an input of {steps} "
                f"steps gives {int(frames[i])} output frames after the model's time downsampling, but its "
                f"transcript of {int(target_lengths(batch.y[i:i + 1].cpu()))} labels needs at least {int(need[i])} "
                f"(one per label, plus a blank between repeated labels). Use longer inputs (e.g. a wider image or "
                f"slower audio), drop such items, or a model that downsamples time less."
            )

    def loss(self, output: Tensor, batch: Batch) -> Tensor:
        self._check_output(output, batch)
        frames = self.frames(output, batch)
        self.check_frames(frames, batch)
        log_probs = output.float().log_softmax(-1).transpose(0, 1)  # (T', B, K): ctc_loss is time first
        y = batch.y
        return F.ctc_loss(log_probs, y, frames, target_lengths(y).cpu(), blank=BLANK, reduction="mean", zero_infinity=False)

    def metrics(self) -> TranscribeMetrics:
        return TranscribeMetrics(self)

    def predict(self, output: Tensor, lengths: Tensor | None = None) -> list[list[int]]:
        """Label ids per item (greedy, or prefix beam search with `self.beam` > 1)."""
        return decode(output, lengths, self.beam)

    def prepare(self, items: list, lengths=None, *, limits: InputLimits | None = None, invert: bool = False) -> Batch:
        """(H, W) image or (S,) waveform arrays -> image columns or log-mel frames (`prepare_transcribe`)."""
        from gridseq.data.readers.transcripts import prepare_transcribe

        return check_length(prepare_transcribe(items, self.info), limits or InputLimits(), "steps (columns or frames)")

    def read_file(self, path, *, invert: bool = False) -> Batch:
        """One image or WAV file -> its columns or log-mel frames."""
        from gridseq.data.readers.transcripts import prepare_transcribe

        return prepare_transcribe([path], self.info, files=True)

    def decode(self, output: Tensor, batch: Batch, options: dict, model: nn.Module | None = None) -> dict[str, list]:
        """Each item's transcript; its CTC frames come from `model.output_lengths` of this very batch."""
        frames = unwrap(model).output_lengths(batch.lengths) if model is not None and traits(model).output_lengths else batch.lengths
        return {"predictions": [label_text(row, self.info.class_names) for row in decode(output, frames, options.get("beam", 1))]}

    def check_split(self, split: Split, name: str) -> None:
        y = split.y
        if y.dtype != torch.int64 or y.dim() != 2:
            raise DataError(f"transcribe needs {name} targets y of shape (N, U) int64 label ids padded with 0, got {tuple(y.shape)} {y.dtype}.")
        if len(y) and (int(y.min()) < 0 or (self.num_classes is not None and int(y.max()) >= self.num_classes)):
            raise DataError(f"{name} label ids must lie in [1, {self.num_classes}) (0 is padding and the CTC blank), "
                            f"got values from {int(y.min())} to {int(y.max())}.")
        if len(y) and y.shape[1] > 1 and bool(((y[:, :-1] == BLANK) & (y[:, 1:] != BLANK)).any()):
            raise DataError(f"{name} targets hold a 0 (the blank) between labels; pad each target with 0 at its end only.")
        if split.lengths is not None and len(y) and bool((split.lengths < target_lengths(y)).any()):
            i = int(torch.nonzero(split.lengths < target_lengths(y)).flatten()[0])
            raise DataError(f"{name} item {i} has {int(split.lengths[i])} input steps but a transcript of "
                            f"{int(target_lengths(y[i:i + 1]))} labels; CTC needs at least one step per label.")

    def configure(self, *, beam: int | None = None) -> TranscribeTask:
        """Set evaluation decoding: beam width (1 = greedy)."""
        if beam is not None:
            self.beam = check_positive_int(beam, "beam")
        return self

    def describe(self) -> dict:
        return {**super().describe(), "blank": BLANK}
