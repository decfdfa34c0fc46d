"""Entry-point registries with lazy loading.

Why entry points: our own families, selectors and trainers register exactly as a
third party's would (``setup.cfg`` ``[options.entry_points]``), so there is one
discovery path to test. Entries are kept as ``importlib.metadata.EntryPoint``
placeholders and imported on first use; a plugin whose import fails breaks only
the runs that ask for it, and the error names the plugin and its distribution.
"""

from __future__ import annotations

import difflib
import importlib.metadata as md
import threading
from dataclasses import dataclass
from typing import Any, Callable


class UnknownPluginError(KeyError):
    """Raised for a name that no installed distribution provides."""

    def __str__(self) -> str:  # KeyError quotes its argument; keep the message readable
        return str(self.args[0])


class DuplicatePluginError(RuntimeError):
    """Two distributions declare the same name in one group."""


class PluginLoadError(ImportError):
    """A plugin's entry point could not be imported or did not validate."""


# What a command-line tool reports as "error: ..." (exit 2) instead of a traceback.
PLUGIN_ERRORS = (UnknownPluginError, PluginLoadError, DuplicatePluginError)


@dataclass(frozen=True)
class PluginSpec:
    """Where a plugin comes from, before it is imported."""

    name: str
    value: str  # "module:attr"
    distribution: str

    @property
    def module(self) -> str:
        return self.value.split(":", 1)[0]


def _distribution_name(ep: md.EntryPoint) -> str:
    dist = getattr(ep, "dist", None)
    if dist is None:
        return "<unknown distribution>"
    try:
        return dist.metadata["Name"] or dist.name
    except Exception:  # pragma: no cover - exotic metadata backends
        return getattr(dist, "name", "<unknown distribution>")


class PluginRegistry:
    """One entry-point group, loaded lazily.

    ``validate`` is called on every loaded object, so a plugin that imports but
    does not implement the interface fails with a message naming it.
    """

    def __init__(self, group: str, kind: str, validate: Callable[[str, Any], None] | None = None,
                 plural: str | None = None):
        self.group = group
        self.kind = kind
        self.plural = plural or f"{kind}s"
        self._validate = validate
        self._specs: dict[str, PluginSpec] | None = None
        self._loaded: dict[str, Any] = {}
        self._extra: dict[str, Any] = {}
        self._lock = threading.Lock()

    # -- discovery -----------------------------------------------------------
    def _discover(self) -> dict[str, PluginSpec]:
        # Mark the group discovered only after a successful scan (lm-eval #4203:
        # a transient failure must not disable discovery for the whole process).
        if self._specs is not None:
            return self._specs
        specs: dict[str, PluginSpec] = {}
        seen_values: dict[str, str] = {}
        for ep in md.entry_points(group=self.group):
            spec = PluginSpec(ep.name, ep.value, _distribution_name(ep))
            if ep.name in specs:
                previous = specs[ep.name]
                if previous.value == spec.value and previous.distribution == spec.distribution:
                    continue  # the same distribution seen twice on sys.path
                raise DuplicatePluginError(
                    f"{self.kind} plugin name {ep.name!r} (entry-point group {self.group!r}) is declared by "
                    f"both {previous.distribution!r} ({previous.value}) and {spec.distribution!r} ({spec.value}); "
                    "uninstall one of them or rename the entry point"
                )
            specs[ep.name] = spec
            seen_values[ep.name] = ep.value
        self._specs = specs
        return specs

    def refresh(self) -> None:
        """Forget what was discovered (after installing a plugin in-process)."""
        with self._lock:
            self._specs = None
            self._loaded.clear()

    # -- lookup --------------------------------------------------------------
    def names(self) -> list[str]:
        return sorted(set(self._discover()) | set(self._extra))

    def specs(self) -> dict[str, PluginSpec]:
        return dict(self._discover())

    def __contains__(self, name: str) -> bool:
        return name in self._extra or name in self._discover()

    def get(self, name: str) -> Any:
        if name in self._extra:
            return self._extra[name]
        with self._lock:
            if name in self._loaded:
                return self._loaded[name]
            specs = self._discover()
            if name not in specs:
                raise UnknownPluginError(self._unknown_message(name))
            spec = specs[name]
            try:
                obj = md.EntryPoint(spec.name, spec.value, self.group).load()
            except (Exception, SystemExit) as exc:  # a module that exits at import (argparse at top level)
                # must not end the caller's process: `cf-tasks families` lists the other plugins
                raise PluginLoadError(
                    f"{self.kind} plugin {name!r} from distribution {spec.distribution!r} failed to import "
                    f"({spec.value}): {type(exc).__name__}: {exc}"
                ) from exc
            if self._validate is not None:
                try:
                    self._validate(name, obj)
                except Exception as exc:
                    raise PluginLoadError(
                        f"{self.kind} plugin {name!r} from distribution {spec.distribution!r} ({spec.value}) "
                        f"is invalid: {exc}"
                    ) from exc
            self._loaded[name] = obj
            return obj

    def load_all(self) -> tuple[dict[str, Any], dict[str, Exception]]:
        """Load every plugin; one broken plugin does not stop the others."""
        ok: dict[str, Any] = {}
        failed: dict[str, Exception] = {}
        for name in self.names():
            try:
                ok[name] = self.get(name)
            except (PluginLoadError, UnknownPluginError) as exc:
                failed[name] = exc
        return ok, failed

    def register(self, name: str, obj: Any) -> None:
        """Register an object in-process (tests, notebooks). Entry points are the normal route."""
        if name in self:
            raise DuplicatePluginError(f"{self.kind} plugin {name!r} is already registered")
        if self._validate is not None:
            self._validate(name, obj)
        self._extra[name] = obj

    def unregister(self, name: str) -> None:
        self._extra.pop(name, None)

    def _unknown_message(self, name: str) -> str:
        installed = self.names()
        close = difflib.get_close_matches(name, installed, n=3)
        hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
        listing = ", ".join(installed) if installed else "none"
        return (
            f"unknown {self.kind} {name!r}.{hint} Installed {self.plural}: {listing}. "
            f"Plugins register under the entry-point group {self.group!r}."
        )


def _require(*attrs: str) -> Callable[[str, Any], None]:
    def check(name: str, obj: Any) -> None:
        missing = [a for a in attrs if not hasattr(obj, a)]
        if missing:
            raise TypeError(f"object {obj!r} lacks required attribute(s) {', '.join(missing)}")

    return check


FAMILIES = PluginRegistry(
    "executable_cf.families", "family", _require("name", "config_cls", "levels", "generate_items"), "families"
)
SELECTORS = PluginRegistry("executable_cf.selectors", "selector", _require("name", "config_cls", "select"))
TRAINERS = PluginRegistry("executable_cf.trainers", "trainer", _require("name", "config_cls", "train"))
