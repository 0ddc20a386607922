"""Pictures of what a network learned: first-layer conv filters and feature maps, recurrent gates over
time, attention weights. `gridseq inspect RUN_DIR` draws them all for a trained run.

Arrays (NumPy, batch first; see `gridseq.inspect.extract`):

    >>> import torch
    >>> from gridseq.models.rnn import RNNModel, RNNConfig
    >>> m = RNNModel(RNNConfig(num_classes=3, input_size=4, hidden_size=5, mode="gru"))
    >>> rnn_trace(m, torch.randn(2, 7, 4))["layer0/forward"]["z"].shape
    (2, 7, 5)

PNGs (matplotlib, the `plot` extra; exact pixel sizes, written atomically; see `gridseq.inspect.plots`):
`plot_filters`, `plot_feature_maps`, `plot_rnn_trace`, `plot_attention`, `plot_image_attention`.
A whole run: `inspect_run(run_dir, out)`.
"""

from gridseq.inspect.extract import attention, conv_filters, edge_scores, feature_maps, rnn_trace
from gridseq.inspect.plots import plot_attention, plot_feature_maps, plot_filters, plot_image_attention, plot_rnn_trace
from gridseq.inspect.run import Inspection, inspect_run

__all__ = [
    "attention", "conv_filters", "edge_scores", "feature_maps", "rnn_trace",
    "plot_attention", "plot_feature_maps", "plot_filters", "plot_image_attention", "plot_rnn_trace",
    "Inspection", "inspect_run",
]
