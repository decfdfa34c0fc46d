"""Zero-flag lm-eval integration: our tasks and reference models without ``--include_path``.

lm-eval 0.4.13 reads no entry points. Upstream PR #4015 proposes the
``lm_eval.tasks`` group (a package whose folder is scanned for task YAMLs) and
PR #4013 the ``lm_eval.models`` group. We declare both groups and, until
lm-eval reads them itself, this hook feeds them in:

* when ``lm_eval.tasks.manager`` is imported, ``TaskManager.__init__`` is wrapped
  so that the folders of the ``lm_eval.tasks`` entry points come *before* the
  user's ``include_path`` (precedence: built-ins < plugins < ``--include_path``);
* when ``lm_eval.models`` is imported, the ``lm_eval.models`` entry points are
  added to lm-eval's model registry as lazy placeholders.

Both patches are no-ops once lm-eval handles the groups (a
``discover_plugin_task_paths`` function in the manager; a name already in the
registry). Two more keep results honest:

* lm-eval merges ``--model_args`` into every task's metadata, so a model's
  ``seed=0`` would reach our loaders as the task's seed. ``EvaluatorConfig`` (the
  CLI) and ``simple_evaluate`` are wrapped to record which keys came from the
  model arguments (:data:`MODEL_ARGS_KEY`); ``cf_tasks.lmeval.metadata`` drops them.
* a plugin model without ``pretrained=``-style arguments got a random output
  folder name; it now gets its registry name (``runs/oracle/cf_oracle/``).

The hook is installed from a ``.pth`` file at interpreter start, so
it must be cheap and must never raise: :func:`install` only puts a finder on
``sys.meta_path``; everything else happens when lm-eval is imported.
"""

from __future__ import annotations

import sys

TASKS_GROUP = "lm_eval.tasks"
MODELS_GROUP = "lm_eval.models"
_PATCHED_FLAG = "__executable_cf_patched__"
MODEL_ARGS_KEY = "executable_cf_model_args"
"""Task-metadata key listing the keys lm-eval merged in from ``--model_args`` (read by ``cf_tasks.lmeval.metadata``)."""


def plugin_task_paths() -> list[str]:
    """Folders named by the ``lm_eval.tasks`` entry points (broken entries are skipped)."""
    import importlib.metadata as md
    import importlib.util
    from pathlib import Path

    paths: list[str] = []
    for ep in sorted(md.entry_points(group=TASKS_GROUP), key=lambda e: e.name):
        try:
            spec = importlib.util.find_spec(ep.value.split(":", 1)[0])
        except Exception:
            continue
        if spec is None:
            continue
        if spec.submodule_search_locations:
            folder = list(spec.submodule_search_locations)[0]
        elif spec.origin:
            folder = str(Path(spec.origin).parent)
        else:
            continue
        if folder not in paths:
            paths.append(folder)
    return paths


def _wrap(owner, name: str, make):
    """Replace ``owner.name`` by ``make(original)`` once; nothing when lm-eval has no such object."""
    if owner is None:
        return
    original = getattr(owner, name, None)
    if original is None or getattr(original, _PATCHED_FLAG, False):
        return
    wrapper = make(original)
    setattr(wrapper, _PATCHED_FLAG, True)
    setattr(owner, name, wrapper)


def patch_task_manager(module) -> None:
    if hasattr(module, "discover_plugin_task_paths"):
        return  # upstream reads the lm_eval.tasks group itself
    import functools
    import inspect

    def make(original):
        signature = inspect.signature(original)

        @functools.wraps(original)
        def __init__(self, *args, **kwargs):
            bound = signature.bind(self, *args, **kwargs)
            user = bound.arguments.get("include_path")
            if user is None:
                user_paths = []
            elif isinstance(user, (list, tuple)):
                user_paths = list(user)
            else:
                user_paths = [user]
            try:
                plugin_paths = plugin_task_paths()
            except Exception:  # a broken metadata backend must not break lm-eval
                plugin_paths = []
            bound.arguments["include_path"] = plugin_paths + user_paths or None
            return original(*bound.args, **bound.kwargs)
        return __init__

    _wrap(getattr(module, "TaskManager", None), "__init__", make)


def register_plugin_models(module=None) -> None:
    import importlib.metadata as md

    from lm_eval.api.registry import model_registry

    for ep in md.entry_points(group=MODELS_GROUP):
        if ep.name not in model_registry:
            model_registry.register(ep.name, target=ep.value.replace(" ", ""))


