"""`inspect_run`: every picture that applies to a trained run, for one input, into one folder.

    filters.png        first-layer conv filters with their edge scores      (models with a convolution)
    feature_maps.png   the input and the first convolution's outputs        (models with a convolution)
    rnn_trace.png      gates and states of the first recurrent layer        (models with a recurrent layer)
    attention.png      attention weights of each decoded step               (seq2seq with attention, captioners)

The input is `input` (an image file, a .npz/.csv file of sequences, or for text runs the text itself),
or else item `index` of the run's own `split`, rebuilt exactly as `gridseq evaluate` does.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from gridseq.errors import ConfigError, DataError
from gridseq.inspect import extract, plots
from gridseq.models.traits import traits

_SCALE_NOTE = "gates 0 (purple) to 1 (yellow); tanh values and states negative (blue) to positive (red)"


@dataclass
class Inspection:
    """What `inspect_run` wrote.

    Attributes:
        files: the PNGs written, in the order of the table above.
        item: which input was shown, e.g. "test[0]" or the --input given.
        notes: why a picture that might be expected was not drawn (e.g. a seq2seq run without attention).
        edge_scores: the first-layer filters' edge scores (`extract.edge_scores`), when the model has a convolution.
    """

    files: list[Path] = field(default_factory=list)
    item: str = ""
    notes: list[str] = field(default_factory=list)
    edge_scores: list[float] | None = None


def inspect_run(run_dir: str | os.PathLike, out: str | os.PathLike, *, input: str | None = None, split: str = "test",
                index: int = 0, beam: int = 1, layer: str | None = None) -> Inspection:
    """Write the pictures of what the run's model learned to `out`.

    Args:
        run_dir: a run directory written by `gridseq train`.
        out: the folder for the PNGs (created; files of the same names are replaced).
        input: an image file, a .npz/.csv file of sequences (row `index` is shown), or the text for a
            text run; None shows item `index` of the run's `split`. Default: None.
        split: "test", "val" or "train". Default: "test".
        index: which item of the split (or row of the file). Default: 0.
        beam: beam width when decoding for attention. Default: 1 (greedy).
        layer: the recurrent layer to trace, by module name (e.g. "decoder.rnn"); None: the first one
            (seq2seq: the encoder; a captioner's decoder). Default: None.

    Returns:
        an `Inspection` listing the files written.

    Raises:
        ConfigError: the model has nothing to show (no convolution, recurrent layer or attention), or
            matplotlib is missing.
        DataError: the input cannot be read, or index is out of range.
        CheckpointError: run_dir is not a run directory.
    """
    from gridseq.runs import Run

    run = Run.open(run_dir)
    model = run.model
    info = run.info
    batch, item, labels = _item(run, input, split, index)
    name = f"{run.model_name} on {info.name}, {item}"
    out = Path(out)
    result = Inspection(item=item)
    found = False
    if extract.has_conv(model):
        found = True
        filters = extract.conv_filters(model)
        scores = extract.edge_scores(filters)
        result.edge_scores = [round(float(s), 4) for s in scores]
        mean = float(np.nanmean(scores)) if np.isfinite(scores).any() else float("nan")
        title = f"{name}: first-layer filters" + (f", mean edge score {mean:.2f}" if math.isfinite(mean) else "")
        result.files.append(plots.plot_filters(filters, out / "filters.png", scores=scores, title=title))
        maps = extract.feature_maps(model, batch.x, batch.lengths)[0]
        result.files.append(plots.plot_feature_maps(maps, out / "feature_maps.png", image=_display(batch, info),
                                                    title=f"{name}: first-layer feature maps"
                                                          + (" (first frame)" if batch.x.dim() == 5 else "")))
    if extract.has_recurrent(model) or layer is not None:
        found = True
        layer_name, rec = extract.recurrent_layer(model, layer)
        trace = extract.rnn_trace(model, batch.x, batch.lengths, layer=layer_name)
        steps = _steps(trace)
        one = {key: {g: v[0, :steps] for g, v in gates.items()} for key, gates in trace.items()}
        if _in_decoder(layer_name):
            labels_over_time = _words(model, info, batch)[:steps]  # step t produced word t
        else:
            labels_over_time = labels["source"][:steps] if labels.get("source") else None
        kind = {"rnn": "Elman", "lstm": "LSTM", "gru": "GRU"}[rec.mode] + (", bidirectional" if rec.bidirectional else "")
        result.files.append(plots.plot_rnn_trace(one, out / "rnn_trace.png", steps=labels_over_time,
                                                 title=f"{name}: {layer_name} ({kind}) over time\n" + _SCALE_NOTE))
    if traits(model).decodes:
        found = True
        if extract.has_attention(model):
            ids, weights = extract.attention(model, batch.x, batch.lengths, beam=beam)
            result.files.append(_attention_png(model, info, batch, ids[0], weights[0], labels, out,
                                               f"{name}: attention per output step"))
        else:
            result.notes.append("no attention.png: the model was built with attention='none'")
    if not found:
        raise ConfigError(f"{type(model).__name__} has no convolution, recurrent layer or attention, so there is "
                          f"nothing to inspect; train a cnn, fcn, tcn, lstm, gru, rnn or seq2seq model.")
    return result


def _item(run, input: str | None, split: str, index: int):
    """(Batch of one item of `run`'s data or `input`, its description, {"source": token labels} for text)."""
    from gridseq.data.prepare import encode_texts, prepare_inputs

    info = run.info
    if index < 0:
        raise DataError(f"index must be >= 0, got {index}.")
    vocab = _vocab(info, "vocab")
    if input is None:
        chosen = run.reload_data().splits()[split]
        if index >= len(chosen):
            raise DataError(f"the {split} split has {len(chosen)} items, so index {index} is out of range; "
                            f"pass an index from 0 to {len(chosen) - 1}.")
        batch = chosen.batch(slice(index, index + 1))
        item = f"{split}[{index}]"
        if isinstance(chosen.texts, list) and index < len(chosen.texts):
            text = chosen.texts[index]
            item += " " + (repr(text) if len(text) <= 40 else repr(text[:37] + "..."))
    elif info.kind == "tokens":
        batch = encode_texts([input], info.preprocessing)
        item = repr(input) if len(input) <= 40 else repr(input[:37] + "...")
    else:
        if not Path(input).is_file():
            raise DataError(f"--input {input} is not a file; pass an image file or a .npz/.csv file of sequences "
                            f"(or leave it out to show the first {split} item).")
        batch = prepare_inputs([input], info)
        if index >= len(batch):
            raise DataError(f"{input} holds {len(batch)} items, so index {index} is out of range.")
        batch = _row(batch, index)
        item = Path(input).name + (f"[{index}]" if index else "")
    labels = {}
    if vocab is not None:
        n = int(batch.lengths[0]) if batch.lengths is not None else batch.x.shape[1]
        labels["source"] = [vocab.tokens[i] if 0 <= i < len(vocab.tokens) else "?" for i in batch.x[0, :n].tolist()]
    return batch, item, labels


def _row(batch, i: int):
    from gridseq.data.contract import Batch

    lengths = None if batch.lengths is None else batch.lengths[i : i + 1]
    x = batch.x[i : i + 1]
    return Batch(x if lengths is None else x[:, : int(lengths.max())], None, lengths)


def _vocab(info, key: str):
    record = (info.preprocessing or {}).get(key)
    if not isinstance(record, dict) or "tokens" not in record:
        return None
    from gridseq.data.vocab import Vocab

    return Vocab.from_json(record)


def _display(batch, info) -> np.ndarray | None:
    """The item's input as shown next to its feature maps: (C, H, W) images (a video's first frame), (T, F)
    sequences; None for token ids."""
    x = batch.x[0]
    if x.dtype not in (torch.float16, torch.float32, torch.float64):
        return None  # token ids have no picture
    if x.dim() == 4:
        x = x[0]  # video (T, C, H, W): the first frame, whose maps the first convolution shows first
    elif x.dim() == 2 and batch.lengths is not None:
        x = x[: int(batch.lengths[0])]  # (T, F): the valid steps
    return x.cpu().float().numpy()


def _steps(trace) -> int:
    """The valid steps of item 0 (the trace is zero-padded only past them; a batch of one has none)."""
    first = next(iter(next(iter(trace.values())).values()))
    return first.shape[1]


def _in_decoder(layer_name: str) -> bool:
    return layer_name.split(".")[0] == "decoder"


def _words(model, info, batch) -> list[str]:
    """The greedy decoding of the item, one token label per step, <eos> included."""
    from gridseq.data.vocab import EOS

    ids = extract._run(model, lambda: model.generate(batch.x) if batch.lengths is None else model.generate(batch.x, batch.lengths))
    ids = ids[0].tolist()
    steps = ids.index(EOS) + 1 if EOS in ids else len(ids)
    vocab = _vocab(info, "target_vocab") or _vocab(info, "vocab")
    return [vocab.tokens[i] if vocab and 0 <= i < len(vocab.tokens) else str(i) for i in ids[:steps]]


def _attention_png(model, info, batch, ids: np.ndarray, weights: np.ndarray, labels: dict, out: Path, title: str) -> Path:
    """attention.png for one item: a (U, S) matrix for text, maps over the image for a captioner."""
    from gridseq.data.vocab import EOS

    ids = ids.tolist()
    steps = ids.index(EOS) + 1 if EOS in ids else len(ids)
    vocab = _vocab(info, "target_vocab") or _vocab(info, "vocab")
    words = [vocab.tokens[i] if vocab and 0 <= i < len(vocab.tokens) else str(i) for i in ids[:steps]]
    weights = weights[:steps]
    if info.kind == "tokens":
        source = labels.get("source")
        weights = weights[:, : len(source)] if source else weights
        return plots.plot_attention(weights, out / "attention.png", source=source, target=words, title=title)
    grid = _grid(model, weights)
    return plots.plot_image_attention(batch.x[0].cpu().float().numpy(), grid, out / "attention.png", words=words,
                                      title=title)


def _grid(model, weights: np.ndarray) -> np.ndarray:
    """(U, h, w) attention over the captioner's feature map from (U, h, w) or (U, P) weights."""
    if weights.ndim == 3:
        return weights
    positions = weights.shape[-1]
    shape = traits(model).feature_grid
    if shape is not None and math.prod(shape) == positions:
        return weights.reshape(len(weights), *shape)
    side = math.isqrt(positions)
    return weights.reshape(len(weights), side, side) if side * side == positions else weights.reshape(len(weights), 1, positions)
