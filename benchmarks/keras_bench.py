"""keras/*: gridseq against Keras 3 on the TensorFlow backend, on the five reference models.

Optional: needs `keras` and `tensorflow` (the suggested `bench` extra). Without them the entry is
skipped with a note; `run.py --keras-python PY` runs this module in another interpreter instead
(`PY -m benchmarks.keras_bench`), where torch, gridseq, keras and tensorflow all import.

For each model, in one process and interleaved:
- training: `gridseq.fit` (one epoch, clipping off as in Keras) vs `keras_model.fit` (one epoch,
  verbose=0), Keras compiled with jit_compile=False ("keras_tf") and True ("keras_xla"); the faster
  Keras is the anchor. ratio = gridseq samples/s ÷ faster Keras samples/s; target 1.0 (1.5 for the
  two LSTM models).
- batch-1 latency: the gridseq model in eval mode under torch.no_grad vs `predict_on_batch` (not
  `predict`, which costs 40–70 ms per call whatever the model). ratio = gridseq ms ÷ faster Keras
  ms; target ≤ 1.0.
Keras builds the same layers (same "same"-padded convolutions; the BiGRU masks padded steps of
batches padded to 200, the Keras way to get correct variable-length results).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

import gridseq
from benchmarks import timing
from benchmarks.models import GRU_CLASSES, GRU_FEATURES, SPECS, VOCAB

TRAIN_TARGET = {"lstm-forecast": 1.5, "lstm-charlm": 1.5}
FULL_STEPS = {"rnn-text": 30, "lstm-forecast": 40, "lstm-charlm": 12, "cnn-image": 30, "bigru-varlen": 12}
NAMES = [f"keras/{k}-{kind}" for k in SPECS for kind in ("train", "latency")]


def _keras_model(key: str, jit: bool):
    import keras
    from keras import layers

    if key in ("rnn-text", "lstm-charlm"):
        rnn = layers.SimpleRNN(128, return_sequences=True) if key == "rnn-text" else layers.LSTM(256, return_sequences=True)
        net = keras.Sequential([keras.Input((None,), dtype="int32"), layers.Embedding(VOCAB, 64), rnn, layers.Dense(VOCAB)])
        loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    elif key == "lstm-forecast":
        net = keras.Sequential([keras.Input((60, 1)), layers.LSTM(50, return_sequences=True), layers.LSTM(50), layers.Dense(1)])
        loss = "mse"
    elif key == "cnn-image":
        net = keras.Sequential([
            keras.Input((28, 28, 1)), layers.Conv2D(32, 3, padding="same", activation="relu"), layers.MaxPooling2D(),
            layers.Conv2D(64, 3, padding="same", activation="relu"), layers.MaxPooling2D(), layers.Flatten(),
            layers.Dense(128, activation="relu"), layers.Dense(10),
        ])
        loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    else:
        net = keras.Sequential([keras.Input((None, GRU_FEATURES)), layers.Masking(0.0),
                                layers.Bidirectional(layers.GRU(64)), layers.Dense(GRU_CLASSES)])
        loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    net.compile(optimizer=keras.optimizers.AdamW(1e-3, weight_decay=0.01), loss=loss, jit_compile=jit)
    return net


def _keras_arrays(key: str, split) -> tuple[np.ndarray, np.ndarray]:
    x, y = split.x.numpy(), split.y.numpy()
    if key == "cnn-image":
        x = np.ascontiguousarray(x.transpose(0, 2, 3, 1))  # Keras is channels-last
    if key == "lstm-forecast":
        y = y.reshape(len(y), 1)
    return x, y


def _compare(key: str, budget: timing.Budget) -> list[timing.Entry]:
    spec = SPECS[key]
    steps = budget.steps(FULL_STEPS[key], minimum=5)
    data = spec.data(steps * spec.batch_size)
    ours = spec.gridseq()
    kx, ky = _keras_arrays(key, data.train)
    tf_model, xla_model = _keras_model(key, False), _keras_model(key, True)
    epoch = iter(range(10**6))
    train = timing.interleaved({
        "gridseq": lambda: gridseq.fit(ours, data, epochs=1, batch_size=spec.batch_size, grad_clip=0, progress=False,
                                       device="cpu", seed=next(epoch)) and None,
        "keras_tf": lambda: tf_model.fit(kx, ky, batch_size=spec.batch_size, epochs=1, verbose=0) and None,
        "keras_xla": lambda: xla_model.fit(kx, ky, batch_size=spec.batch_size, epochs=1, verbose=0) and None,
    }, budget)
    items = steps * spec.batch_size
    sps = {k: items / timing.median(v) for k, v in train.items()}
    anchor = max(("keras_tf", "keras_xla"), key=lambda k: sps[k])

    one = data.train.batch(torch.arange(1))
    x1, l1 = one.x, one.lengths
    k1 = kx[:1] if l1 is None else kx[:1, : int(l1[0])]
    ours.eval()
    calls = budget.steps(20, minimum=5)

    def ours_latency() -> None:
        with torch.no_grad():
            for _ in range(calls):
                ours(x1) if l1 is None else ours(x1, l1)

    def keras_latency(net) -> None:
        for _ in range(calls):
            net.predict_on_batch(k1)

    lat = timing.interleaved({"gridseq": ours_latency, "keras_tf": lambda: keras_latency(tf_model),
                              "keras_xla": lambda: keras_latency(xla_model)}, budget)
    ms = {k: 1e3 * timing.median(v) / calls for k, v in lat.items()}
    lat_anchor = min(("keras_tf", "keras_xla"), key=lambda k: ms[k])
    return [
        timing.Entry(f"keras/{key}-train", sps["gridseq"] / sps[anchor], TRAIN_TARGET.get(key, 1.0),
                     {"samples_per_s": {k: round(v, 1) for k, v in sps.items()}, "anchor": anchor}),
        timing.Entry(f"keras/{key}-latency", ms["gridseq"] / ms[lat_anchor], 1.0,
                     {"ms_batch1": {k: round(v, 3) for k, v in ms.items()}, "anchor": lat_anchor,
                      "keras_call": "predict_on_batch"}, higher=False),
    ]


def _versions() -> dict:
    import keras
    import tensorflow as tf

    return {"keras": keras.__version__, "tensorflow": tf.__version__, "backend": keras.backend.backend(),
            "tf_intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads()}


def _in_process(budget: timing.Budget, only: str | None) -> list[timing.Entry]:
    import tensorflow as tf

    try:  # the same intra-op threads as torch, so neither side gets more cores
        tf.config.threading.set_intra_op_parallelism_threads(torch.get_num_threads())
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:  # TensorFlow was already initialised
        pass
    entries = []
    versions = _versions()
    for key in SPECS:
        if only is None or any(only in n for n in (f"keras/{key}-train", f"keras/{key}-latency")):
            entries += [e for e in _compare(key, budget) if only is None or only in e.name]
    for e in entries:
        e.figures["versions"] = versions
    return entries


def run(budget: timing.Budget, only: str | None = None, keras_python: str | None = None) -> list[timing.Entry]:
    if only is not None and not any(only in n for n in NAMES):
        return []
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        import keras  # noqa: F401
        import tensorflow  # noqa: F401
    except ImportError:
        if keras_python is None:
            return [timing.Entry("keras", None, None, {}, "skipped: keras/tensorflow not installed (pip install "
                                 "'gridseq[bench]', or pass --keras-python)", skipped=True)]
        return _delegate(budget, only, keras_python)
    return _in_process(budget, only)


def _delegate(budget: timing.Budget, only: str | None, python: str) -> list[timing.Entry]:
    """Run this module under another interpreter and read its entries back as JSON."""
    args = [python, "-m", "benchmarks.keras_bench", "--budget", json.dumps(budget.__dict__), "--threads", str(torch.get_num_threads())]
    if only:
        args += ["--only", only]
    env = {**os.environ, "KERAS_BACKEND": "tensorflow", "TF_CPP_MIN_LOG_LEVEL": "2"}
    done = subprocess.run(args, cwd=Path(__file__).resolve().parent.parent, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        return [timing.Entry("keras", None, None, {}, f"skipped: {python} failed: {done.stderr.strip()[-300:]}", skipped=True)]
    return [timing.Entry(d["name"], d["ratio"], d["target"], d["figures"], d.get("note", ""), d.get("direction") != "at most")
            for d in json.loads(done.stdout.strip().splitlines()[-1])]


if __name__ == "__main__":
    import argparse

    p = argparse.ArgumentParser()
    p.add_argument("--budget", required=True)
    p.add_argument("--threads", type=int, required=True)
    p.add_argument("--only")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    found = _in_process(timing.Budget(**json.loads(a.budget)), a.only)
    sys.stdout.write("\n" + json.dumps([e.to_json() for e in found]) + "\n")
