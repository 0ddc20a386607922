"""PNG pictures of the arrays `gridseq.inspect.extract` returns, drawn with matplotlib (the `plot` extra).

Every figure has an exact, predictable pixel size (no tight bounding box), written atomically:

    picture                          width × height in pixels
    plot_filters(n filters)          max(384, 96·cols) × (96·rows + 48), cols = min(8, n), rows = ⌈n / cols⌉ (n ≤ 64 shown)
    plot_feature_maps 2D (C maps)    the same grid over 1 + min(C, 63) cells (the input comes first)
    plot_feature_maps 1D             1024 × 528
    plot_rnn_trace                   max(768, 512·columns) × (64 + 128·rows + 32); a column per layer/direction, a row per gate
    plot_attention (U × S)           max(448, 160 + 24·min(S, 48)) × max(320, 128 + 24·min(U, 48))
    plot_image_attention (U words)   max(384, 160·cols) × (160·rows + 48), cols = min(6, n), n = 1 + min(U, 23)

`*_size` functions return those sizes. Without matplotlib every plot raises ConfigError with the pip
command that installs it.
"""

from __future__ import annotations

import io
import math
import os
from pathlib import Path

import numpy as np

from gridseq._atomic import atomic_write_bytes
from gridseq.errors import ConfigError

DPI = 128  # any integer number of pixels / 128 is exact in binary, so the sizes above are exact
CELL, HEAD, COLUMNS, MAX_CELLS = 96, 48, 8, 64
PANEL_W, PANEL_H, FOOT, TRACE_HEAD = 512, 128, 32, 64
ATTN_CELL, ATTN_MAX = 24, 48
IMAGE_CELL, IMAGE_COLUMNS, MAX_WORDS = 160, 6, 23
SIGMOID_GATES = {"i", "f", "o", "r", "z"}  # in [0, 1]
TANH_VALUES = {"g", "n"}  # in [-1, 1]; h too, except for a relu Elman RNN


def grid_size(cells: int, cell: int = CELL, columns: int = COLUMNS) -> tuple[int, int]:
    """(width, height) in pixels of a grid of `cells` square cells under a title band."""
    cols = min(columns, max(cells, 1))
    rows = math.ceil(max(cells, 1) / cols)
    return max(384, cols * cell), rows * cell + HEAD


def filters_size(n: int) -> tuple[int, int]:
    """Pixel size of `plot_filters` for n filters."""
    return grid_size(min(n, MAX_CELLS))


def feature_maps_size(maps_shape: tuple[int, ...]) -> tuple[int, int]:
    """Pixel size of `plot_feature_maps` for maps of shape (C, H, W) or (C, T)."""
    return grid_size(1 + min(maps_shape[0], MAX_CELLS - 1)) if len(maps_shape) == 3 else (1024, HEAD + 160 + 320)


def rnn_trace_size(columns: int, rows: int) -> tuple[int, int]:
    """Pixel size of `plot_rnn_trace` with `columns` layer/directions and `rows` gates each."""
    return max(768, PANEL_W * columns), TRACE_HEAD + PANEL_H * rows + FOOT


def attention_size(target_steps: int, source_steps: int) -> tuple[int, int]:
    """Pixel size of `plot_attention` for a (U, S) weight matrix."""
    return (max(448, 160 + ATTN_CELL * min(source_steps, ATTN_MAX)),
            max(320, 128 + ATTN_CELL * min(target_steps, ATTN_MAX)))


def image_attention_size(words: int) -> tuple[int, int]:
    """Pixel size of `plot_image_attention` for U words."""
    return grid_size(1 + min(words, MAX_WORDS), IMAGE_CELL, IMAGE_COLUMNS)