def _model_arg_keys(model_args, metadata) -> list[str]:
    """Keys of ``model_args`` (a dict or lm-eval's ``k=v,...`` string) that ``metadata`` does not override."""
    if isinstance(model_args, str):
        from lm_eval.utils import simple_parse_args_string

        model_args = simple_parse_args_string(model_args)
    if not isinstance(model_args, dict):
        return []
    return sorted(set(model_args) - set(metadata or {}))


def patch_evaluator_config(module) -> None:
    """The CLI merges ``--model_args`` into task metadata: record which keys came from there."""
    import functools

    def make(original):
        @functools.wraps(original)
        def _process_arguments(self, *args, **kwargs):
            keys = _model_arg_keys(self.model_args, self.metadata)
            out = original(self, *args, **kwargs)
            if keys and isinstance(self.metadata, dict):
                self.metadata[MODEL_ARGS_KEY] = keys
            return out
        return _process_arguments

    _wrap(getattr(module, "EvaluatorConfig", None), "_process_arguments", make)


def patch_simple_evaluate(module) -> None:
    """``simple_evaluate(model_args=...)`` merges them into task metadata too: record which keys."""
    import functools
    import inspect

    def make(original):
        signature = inspect.signature(original)

        @functools.wraps(original)
        def simple_evaluate(*args, **kwargs):
            bound = signature.bind(*args, **kwargs)
            if bound.arguments.get("task_manager") is None:
                metadata = bound.arguments.get("metadata")
                keys = _model_arg_keys(bound.arguments.get("model_args"), metadata)
                if keys:
                    bound.arguments["metadata"] = {**(metadata or {}), MODEL_ARGS_KEY: keys}
            return original(*bound.args, **bound.kwargs)
        return simple_evaluate

    _wrap(module, "simple_evaluate", make)


def patch_tracker_model_name(module) -> None:
    """Output folders of plugin models get the model's name (``runs/x/cf_oracle/``), not a random id."""
    import functools

    tracker = getattr(module, "GeneralConfigTracker", None)

    def make(original):
        @functools.wraps(original)
        def log_experiment_args(self, model_source, model_args, *args, **kwargs):
            out = original(self, model_source, model_args, *args, **kwargs)
            if tracker._get_model_name(model_args) is None and model_source in _plugin_model_names():
                self.model_name = str(model_source)
                self.model_name_sanitized = module.sanitize_model_name(self.model_name)
            return out
        return log_experiment_args

    if tracker is not None and hasattr(tracker, "_get_model_name") and hasattr(module, "sanitize_model_name"):
        _wrap(tracker, "log_experiment_args", make)


def _plugin_model_names() -> set[str]:
    import importlib.metadata as md

    return {ep.name for ep in md.entry_points(group=MODELS_GROUP)}


_PATCHES = {
    "lm_eval.tasks.manager": patch_task_manager,
    "lm_eval.models": register_plugin_models,
    "lm_eval.config.evaluate_config": patch_evaluator_config,
    "lm_eval.evaluator": patch_simple_evaluate,
    "lm_eval.loggers.evaluation_tracker": patch_tracker_model_name,
}


class _Loader:
    """Wraps the real loader; applies our patch right after the module executes."""

    def __init__(self, loader, patch):
        self._loader, self._patch = loader, patch

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module):
        self._loader.exec_module(module)
        try:
            self._patch(module)
        except Exception:  # never break lm-eval because of our hook
            pass

    def __getattr__(self, name):
        return getattr(self._loader, name)


class LmEvalPluginFinder:
    """A ``sys.meta_path`` finder that only reacts to the watched lm-eval modules (:data:`_PATCHES`)."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname not in _PATCHES:
            return None
        import importlib.machinery

        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or spec.loader is None:
            return spec
        spec.loader = _Loader(spec.loader, _PATCHES[fullname])
        return spec

    def invalidate_caches(self):
        pass


def install() -> None:
    """Put the finder first on ``sys.meta_path`` (once); patch modules that are already imported."""
    if not any(isinstance(f, LmEvalPluginFinder) or type(f).__name__ == "LmEvalPluginFinder"
               for f in sys.meta_path):
        sys.meta_path.insert(0, LmEvalPluginFinder())
    for name, patch in _PATCHES.items():
        module = sys.modules.get(name)
        if module is not None:
            try:
                patch(module)
            except Exception:
                pass
