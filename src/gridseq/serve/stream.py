"""Step-by-step streaming for causal recurrent models: one step in, the output for it out.

A `StreamSession` keeps the recurrent state of one stream between steps, so step t costs one
recurrent step — history is never recomputed. It runs the model's own state-carrying forward
(`RNNModel.forward(x, state=..., return_state=True)`), so the output after t steps equals the model's
output on the first t steps of the sequence (to float rounding):

    task       output after each step
    classify   the class of the sequence so far (its probabilities)
    regress    the values predicted for the sequence so far
    tag        the class of this step
    lm         the most likely next token (and the top-k next-token probabilities)

Video models (crnn, convlstm, frame-cnn, trained on clips) stream through their own
`model.stream()` (`gridseq.nn.stream`): one message is one frame, (H, W) or (H, W, C) raw values
like the training clips, and each frame costs one CNN pass and one recurrent step.

Transcription models on audio (`crnn-ctc` trained on dtmf or your own WAVs) stream audio: one message
is one chunk of raw samples (a list of numbers at the run's sample rate, any length), and the reply is
the transcript of all the audio so far — exactly what `POST /predict` (and `gridseq predict`) give
for that audio, so the reply to the last chunk IS the offline transcript of the whole recording.
It is computed by running the model on the whole audio received so far: the front end normalises
each utterance by its own mean and spread, so no earlier frame's features are final until the audio
ends, and any model (bidirectional too) streams. The cost of a chunk grows with the audio so far
(the run's input limits bound it); `{"reset": true}` starts a new recording.

Who can stream: unidirectional rnn / lstm / gru models on sequences or text, causal video models,
and transcription models on audio. A bidirectional model
reads every step from both ends, so its output for step t depends on steps not yet sent; per-series
z-normalised series need the whole series to normalise any step; images read as row sequences and
permuted positions are not a stream in time.

    >>> session = StreamSession(Predictor.from_run("runs/walks-lstm-s0"))  # doctest: +SKIP
    >>> sorted(session.step([0.1, -0.3]))  # doctest: +SKIP
    ['prediction', 'probabilities', 'step']
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import torch

from gridseq import tasks
from gridseq.data.preprocessing import apply_preprocessing
from gridseq.errors import ConfigError, DataError
from gridseq.models import registry
from gridseq.models.traits import traits
from gridseq.predict import Predictor, as_numbers


def streamable(predictor: Predictor) -> tuple[bool, str]:
    """(True, "") if `predictor`'s model can stream step by step, else (False, the reason)."""
    from gridseq.models.rnn import RNNModel

    model, info, task = predictor.model, predictor.info, predictor.task
    record = info.preprocessing or {}
    name = registry.model_name(model)
    if "audio" in task.streams:
        if record.get("layout") != "audio":
            return False, f"model {name!r} transcribes images (lines of handwriting); use POST /predict with whole lines."
        return True, ""
    if info.kind == "video":
        if "frames" not in task.streams or not traits(model).streams:
            return False, f"model {name!r} ({info.task}) has no frame-by-frame stream; use POST /predict with whole clips."
        try:
            model.stream(batch_size=1)
        except ConfigError as e:  # e.g. bidirectional
            return False, f"{e} Use POST /predict with whole clips."
        return True, ""
    if not isinstance(model, RNNModel):
        return False, (f"model {name!r} is not a recurrent model with a carried state; streaming takes "
                       f"unidirectional rnn, lstm or gru models (use POST /predict with whole sequences).")
    if model.config.bidirectional:
        return False, ("the model is bidirectional: its output for a step depends on steps after it, so it cannot "
                       "stream; use POST /predict with whole sequences, or train a unidirectional model.")
    if "steps" not in task.streams:
        return False, f"streaming serves {', '.join(tasks.streaming('steps'))} models; this is a {info.task} model."
    if info.kind != "tokens":
        if record.get("layout") != "sequence":
            return False, "the model reads images as row sequences; streaming takes sequence or text models."
        if (record.get("normalize") or {}).get("scope") == "series":
            return False, ("the model's series are z-normalised per series, which needs the whole series before "
                           "any step; train with normalize='channel' to stream.")
        if "permutation" in record:
            return False, "the model reads time steps in a permuted order, so it cannot stream in time."
    return True, ""