def plot_filters(filters: np.ndarray, path: str | os.PathLike, *, scores: np.ndarray | None = None,
                 title: str = "first-layer filters") -> Path:
    """A grid of the first convolution's filters.

    2D filters with 3 input channels are shown in colour (each scaled to [0, 1]); others are averaged over
    their input channels and drawn blue (negative) to red (positive), each on its own symmetric scale.
    1D filters are (C_in, k) heat maps. `scores` (e.g. `edge_scores`) label the cells.

    Args:
        filters: (C_out, C_in, kh, kw) or (C_out, C_in, k).
        path: the PNG to write.
        scores: (C_out,) numbers shown above each filter, or None.
        title: the figure title.

    Returns:
        the path written, of size `filters_size(C_out)`.
    """
    plt = _pyplot()
    f = np.asarray(filters, dtype=np.float32)
    if f.ndim not in (3, 4):
        raise ConfigError(f"expected filters of shape (C_out, C_in, k) or (C_out, C_in, kh, kw), got {f.shape}.")
    n = min(len(f), MAX_CELLS)
    shown = f"first {n} of {len(f)}" if n < len(f) else f"{len(f)}"
    fig = _figure(plt, filters_size(len(f)), f"{title} ({shown}, {'x'.join(map(str, f.shape[2:]))}, {f.shape[1]} in)")
    for k, ax in enumerate(_grid_axes(fig, n, filters_size(len(f)), CELL, COLUMNS, label_px=14 if scores is not None else 0)):
        w = f[k]
        if w.ndim == 3 and w.shape[0] == 3:
            rgb = w.transpose(1, 2, 0)
            ax.imshow((rgb - rgb.min()) / (np.ptp(rgb) or 1.0), interpolation="nearest")
        else:
            img = w.mean(axis=0) if w.ndim == 3 else w  # (kh, kw), or (C_in, k) for 1D
            v = float(np.abs(img).max()) or 1.0
            ax.imshow(img, cmap="RdBu_r", vmin=-v, vmax=v, interpolation="nearest", aspect="auto" if w.ndim == 2 else "equal")
        if scores is not None and np.isfinite(scores[k]):
            ax.set_title(f"edge {scores[k]:.2f}", fontsize=6, pad=2)
    return _save(plt, fig, path)


def plot_feature_maps(maps: np.ndarray, path: str | os.PathLike, *, image: np.ndarray | None = None,
                      title: str = "first-layer feature maps") -> Path:
    """One item's feature maps: a grid of (H, W) maps after the input image, or for 1D convolutions the
    input sequence over a (C, T) heat map.

    Args:
        maps: (C, H, W) or (C, T) for one item.
        path: the PNG to write.
        image: the item's input, (C_in, H, W) image or (T, F) sequence, drawn first; or None.
        title: the figure title.

    Returns:
        the path written, of size `feature_maps_size(maps.shape)`.
    """
    plt = _pyplot()
    maps = np.asarray(maps, dtype=np.float32)
    if maps.ndim not in (2, 3):
        raise ConfigError(f"expected the feature maps of one item, (C, H, W) or (C, T), got {maps.shape}.")
    size = feature_maps_size(maps.shape)
    fig = _figure(plt, size, f"{title} ({maps.shape[0]} maps of {'x'.join(map(str, maps.shape[1:]))})")
    if maps.ndim == 3:
        n = 1 + min(len(maps), MAX_CELLS - 1)
        for k, ax in enumerate(_grid_axes(fig, n, size, CELL, COLUMNS, label_px=12)):
            if k == 0:
                if image is not None:
                    _show_image(ax, np.asarray(image, dtype=np.float32))
                ax.set_title("input", fontsize=6, pad=2)
            else:
                ax.imshow(maps[k - 1], cmap="viridis", interpolation="nearest")
                ax.set_title(f"map {k - 1}", fontsize=6, pad=2)
        return _save(plt, fig, path)
    width, height = size
    top = fig.add_axes(_rect(56, HEAD + 8, width - 72, 160 - 32, size))
    if image is not None:
        seq = np.asarray(image, dtype=np.float32)
        top.plot(seq.reshape(len(seq), -1), lw=1)
        top.set_xlim(-0.5, len(seq) - 0.5)
    top.set_ylabel("input", fontsize=7)
    top.tick_params(labelsize=6)
    bottom = fig.add_axes(_rect(56, HEAD + 160, width - 72, 320 - 32, size))
    bottom.imshow(maps, cmap="viridis", aspect="auto", interpolation="nearest")
    bottom.set_ylabel("channel", fontsize=7)
    bottom.set_xlabel("step", fontsize=7)
    bottom.tick_params(labelsize=6)
    return _save(plt, fig, path)


