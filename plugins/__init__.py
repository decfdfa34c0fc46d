"""Plugin host for executable-cf.

Families, selectors and trainers are discovered through Python entry points, so a
third-party distribution adds one with a ``pip install``. This package stays
import-light (it is touched at interpreter start-up by the lm-eval hook): the
registries are imported on first attribute access.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "FAMILIES",
    "PLUGIN_ERRORS",
    "SELECTORS",
    "TRAINERS",
    "DuplicatePluginError",
    "PluginLoadError",
    "PluginRegistry",
    "UnknownPluginError",
]


def __getattr__(name: str) -> Any:
    if name in __all__:
        return getattr(importlib.import_module("plugins.registry"), name)
    raise AttributeError(f"module 'plugins' has no attribute {name!r}")
