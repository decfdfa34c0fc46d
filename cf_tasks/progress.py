"""Progress bars for long work (house style: long work shows a progress bar).

Every bar of the toolkit comes from :func:`progress_bar`, so "off" means the same
everywhere: a disabled tqdm bar, whose ``update``/``set_postfix``/``close`` do
nothing, instead of ``None`` and an ``if bar is not None`` at every use.
"""

from __future__ import annotations

from typing import Any


def progress_bar(enabled: bool = True, **tqdm_kwargs: Any) -> Any:
    """A ``tqdm.auto`` bar (``total=``, ``desc=``, ``unit=``, ...), silent when ``enabled`` is False.

    tqdm is imported here, on first use, so importing a module that shows bars stays cheap.
    """
    from tqdm.auto import tqdm

    return tqdm(disable=not enabled, **tqdm_kwargs)
