"""The five reference models of the performance issue, each built twice — as a gridseq model and as
an identical plain PyTorch module — with synthetic data as a gridseq `Dataset`.

| key | reference | gridseq model |
| --- | --- | --- |
| rnn-text | Embedding(65→64) → RNN(128, tanh) → Dense(65) per step, T=100, B=64 | create("rnn", vocab_size=65, per_step=True) |
| lstm-forecast | LSTM(50, all steps) → LSTM(50) → Dense(1), 60×1, MSE, B=64 | create("lstm", num_layers=2, hidden_size=50) on a forecast dataset |
| lstm-charlm | Embedding(65→64) → LSTM(256) → Dense(65) per step, T=128, B=32 | create("lstm", vocab_size=65, hidden_size=256, per_step=True) |
| cnn-image | Conv32-ReLU-Pool → Conv64-ReLU-Pool → Dense128 → Dense10, 28×28, B=128 | create("cnn", batch_norm=False, dropout=0) |
| bigru-varlen | BiGRU(64) many-to-one, lengths 5..200, B=64 | create("gru", bidirectional=True, hidden_size=64) |

The two per-step models train under `LMTask` below: per-step cross-entropy on fixed batches,
registered through the public `gridseq.tasks.register` extension point. gridseq's own `lm` task carries
the hidden state from batch to batch (truncated BPTT), which the plain loop does not, so both sides
train the same stateless per-step loss here (its metric is one argmax and a sum per step, like
classify's confusion matrix). Convolutions use "same" padding in both builds (gridseq's choice).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence

import gridseq
from gridseq import tasks
from gridseq.data.contract import Batch, Dataset, DatasetInfo, Split

VOCAB = 65
GRU_FEATURES, GRU_CLASSES = 8, 5


# ---- the per-step task ----------------------------------------------------------------------------


class _LMMetrics(tasks.Metrics):
    def __init__(self):
        self.sums: Tensor | None = None  # (loss · tokens, correct tokens)
        self.tokens = 0

    def update(self, output: Tensor, batch: Batch, loss: Tensor) -> None:
        if self.sums is None:
            self.sums = torch.zeros(2, dtype=torch.float64, device=output.device)
        n = batch.y.numel()
        self.sums[0] += loss.detach().double() * n
        self.sums[1] += (output.detach().argmax(-1) == batch.y).sum()
        self.tokens += n

    def compute(self) -> dict[str, float]:
        if self.sums is None:
            return {}
        s = self.sums.cpu()
        return {"loss": float(s[0]) / self.tokens, "token_accuracy": float(s[1]) / self.tokens}

    def state_dict(self) -> dict[str, Tensor]:
        return {} if self.sums is None else {"sums": self.sums.cpu(), "tokens": torch.tensor(self.tokens)}

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        self.sums, self.tokens = state.get("sums"), int(state.get("tokens", 0))


class LMTask(tasks.Task):
    """Per-step classification (next-token prediction): output (B, T, K), y (B, T) int64."""

    name = "bench-lm"
    topologies = ("many-to-many",)
    primary = "token_accuracy"
    higher_is_better = True

    def loss(self, output: Tensor, batch: Batch) -> Tensor:
        return F.cross_entropy(output.reshape(-1, output.shape[-1]), batch.y.reshape(-1))

    def metrics(self) -> _LMMetrics:
        return _LMMetrics()

    def predict(self, output: Tensor) -> Tensor:
        return output.argmax(-1)


if LMTask.name not in tasks.names():
    tasks.register(LMTask)


# ---- plain PyTorch references ---------------------------------------------------------------------


class PlainTextRNN(nn.Module):
    def __init__(self, cell: type[nn.RNNBase] = nn.RNN, hidden: int = 128):
        super().__init__()
        self.embedding = nn.Embedding(VOCAB, 64, padding_idx=0)
        self.rnn = cell(64, hidden, batch_first=True)
        self.head = nn.Linear(hidden, VOCAB)

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        out, _ = self.rnn(self.embedding(x))  # (B, T, H)
        return self.head(out)  # (B, T, 65)


class PlainForecastLSTM(nn.Module):
    def __init__(self):
        super().__init__()
        self.rnn = nn.LSTM(1, 50, num_layers=2, batch_first=True)
        self.head = nn.Linear(50, 1)

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        _, (h, _) = self.rnn(x)
        return self.head(h[-1])  # (B, 1)


class PlainCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2),
        )
        self.head = nn.Sequential(nn.Linear(64 * 7 * 7, 128), nn.ReLU(inplace=True), nn.Linear(128, 10))

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        return self.head(self.features(x).flatten(1))


class PlainBiGRU(nn.Module):
    """BiGRU many-to-one; with lengths it packs (the textbook way), without it reads the padded batch."""

    def __init__(self):
        super().__init__()
        self.rnn = nn.GRU(GRU_FEATURES, 64, batch_first=True, bidirectional=True)
        self.head = nn.Linear(128, GRU_CLASSES)

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        if lengths is not None:
            x = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
        _, h = self.rnn(x)  # (2, B, 64)
        return self.head(torch.cat([h[0], h[1]], dim=-1))


# ---- data ---------------------------------------------------------------------------------------


def _empty(split: Split) -> Split:
    return Split(split.x[:0], split.y[:0], None if split.lengths is None else split.lengths[:0])


def token_data(n: int, steps: int, seed: int = 0) -> Dataset:
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, VOCAB, (n, steps + 1), generator=g)
    train = Split(ids[:, :-1].contiguous(), ids[:, 1:].contiguous())
    info = DatasetInfo(name="bench-tokens", kind="tokens", input_shape=(steps,), num_classes=VOCAB,
                       class_names=tuple(str(i) for i in range(VOCAB)), task=LMTask.name, vocab_size=VOCAB)
    return Dataset(info, train, _empty(train), _empty(train))


def forecast_data(n: int, window: int = 60, seed: int = 0) -> Dataset:
    """A noisy sine through gridseq's own forecasting pipeline: n windows of 60 steps → 1 step."""
    from gridseq.data.readers.series_csv import RawSeries
    from gridseq.data.series import series_dataset

    rng = np.random.default_rng(seed)
    steps = n + window
    t = np.arange(steps)
    values = (np.sin(2 * np.pi * t / 25) + 0.1 * rng.standard_normal(steps))[:, None]
    raw = RawSeries(name="bench-sine", times=tuple(str(i) for i in t), values=values, columns=("y",),
                    time_column="t", frequency="steps")
    return series_dataset(raw, window=window, horizon=1, season=1, val_size=0, test_size=0, relative=False)


