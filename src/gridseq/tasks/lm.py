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
from collections.abc import Iterator
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gridseq._validation import check_positive_int
from gridseq.data.contract import Batch, DatasetInfo, Split
from gridseq.data.samplers import StreamSampler
from gridseq.data.vocab import PAD, SPECIALS, UNK, Vocab
from gridseq.errors import ConfigError, DataError, ShapeError
from gridseq.models.traits import unwrap
from gridseq.tasks.base import SumMetrics, Task, register
from gridseq.tasks.inputs import InputLimits, check_text
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
    options: ClassVar[dict] = {"length": 100, "temperature": 1.0, "top_k": None, "seed": None}
    batchable = False  # a generation loop per prompt
    streams = ("steps",)
    generates = "text"
    not_exchangeable = "its items are consecutive slices of one text"
    stream_top_k = 5  # next-token probabilities a stream reports per step by default

    def elsewhere(self, run_dir) -> str:
        return f"{run_dir} is a language model; sample from it with `gridseq generate {run_dir} --prompt TEXT`."

    def run(self, model: nn.Module, items: list, options: dict, limits: InputLimits) -> dict:
        """A continuation of `options["length"]` tokens per prompt ("" starts from a new line)."""
        vocab = Vocab.from_json(self.info.preprocessing["vocab"])
        out = []
        for i, prompt in enumerate(items):
            check_text(prompt, i, limits.max_chars, empty_ok=True)
            if limits.max_length is not None and prompt and len(vocab.encode(prompt)) > limits.max_length:
                raise DataError(f"prompt {i} is over this server's limit of {limits.max_length} tokens.")
            seed = None if options["seed"] is None else options["seed"] + i
            out.append("".join(sample_text(model, vocab, prompt, length=options["length"], temperature=options["temperature"],
                                           top_k=options["top_k"], seed=seed)))
        return {"predictions": out}

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
        inner = unwrap(model)  # DistributedDataParallel wraps the model
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
            from gridseq.models import registry

            name = registry.model_name(inner)
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

    def decode_step(self, output: Tensor, vocab=None, top_k: int | None = None) -> dict:
        """A stream's reply for its latest token: the most likely next token and the `top_k` most likely
        tokens' probabilities; the special tokens are never predicted (as `gridseq.textgen`)."""
        from gridseq.tasks.base import top_probabilities

        out = output.float().clone()
        out[: len(SPECIALS)] = -math.inf  # never predict <pad>, <unk>, <bos>, <eos>
        probs = out.softmax(-1).tolist()
        tokens = vocab.tokens
        best = max(range(len(probs)), key=probs.__getitem__)
        return {"prediction": tokens[best], "probabilities": top_probabilities(probs, tokens, top_k)}

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


def sample_text(model: nn.Module, vocab: Vocab, prompt: str = "", *, length: int = 200, temperature: float = 1.0,
                top_k: int | None = None, seed: int | None = None) -> Iterator[str]:
    """Yield `length` generated pieces (a character, or a word and its space) after `prompt` (see
    `gridseq.textgen.stream_text`); the settings are checked before the first token.

    Raises:
        ConfigError: bad sampling settings. DataError: the prompt holds no token the vocabulary knows.
    """
    check_positive_int(length, "length")
    _check_sampling(temperature, top_k)
    ids = vocab.encode(prompt) if prompt else [vocab.index.get("\n", len(SPECIALS))]
    if all(i == UNK for i in ids):
        raise DataError(f"the prompt {prompt!r} holds no token of the model's vocabulary ({len(vocab)} tokens, "
                        f"e.g. {vocab.tokens[len(SPECIALS):len(SPECIALS) + 10]}).")
    return _sample(model, vocab, ids, length, temperature, top_k, seed)


def _check_sampling(temperature: float, top_k: int | None) -> None:
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or not math.isfinite(temperature) or temperature < 0:
        raise ConfigError(f"temperature must be a number >= 0 (0 = always the most likely token), got {temperature!r}.")
    if top_k is not None:
        check_positive_int(top_k, "top_k")


def _sample(model: nn.Module, vocab: Vocab, ids: list[int], length: int, temperature: float, top_k: int | None,
            seed: int | None) -> Iterator[str]:
    generator = torch.Generator().manual_seed(seed) if seed is not None else None
    device = next(model.parameters()).device
    banned = torch.tensor([PAD, *range(1, len(SPECIALS))], device=device)  # never emit specials
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            logits, state = model(torch.tensor([ids], device=device), state=None, return_state=True)
            for _ in range(length):
                step = logits[0, -1].float()
                step[banned] = -math.inf
                if temperature == 0:
                    token = int(step.argmax())
                else:
                    step = step / temperature
                    if top_k is not None and top_k < step.numel():
                        cutoff = step.topk(top_k).values[-1]
                        step = step.masked_fill(step < cutoff, -math.inf)
                    token = int(torch.multinomial(step.softmax(-1).cpu(), 1, generator=generator))
                piece = vocab.tokens[token]
                yield piece if vocab.level == "char" else piece + " "
                logits, state = model(torch.tensor([[token]], device=device), state=state, return_state=True)
    finally:
        model.train(was_training)
