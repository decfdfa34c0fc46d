"""Plain JSON data from training logs and lm-eval results (shared by the run record and the evaluation)."""

from __future__ import annotations

import dataclasses
import math
from typing import Any


def jsonable(obj: Any) -> Any:
    """Plain JSON data from logs and lm-eval results (numpy scalars, NaN/inf -> null, other objects -> str)."""
    if hasattr(obj, "item") and callable(obj.item) and getattr(obj, "shape", None) == ():
        obj = obj.item()  # numpy / torch scalars
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (set, frozenset)):
        return [jsonable(v) for v in sorted(obj, key=repr)]
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):  # NaN (a reward not applicable) -> null
        return None
    if dataclasses.is_dataclass(obj):
        return jsonable(dataclasses.asdict(obj))
    if isinstance(obj, (str, int, float, bool)) or obj is None:
        return obj
    return str(obj)
