"""Language modelling (many-to-many, synchronous): predict the next token at every step.

The data is one long text cut into consecutive chunks (`x` (N, T) token ids, `y` the same shifted by
one). Training is **truncated backpropagation through time**: `sampler` lays the chunks out as parallel
streams (`StreamSampler`), so row b of every batch continues row b of the previous one; the task
carries the model's hidden state from batch to batch and detaches it, so gradients flow back at most
T steps while the state remembers further. The state is reset at the start of every epoch and every
evaluation (`reset`), and whenever the batch size changes.

Metrics: `loss` (mean cross-entropy per predicted token, nats), `perplexity` = exp(loss),
`bits_per_char` = loss / ln 2 (character vocabularies; the primary metric there, lower is better) and
`accuracy` of the most likely next token. Word-level models use `perplexity` as the primary metric.
"""

from __future__ import annotations

import inspect
import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gridseq.data.contract import Batch, DatasetInfo, Split
from gridseq.data.samplers import StreamSampler
from gridseq.errors import ConfigError, DataError, ShapeError
from gridseq.tasks.base import SumMetrics, Task, register
from gridseq.tasks.tag import IGNORE, aligned_targets

MIN_EVAL_STEPS = 16  # evaluation streams hold at least this many chunks: a fresh state costs context


def detach_state(state):
    """A recurrent state (tensor or tuple of tensors) cut from the graph of the chunk that made it."""
    if state is None:
        return None
    return tuple(s.detach() for s in state) if isinstance(state, tuple) else state.detach()


def _state_batch(state) -> int:
    return (state[0] if isinstance(state, tuple) else state).shape[1]


class LMMetrics(SumMetrics):
    """Cross-entropy per predicted token, and next-token accuracy."""

    def update(self, output: Tensor, batch: Batch, loss: Tensor) -> None:
        y = aligned_targets(output, batch.y)
        scored = y != IGNORE
        tokens = scored.sum()
        self.add(loss=loss * tokens, tokens=tokens, correct=((output.detach().argmax(-1) == y) & scored).sum())

    def finish(self, s: dict[str, float]) -> dict[str, float]:
        loss = s["loss"] / max(s["tokens"], 1.0)
        return {"loss": loss, "perplexity": math.exp(min(loss, 700.0)), "bits_per_char": loss / math.log(2),
                "accuracy": s["correct"] / max(s["tokens"], 1.0)}


@register
class LMTask(Task):
    """Next-token prediction with the hidden state carried across consecutive chunks.

    Shape:
        - output: (B, T, V) logits; the model must accept `state=` and `return_state=True`
          (gridseq's `rnn`/`lstm`/`gru` with `per_step=True` do).
        - batch.x, batch.y: (B, T) int64 token ids; y[t] is the token after x[t].
    """

    name = "lm"
    topologies = ("many-to-many",)
    primary = "bits_per_char"
    higher_is_better = False

    def __init__(self, info: DatasetInfo | None = None):
        super().__init__(info)
        level = ((info.preprocessing or {}).get("vocab") or {}).get("level", "char") if info is not None else "char"
        if level != "char":
            self.primary = "perplexity"  # bits per *character* would be misread on words
        self.state = None
        self._stateful: nn.Module | None = None  # the model last checked to accept state=

    def reset(self) -> None:
        self.state = None
        self._stateful: nn.Module | None = None  # the model last checked to accept state=

    def sampler(self, n: int, batch_size: int, lengths: Tensor | None, *, seed: int, rank: int = 0, world_size: int = 1):
        return StreamSampler(n, batch_size, rank=rank, world_size=world_size)

    def eval_order(self, split: Split, batch_size: int):
        # few, long streams: every chunk but the first of a stream is scored with the context before it
        streams = max(1, min(batch_size, len(split) // MIN_EVAL_STEPS))
        return StreamSampler(len(split), streams, remainder=True).batches()

    def forward(self, model: nn.Module, batch: Batch) -> Tensor:
        inner = getattr(model, "module", model)  # DistributedDataParallel wraps the model
        if inner is not self._stateful:  # checked once per model, not on every batch
            self._check_stateful(inner)
            self._stateful = inner
        state = self.state if self.state is not None and _state_batch(self.state) == len(batch) else None
        logits, state = model(batch.x, state=state, return_state=True)
        self.state = detach_state(state)
        return logits

    @staticmethod
    def _check_stateful(inner: nn.Module) -> None:
        if not {"state", "return_state"} <= set(inspect.signature(inner.forward).parameters):
            name = getattr(inner, "gridseq_name", type(inner).__name__)
            raise ConfigError(
                f"language modelling carries the hidden state across chunks, so the model's forward must accept "
                f"state= and return_state=True; {name!r} does not. Use rnn, lstm or gru (per-step)."
            )

    def _check_output(self, output: Tensor) -> None:
        if output.dim() != 3 or (self.num_classes is not None and output.shape[2] != self.num_classes):
            v = self.num_classes if self.num_classes is not None else "V"
            raise ShapeError(f"lm expects model output of shape (B, T, {v}) next-token logits, got {tuple(output.shape)}; use a per-step model.")

    def loss(self, output: Tensor, batch: Batch) -> Tensor:
        self._check_output(output)
        y = aligned_targets(output, batch.y)
        return F.cross_entropy(output.flatten(0, 1), y.flatten(), ignore_index=IGNORE)

    def metrics(self) -> LMMetrics:
        return LMMetrics()

    def predict(self, output: Tensor) -> Tensor:
        """Next-token probabilities (B, T, V)."""
        self._check_output(output)
        return output.softmax(dim=-1)

    def check_split(self, split: Split, name: str) -> None:
        if split.x.dim() != 2 or split.y.shape != split.x.shape or split.y.dtype != torch.int64:
            raise DataError(
                f"lm needs {name} inputs and next-token targets of the same shape (N, T) int64, got x "
                f"{tuple(split.x.shape)} and y {tuple(split.y.shape)} {split.y.dtype}."
            )
        if split.lengths is not None:
            raise DataError(f"lm reads consecutive chunks of one text; {name} must not have per-item lengths.")