def plot_rnn_trace(trace: dict[str, dict[str, np.ndarray]], path: str | os.PathLike, *,
                   steps: list[str] | None = None, title: str = "recurrent layer over time") -> Path:
    """Heat maps of every gate and state of one item over time: a column per layer and direction, a row
    per gate (units down, steps across). Sigmoid gates use 0..1 (viridis), tanh values -1..1 and the
    cell state / pre-activation their own symmetric range (blue negative, red positive).

    Args:
        trace: {"layer0/forward": {"i": (T, H), ...}} for one item (`rnn_trace` output indexed at one item).
        path: the PNG to write.
        steps: T labels for the time axis (characters, words), shown when T <= 60; or None.
        title: the figure title.

    Returns:
        the path written, of size `rnn_trace_size(len(trace), gates)`.
    """
    plt = _pyplot()
    if not trace:
        raise ConfigError("the trace is empty: expected {'layer0/forward': {'h': (T, H), ...}}.")
    keys = list(trace)
    names = list(trace[keys[0]])
    size = rnn_trace_size(len(keys), len(names))
    fig = _figure(plt, size, title, head=TRACE_HEAD - 16)
    panel_w = size[0] // len(keys)
    for col, key in enumerate(keys):
        for row, name in enumerate(names):
            values = np.asarray(trace[key][name], dtype=np.float32)  # (T, H)
            if values.ndim != 2:
                raise ConfigError(f"trace[{key!r}][{name!r}] must be (T, H) for one item, got {values.shape}.")
            ax = fig.add_axes(_rect(col * panel_w + 40, TRACE_HEAD + row * PANEL_H + 4, panel_w - 52, PANEL_H - 12, size))
            ax.imshow(values.T, aspect="auto", interpolation="nearest", **_gate_scale(name, values))
            ax.set_yticks([])
            ax.set_ylabel(name, fontsize=8, rotation=0, labelpad=12, va="center")
            if row == 0:
                ax.set_title(f"{key} (H={values.shape[1]}, T={values.shape[0]})", fontsize=7, pad=3)
            last = row == len(names) - 1
            if steps is not None and len(steps) == values.shape[0] and values.shape[0] <= 60 and last:
                ax.set_xticks(range(len(steps)), [_label(s) for s in steps], fontsize=6)
            elif last:
                ax.tick_params(labelsize=6)
            else:
                ax.set_xticks([])
    return _save(plt, fig, path)


def plot_attention(weights: np.ndarray, path: str | os.PathLike, *, source: list[str] | None = None,
                   target: list[str] | None = None, title: str = "attention") -> Path:
    """The (U, S) attention matrix of one item: output steps down, source positions across.

    Args:
        weights: (U, S), each row summing to 1.
        path: the PNG to write.
        source: S labels of the source positions, or None.
        target: U labels of the output steps, or None.
        title: the figure title.

    Returns:
        the path written, of size `attention_size(U, S)`.
    """
    plt = _pyplot()
    w = np.asarray(weights, dtype=np.float32)
    if w.ndim != 2:
        raise ConfigError(f"expected the attention weights of one item, (U, S), got {w.shape}.")
    size = attention_size(*w.shape)
    width, height = size
    fig = _figure(plt, size, title)
    ax = fig.add_axes(_rect(128, HEAD, width - 160, height - HEAD - 80, size))
    ax.imshow(w, cmap="viridis", vmin=0.0, vmax=max(float(w.max()), 1e-6), aspect="auto", interpolation="nearest")
    if source is not None and len(source) == w.shape[1] and w.shape[1] <= ATTN_MAX:
        ax.set_xticks(range(w.shape[1]), [_label(s) for s in source], fontsize=7)
    if target is not None and len(target) == w.shape[0] and w.shape[0] <= ATTN_MAX:
        ax.set_yticks(range(w.shape[0]), [_label(s) for s in target], fontsize=7)
    ax.set_xlabel("source", fontsize=8)
    ax.set_ylabel("output", fontsize=8)
    return _save(plt, fig, path)


