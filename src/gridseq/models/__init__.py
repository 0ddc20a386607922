"""Model families, each a plain torch.nn.Module, built by name through the registry.

    >>> from gridseq import models
    >>> "lstm" in models.names()
    True
"""

import importlib
import pkgutil

from gridseq.models.registry import ModelEntry, build_config, create, create_for, entry, names, register

# every family module registers its names on import
for _m in pkgutil.iter_modules(__path__):
    if _m.name != "registry" and not _m.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_m.name}")

__all__ = ["ModelEntry", "build_config", "create", "create_for", "entry", "names", "register"]
