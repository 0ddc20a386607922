"""gridseq: CNNs, RNNs and CNN→RNN hybrids on PyTorch, trained in one command, with the CNN-vs-RNN
trade-offs measured on your own data.

    >>> import gridseq
    >>> model = gridseq.models.create("lstm", input_size=12, hidden_size=32, num_classes=9)
"""

__version__ = "0.1.0"

from gridseq import errors, models, shapes
from gridseq.io import load, save

__all__ = ["__version__", "errors", "shapes", "models", "nn", "datasets", "save", "load", "fit", "evaluate", "generate", "stream_text", "compare"]


def __getattr__(name):
    # heavier parts load on first use, so `import gridseq` stays fast
    import importlib

    if name in ("nn", "datasets"):
        return importlib.import_module(f"gridseq.{name}")
    if name == "compare":  # the package is callable: gridseq.compare("mnist1d") runs a comparison
        return importlib.import_module("gridseq.compare")
    if name in ("fit", "evaluate"):
        return getattr(importlib.import_module("gridseq.train"), name)
    if name in ("generate", "stream_text"):
        return getattr(importlib.import_module("gridseq.textgen"), name)
    raise AttributeError(f"module 'gridseq' has no attribute {name!r}")