def plot_image_attention(image: np.ndarray, weights: np.ndarray, path: str | os.PathLike, *,
                         words: list[str] | None = None, title: str = "attention over the image") -> Path:
    """Where a captioner looks for each word: the image, then one cell per word with its attention map
    (a (h, w) grid over the encoder's feature map) stretched over the image.

    Args:
        image: (C, H, W) input image.
        weights: (U, h, w) attention per word.
        path: the PNG to write.
        words: U labels, or None.
        title: the figure title.

    Returns:
        the path written, of size `image_attention_size(U)`.
    """
    plt = _pyplot()
    w = np.asarray(weights, dtype=np.float32)
    if w.ndim != 3:
        raise ConfigError(f"expected attention weights of one item over a grid, (U, h, w), got {w.shape}.")
    img = np.asarray(image, dtype=np.float32)
    n = 1 + min(len(w), MAX_WORDS)
    size = image_attention_size(len(w))
    fig = _figure(plt, size, title)
    extent = (-0.5, img.shape[-1] - 0.5, img.shape[-2] - 0.5, -0.5)
    for k, ax in enumerate(_grid_axes(fig, n, size, IMAGE_CELL, IMAGE_COLUMNS, label_px=14)):
        _show_image(ax, img, gray=k > 0)
        if k == 0:
            ax.set_title("input", fontsize=7, pad=2)
            continue
        ax.imshow(w[k - 1], cmap="magma", alpha=0.6, extent=extent, interpolation="bilinear")
        ax.set_title(_label(words[k - 1]) if words and k - 1 < len(words) else f"step {k}", fontsize=7, pad=2)
    return _save(plt, fig, path)


# ---- helpers ---------------------------------------------------------------------------------------

def _pyplot():
    try:
        import matplotlib
    except ImportError:
        raise ConfigError("the pictures need matplotlib, which is not installed: pip install 'gridseq[plot]'.") from None
    matplotlib.use("Agg", force=True)  # files only: no display needed
    import matplotlib.pyplot as plt

    return plt


def _figure(plt, size: tuple[int, int], title: str, head: int = HEAD):
    """A figure of exactly `size` pixels with `title` centred in its top `head` pixels (a second line,
    after a newline, is smaller)."""
    fig = plt.figure(figsize=(size[0] / DPI, size[1] / DPI), dpi=DPI)
    first, _, second = title.partition("\n")
    if second:
        fig.text(0.5, 1 - (head / 3) / size[1], first, ha="center", va="center", fontsize=8)
        fig.text(0.5, 1 - (2 * head / 3 + 2) / size[1], second, ha="center", va="center", fontsize=6, color="#444444")
    else:
        fig.text(0.5, 1 - (head / 2) / size[1], first, ha="center", va="center", fontsize=8)
    return fig


def _rect(left: float, top: float, width: float, height: float, size: tuple[int, int]) -> list[float]:
    """A pixel box (from the top-left corner) as matplotlib's [left, bottom, width, height] fractions."""
    fw, fh = size
    return [left / fw, 1 - (top + height) / fh, width / fw, height / fh]


def _grid_axes(fig, n: int, size: tuple[int, int], cell: int, columns: int, label_px: int = 0):
    """n image axes in a grid of square cells under the title band, each with room for a small label."""
    cols = min(columns, max(n, 1))
    pad = 4
    for k in range(n):
        r, c = divmod(k, cols)
        ax = fig.add_axes(_rect(c * cell + pad, HEAD + r * cell + pad + label_px, cell - 2 * pad,
                                cell - 2 * pad - label_px, size))
        ax.set_xticks([])
        ax.set_yticks([])
        yield ax


def _show_image(ax, img: np.ndarray, gray: bool = False) -> None:
    """A (C, H, W) image (or a (T, F) sequence as a heat map) scaled to [0, 1]."""
    if img.ndim == 3 and img.shape[0] == 3 and not gray:
        rgb = img.transpose(1, 2, 0)
        ax.imshow((rgb - rgb.min()) / (np.ptp(rgb) or 1.0), interpolation="nearest")
        return
    plane = img.mean(axis=0) if img.ndim == 3 else img.T
    ax.imshow(plane, cmap="gray", interpolation="nearest", aspect="auto" if img.ndim == 2 else "equal")


def _gate_scale(name: str, values: np.ndarray) -> dict:
    if name in SIGMOID_GATES:
        return {"cmap": "viridis", "vmin": 0.0, "vmax": 1.0}
    v = 1.0 if name in TANH_VALUES or (name == "h" and float(np.abs(values).max()) <= 1.0) else float(np.abs(values).max()) or 1.0
    return {"cmap": "RdBu_r", "vmin": -v, "vmax": v}


def _label(token: str) -> str:
    """A token as a tick label: visible spaces, short."""
    token = str(token).replace(" ", "␣").replace("\n", "⏎")
    return token if len(token) <= 10 else token[:9] + "…"


def _save(plt, fig, path) -> Path:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI)  # no bbox_inches="tight": the size stays what *_size says
    plt.close(fig)
    return atomic_write_bytes(path, buffer.getvalue())