class StreamSession:
    """One stream's state: feed it one step at a time with `step`.

    Args:
        predictor: a `Predictor` of a streamable model (see `streamable`).
        max_steps: steps one session may take before it must `reset`. Default: unbounded.
        top_k: probabilities reported per step. Default: all classes (5 tokens for a language model).

    Raises:
        ConfigError: the model cannot stream (the message says why).
    """

    def __init__(self, predictor: Predictor, *, max_steps: int | None = None, top_k: int | None = None):
        ok, reason = streamable(predictor)
        if not ok:
            raise ConfigError(reason)
        self.predictor = predictor
        self.model = predictor.model
        self.max_steps = max_steps
        self.task = predictor.task
        self.top_k = top_k if top_k is not None else self.task.stream_top_k
        config = self.model.config
        self._audio = "audio" in self.task.streams  # chunks of samples, transcribed as a whole
        # a video model keeps its own state (frame features, recurrent state, running pool) in a Stream
        self._frames = self.model.stream(batch_size=1) if predictor.info.kind == "video" else None
        # mean/max pooling keeps a running sum/max of the top layer's outputs instead of all of them
        recurrent = self._frames is None and not self._audio
        self.pooling = None if not recurrent or config.per_step or config.pooling == "last" else config.pooling
        self.reset()

    def reset(self) -> None:
        """Forget the stream: the next step is step 1 of a new sequence."""
        self.state = None
        self.steps = 0
        self._pooled: torch.Tensor | None = None
        self._chunks: list[np.ndarray] = []  # audio received so far (transcription)
        if self._frames is not None:
            self._frames.reset()

    def step(self, value: Any) -> dict[str, Any]:
        """Feed one step and return the output for it.

        Args:
            value: sequences: the step's F raw values (a list, or a number when F = 1); text: one token
                (a character for char-level models, a word for word-level ones).
        Returns:
            {"step": steps so far, "prediction": ..., "probabilities": {...}} (see the module docstring).
        Raises:
            DataError: a malformed step (the session is unchanged), or the session is at `max_steps`.
        """
        if self.max_steps is not None and self.steps >= self.max_steps:
            raise DataError(f"this stream reached its limit of {self.max_steps} steps; reset it to start a new sequence.")
        if self._audio:
            return self._audio_step(value)
        x = self._encode(value)
        if self._frames is not None:
            # the frame stream advances as it computes, so check the output on a copy of its state first
            return self._frame_step(x)
        with torch.inference_mode():
            out, state, pooled = self._forward(x)
        if not bool(torch.isfinite(out).all()):
            raise DataError("the model produced NaN or Inf for this step (values far outside the training range?); "
                            "the step was not taken.")
        self.state, self._pooled = state, pooled
        self.steps += 1
        return {"step": self.steps, **self._decode(out[0])}

    def _audio_step(self, value: Any) -> dict[str, Any]:
        """Add a chunk of samples; the transcript of all the audio so far (the offline one, recomputed)."""
        chunk = as_numbers(value, "the audio chunk")
        if chunk.ndim == 0:
            chunk = chunk[None]
        if chunk.ndim != 1 or chunk.size == 0:
            raise DataError(f"send an audio chunk as a non-empty list of samples (numbers), got shape {chunk.shape}.")
        waveform = np.concatenate([*self._chunks, chunk.astype(np.float32)])
        out = self.predictor.predict([waveform])  # DataError (e.g. longer than the input limit): chunk not taken
        self._chunks.append(chunk.astype(np.float32))
        self.steps += 1
        rate = self.predictor.info.preprocessing["audio"]["sample_rate"]
        return {"step": self.steps, "prediction": out["predictions"][0], "samples": int(waveform.size),
                "seconds": round(waveform.size / rate, 4)}

    def _frame_step(self, frame: torch.Tensor) -> dict[str, Any]:
        # a stream replaces its state tensors each step (never edits them in place), so shallow copies of its
        # attributes (state, step count, running pool) are enough to undo a step; the model is not copied
        saved = {k: copy.copy(v) for k, v in vars(self._frames).items() if not isinstance(v, torch.nn.Module) and not callable(v)}
        out = self._frames.step(frame)  # (1, K)
        if not bool(torch.isfinite(out).all()):
            vars(self._frames).update(saved)
            raise DataError("the model produced NaN or Inf for this frame (values far outside the training range?); "
                            "the frame was not taken.")
        self.steps += 1
        return {"step": self.steps, **self._decode(out[0])}

    def _forward(self, x: torch.Tensor):
        model = self.model
        if self.pooling is None:
            logits, state = model(x, state=self.state, return_state=True)  # (1, K) or (1, 1, K)
            return (logits[:, -1] if logits.dim() == 3 else logits), state, None
        feats = model.embedding(x) if model.embedding is not None else x  # (1, 1, E or F)
        outputs, state = model.encoder(feats, None, self.state)  # (1, 1, H)
        h = outputs[:, 0]
        if self._pooled is None:
            pooled = h
        else:
            pooled = self._pooled + h if self.pooling == "mean" else torch.maximum(self._pooled, h)
        summary = pooled / (self.steps + 1) if self.pooling == "mean" else pooled
        return model.head(summary), state, pooled

    def _encode(self, value: Any) -> torch.Tensor:
        info, record = self.predictor.info, self.predictor.info.preprocessing
        device = self.predictor.device
        if info.kind == "video":
            from gridseq.data.readers.video import prepare_clip

            frame = as_numbers(value, "the frame")
            if frame.ndim not in (2, 3):
                raise DataError(f"send one frame as an (H, W) or (H, W, C) array, got {frame.ndim} dimension(s).")
            return prepare_clip(frame[None], record)[:, 0].to(device)  # (1, C, H, W), normalised like training
        if info.kind == "tokens":
            if not isinstance(value, str) or not value:
                raise DataError(f"send one token as a non-empty string, got {type(value).__name__}.")
            vocab = self.predictor.vocab
            ids = vocab.encode(value.lower() if record.get("lowercase") else value)
            if len(ids) != 1:
                unit = "character" if vocab.level == "char" else "word"
                raise DataError(f"send one {unit} per message; {value[:40]!r} is {len(ids)} tokens.")
            return torch.tensor([ids], dtype=torch.int64, device=device)  # (1, 1)
        features = record["sequence"]["features"]
        a = as_numbers(value, "the step")
        if a.ndim == 0:
            a = a[None]
        if a.shape != (features,):
            raise DataError(f"a step of this model is {features} number(s) (one per feature), got shape {a.shape}.")
        x, _ = apply_preprocessing(a[None, None], None, record)  # (1, 1, F), normalised like training
        return x.to(device)

    def _decode(self, out: torch.Tensor) -> dict[str, Any]:
        return self.task.decode_step(out, self.predictor.vocab, self.top_k)
