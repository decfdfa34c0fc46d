"""Task YAMLs for lm-evaluation-harness (package data).

This folder is what the ``lm_eval.tasks`` entry point names: lm-eval scans it
for ``*.yaml`` files. Add a task by adding a YAML here or in any folder passed
with ``--include_path``.
"""

from pathlib import Path


def tasks_dir() -> str:
    """The folder to pass as ``--include_path`` / ``TaskManager(include_path=...)`` without the hook."""
    return str(Path(__file__).parent)
