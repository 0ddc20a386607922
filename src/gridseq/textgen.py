"""Text generation from a trained language model, one token at a time.

The prompt runs through the model once; then each new token costs one recurrent step: the model's
state is carried (`return_state=True`), never recomputed over the history. Sampling draws from the
softmax of logits / temperature, optionally restricted to the top-k tokens; temperature 0 is greedy.

    >>> text = gridseq.generate("runs/pydoc-lstm-s0", prompt="The ", length=200, temperature=0.8)  # doctest: +SKIP
"""

from __future__ import annotations

import os
from collections.abc import Iterator

from torch import nn

from gridseq import tasks
from gridseq.data.vocab import Vocab
from gridseq.errors import ConfigError
from gridseq.tasks.lm import sample_text


def _resolve(model, vocab: Vocab | None) -> tuple[nn.Module, Vocab]:
    if isinstance(model, (str, os.PathLike)):
        from gridseq.runs import Run

        run = Run.open(model)
        declared = tasks.task_class(run.task_name)
        if declared is None or declared.generates != "text":
            raise ConfigError(f"{run.path} is a {run.task_name or 'non-language-model'} run; generate needs a language model run "
                              f"(e.g. gridseq train pydoc --model lstm, or a .txt file with --task lm).")
        if vocab is None:
            record = run.info.preprocessing.get("vocab")
            if record is None:
                raise ConfigError(f"{run.path} has no vocabulary in its config.json: it was not trained on text; "
                                  f"generate needs a language model run (e.g. gridseq train pydoc --model lstm).")
            vocab = Vocab.from_json(record)
        model = run.model
    if vocab is None:
        raise ConfigError("generate(model, ...) with a model object needs vocab=: the Vocab it was trained with.")
    return model, vocab


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
    return sample_text(model, vocab, prompt, length=length, temperature=temperature, top_k=top_k, seed=seed)


def generate(model: nn.Module | str | os.PathLike, prompt: str = "", **kwargs) -> str:
    """The prompt followed by `length` generated tokens, as one string; arguments as `stream_text`.

    Example:
        >>> gridseq.generate("runs/pydoc-lstm-s0", prompt="def ", length=50, seed=0)  # doctest: +SKIP
        'def __init__(self, ...'
    """
    return prompt + "".join(stream_text(model, prompt, **kwargs))