def image_data(n: int, seed: int = 0) -> Dataset:
    g = torch.Generator().manual_seed(seed)
    train = Split(torch.randn(n, 1, 28, 28, generator=g), torch.randint(0, 10, (n,), generator=g))
    info = DatasetInfo(name="bench-images", kind="image", input_shape=(1, 28, 28), num_classes=10,
                       class_names=tuple(str(i) for i in range(10)))
    return Dataset(info, train, _empty(train), _empty(train))


def varlen_data(n: int, seed: int = 0, low: int = 5, high: int = 200) -> Dataset:
    """Sequences of lengths uniform in low..high; the class is the sign pattern of the first and last
    valid steps' mean feature, so a model must read both ends of each sequence (cheap to learn)."""
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(low, high + 1, (n,), generator=g)
    x = torch.randn(n, high, GRU_FEATURES, generator=g)
    x = x * (torch.arange(high)[None, :] < lengths[:, None]).unsqueeze(-1)  # zero padding
    first = x[:, 0].mean(-1) > 0
    last = x[torch.arange(n), lengths - 1].mean(-1) > 0
    y = (first.long() * 2 + last.long()) % GRU_CLASSES
    train = Split(x, y, lengths)
    info = DatasetInfo(name="bench-varlen", kind="sequence", input_shape=(high, GRU_FEATURES), num_classes=GRU_CLASSES,
                       class_names=tuple(str(i) for i in range(GRU_CLASSES)), variable_length=True)
    return Dataset(info, train, _empty(train), _empty(train))


# ---- the specs ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Spec:
    key: str
    batch_size: int
    gridseq: Callable[[], nn.Module]
    plain: Callable[[], nn.Module]
    data: Callable[[int], Dataset]  # n training items
    loss: Callable[[Tensor, Tensor], Tensor]  # the plain loop's loss(output, y)


def _ce(out: Tensor, y: Tensor) -> Tensor:
    return F.cross_entropy(out.reshape(-1, out.shape[-1]), y.reshape(-1))


def _mse(out: Tensor, y: Tensor) -> Tensor:
    return F.mse_loss(out.view(y.shape), y)


SPECS: dict[str, Spec] = {s.key: s for s in (
    Spec("rnn-text", 64,
         lambda: gridseq.models.create("rnn", vocab_size=VOCAB, embedding_dim=64, hidden_size=128, num_classes=VOCAB, per_step=True),
         PlainTextRNN, lambda n: token_data(n, 100), _ce),
    Spec("lstm-forecast", 64,
         lambda: gridseq.models.create("lstm", input_size=1, hidden_size=50, num_layers=2, num_classes=1),
         PlainForecastLSTM, lambda n: forecast_data(n), _mse),
    Spec("lstm-charlm", 32,
         lambda: gridseq.models.create("lstm", vocab_size=VOCAB, embedding_dim=64, hidden_size=256, num_classes=VOCAB, per_step=True),
         lambda: PlainTextRNN(nn.LSTM, 256), lambda n: token_data(n, 128), _ce),
    Spec("cnn-image", 128,
         lambda: gridseq.models.create("cnn", input_shape=(1, 28, 28), num_classes=10, batch_norm=False, dropout=0.0),
         PlainCNN, image_data, _ce),
    Spec("bigru-varlen", 64,
         lambda: gridseq.models.create("gru", input_size=GRU_FEATURES, hidden_size=64, bidirectional=True, num_classes=GRU_CLASSES),
         PlainBiGRU, varlen_data, _ce),
)}


def copy_weights(src: nn.Module, dst: nn.Module) -> None:
    """Copy parameters in registration order (the two builds declare them in the same order)."""
    ps, pd = list(src.parameters()), list(dst.parameters())
    if [p.shape for p in ps] != [p.shape for p in pd]:
        raise AssertionError(f"architectures differ: {[tuple(p.shape) for p in ps]} vs {[tuple(p.shape) for p in pd]}")
    with torch.no_grad():
        for a, b in zip(ps, pd):
            b.copy_(a)


def check_identical(spec: Spec) -> float:
    """Max |difference| of the two builds' outputs with copied weights on a small batch (≈ 0 if identical)."""
    g, p = spec.gridseq().eval(), spec.plain().eval()
    copy_weights(g, p)
    data = spec.data(8)
    batch = data.train.batch(torch.arange(8))
    with torch.no_grad():
        a = g(batch.x) if batch.lengths is None else g(batch.x, batch.lengths)
        b = p(batch.x) if batch.lengths is None else p(batch.x, batch.lengths)
    return float((a.reshape(-1) - b.reshape(-1)).abs().max())
