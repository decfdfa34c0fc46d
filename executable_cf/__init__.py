"""executable-cf's namespace in inspect_ai: ``inspect eval executable_cf/while``.

inspect names a registered task ``<top-level package>/<name>``, so the tasks
and scorers are defined in this package (the distribution's own name) rather
than under ``cf_tasks``. The ``inspect_ai`` entry point ``executable_cf =
executable_cf._registry`` makes inspect import :mod:`executable_cf._registry`
on the first lookup of an ``executable_cf/...`` name. The logic lives in
:mod:`cf_tasks.integrations.inspect_ai`; nothing is imported here.
"""
