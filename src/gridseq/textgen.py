"""Text generation from a trained language model, one token at a time.

The prompt runs through the model once; then each new token costs one recurrent step: the model's
state is carried (`return_state=True`), never recomputed over the history. Sampling draws from the
softmax of logits / temperature, optionally restricted to the top-k tokens; temperature 0 is greedy.

    >>> text = gridseq.generate("runs/pydoc-lstm-s0", prompt="The ", length=200, temperature=0.8)  # doctest: +SKIP
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from pathlib import Path

import torch
from torch import nn

from gridseq._validation import check_positive_int
from gridseq.data.vocab import PAD, SPECIALS, UNK, Vocab
from gridseq.errors import ConfigError, DataError


def _resolve(model, vocab: Vocab | None) -> tuple[nn.Module, Vocab]:
    if isinstance(model, (str, os.PathLike)):
        from gridseq.train import open_run

        run_dir = Path(model)
        model, config = open_run(run_dir)
        task = ((config.get("task") or {}).get("name"))
        if task != "lm":
            raise ConfigError(f"{run_dir} is a {task or 'non-language-model'} run; generate needs a language model run "
                              f"(e.g. gridseq train pydoc --model lstm, or a .txt file with --task lm).")
        if vocab is None:
            record = (((config.get("data") or {}).get("info") or {}).get("preprocessing") or {}).get("vocab")
            if record is None:
                raise ConfigError(f"{run_dir} has no vocabulary in its config.json: it was not trained on text; "
                                  f"generate needs a language model run (e.g. gridseq train pydoc --model lstm).")
            vocab = Vocab.from_json(record)
    if vocab is None:
        raise ConfigError("generate(model, ...) with a model object needs vocab=: the Vocab it was trained with.")
    return model, vocab


def _check_sampling(temperature: float, top_k: int | None) -> None:
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or not math.isfinite(temperature) or temperature < 0:
        raise ConfigError(f"temperature must be a number >= 0 (0 = always the most likely token), got {temperature!r}.")
    if top_k is not None:
        check_positive_int(top_k, "top_k")


def stream_text(model: nn.Module | str | os.PathLike, prompt: str = "", *, vocab: Vocab | None = None, length: int = 200,
                temperature: float = 1.0, top_k: int | None = None, seed: int | None = None) -> Iterator[str]:
    """Yield generated text piece by piece (a character, or a word and its space), `length` tokens.

    Args:
        model: a per-step language model taking `state=` and `return_state=True` (gridseq's rnn, lstm,
            gru trained on an `lm` dataset), or the path of its run directory (the vocabulary then
            comes from its config.json).
        prompt: text to condition on; empty starts from a newline (or the most frequent token).
        vocab: the model's vocabulary (not needed with a run directory).
        length: tokens to generate.
        temperature: softmax temperature; 0 picks the most likely token every step. Default: 1.
        top_k: sample only among the k most likely tokens. Default: all.
        seed: seeds the sampler (same seed, same text). Default: torch's global generator.

    Raises:
        ConfigError: not a language model, or bad sampling settings (checked before the first token).
        DataError: the prompt holds no token the vocabulary knows.
    """
    model, vocab = _resolve(model, vocab)
    check_positive_int(length, "length")
    _check_sampling(temperature, top_k)
    ids = vocab.encode(prompt) if prompt else [vocab.index.get("\n", len(SPECIALS))]
    if all(i == UNK for i in ids):
        raise DataError(f"the prompt {prompt!r} holds no token of the model's vocabulary ({len(vocab)} tokens, "
                        f"e.g. {vocab.tokens[len(SPECIALS):len(SPECIALS) + 10]}).")
    return _sample(model, vocab, ids, length, temperature, top_k, seed)


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


def generate(model: nn.Module | str | os.PathLike, prompt: str = "", **kwargs) -> str:
    """The prompt followed by `length` generated tokens, as one string; arguments as `stream_text`.

    Example:
        >>> gridseq.generate("runs/pydoc-lstm-s0", prompt="def ", length=50, seed=0)  # doctest: +SKIP
        'def __init__(self, ...'
    """
    return prompt + "".join(stream_text(model, prompt, **kwargs))
