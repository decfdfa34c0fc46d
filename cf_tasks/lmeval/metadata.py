"""Where each task-metadata value came from, and which keys a loader does not know.

lm-eval calls a ``custom_dataset`` loader with one merged dict: the YAML's own
``metadata:``, then the run's ``--model_args`` and ``--metadata`` (the latter
wins), plus ``version`` and ``config_source`` (the YAML path). Merged, a typo
(``{"levle": "hard"}``) vanishes silently, an error about a bad ``--metadata``
value blames the shipped YAML, and a model argument with a task knob's name
(vLLM's ``seed=0``) silently changes which items are generated.

:class:`TaskMetadata` undoes the merge as far as the facts allow. Values equal
to the YAML's own are the YAML's; the start-up hook (``plugins.lmeval_hook``)
adds the names of the keys that came from ``--model_args`` under
:data:`MODEL_ARGS_KEY`, and those never reach a loader; everything else came
from ``--metadata`` (or a ``TaskManager(metadata=...)`` in Python). Unknown keys
are warned about once per process, naming the key, its source and the known keys.
"""

from __future__ import annotations

import difflib
import logging
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

from plugins.lmeval_hook import MODEL_ARGS_KEY

log = logging.getLogger("cf_tasks.lmeval")

LMEVAL_KEYS = frozenset({"version", "config_source", "release_name"})
"""Keys lm-eval or our shipped YAMLs put in the metadata that no loader reads as a knob."""

_warned: set[tuple[str, str]] = set()


class KnobError(ValueError):
    """A bad value of one metadata key; the loader turns it into an error naming the key's source."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(message)
        self.key, self.message = key, message


def _yaml_metadata(path: str | None) -> dict[str, Any]:
    """The ``metadata:`` mapping written in a task YAML itself ({} when unreadable); ``!tags`` are ignored."""
    if not path:
        return {}
    import yaml

    class _Loader(yaml.SafeLoader):
        pass

    _Loader.add_multi_constructor("!", lambda loader, suffix, node: None)
    try:
        with open(path, encoding="utf-8") as handle:
            meta = (yaml.load(handle, Loader=_Loader) or {}).get("metadata")  # noqa: S506 - SafeLoader subclass
    except (OSError, yaml.YAMLError, AttributeError):
        return {}
    return dict(meta) if isinstance(meta, Mapping) else {}


@dataclass
class TaskMetadata:
    """The knobs a loader uses, and the source of each key (for error messages)."""

    values: dict[str, Any]
    origin: dict[str, str] = field(default_factory=dict)
    source: str = "<task metadata>"

    def where(self, key: str) -> str:
        return self.origin.get(key, "--metadata")

    def error(self, exc: KnobError) -> str:
        """The message of a bad value: the task YAML, the key, where the value came from, the problem."""
        return f"{self.source}: task metadata {exc.key!r} (from {self.where(exc.key)}): {exc.message}"


def split_metadata(loader: str, kwargs: Mapping[str, Any], known: Iterable[str]) -> TaskMetadata:
    """The keys ``loader`` knows, with their sources; model arguments dropped, unknown keys warned about."""
    known = set(known)
    kwargs = dict(kwargs)
    source = kwargs.get("config_source") or "<task metadata>"
    marker = kwargs.pop(MODEL_ARGS_KEY, None)
    model_keys = set(marker or ())
    own = _yaml_metadata(kwargs.get("config_source"))
    values: dict[str, Any] = {}
    origin: dict[str, str] = {}
    for key, value in kwargs.items():
        if key in model_keys:
            if key in known:
                _warn_once(loader, f"model:{key}",
                           f"{key}={value!r} in --model_args is the model's argument, not the task's: lm-eval merges "
                           f"model arguments into task metadata, and executable-cf ignores them (set the task's "
                           f"{key!r} with --metadata '{{\"{key}\": ...}}')")
            continue
        origin[key] = source if key in own and own[key] == value else "--metadata"
        if key in known:
            values[key] = value
        elif key not in LMEVAL_KEYS:
            close = difflib.get_close_matches(key, known, n=1)
            if marker is None and not close:
                continue  # without the hook's marker a stray key may be a model argument: only typos are reported
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            _warn_once(loader, key, f"task metadata key {key!r} (from {origin[key]}) is not used by {loader}{hint}; "
                                    f"its keys: {', '.join(sorted(known))}")
    return TaskMetadata(values, origin, source)


def _warn_once(loader: str, key: str, message: str) -> None:
    if (loader, key) not in _warned:
        _warned.add((loader, key))
        log.warning("%s", message)


def reset_warnings() -> None:
    """Forget which warnings were given (tests)."""
    _warned.clear()
