"""The lm-eval task class of executable-cf's YAMLs (``class: !function cf_tasks.lmeval.task.ExecutableCFTask``).

A task YAML with only ``custom_dataset`` works too. This class exists because
lm-eval's ``ConfigurableTask.download`` prints a generic two-line "Custom kwargs
can be passed to --metadata" warning for every task that has a
``custom_dataset`` (twenty lines for ``executable_cf``), which teaches nothing
to a user of our documented knobs. Our loaders report unknown or bad metadata
themselves, naming where each value came from (``cf_tasks.lmeval.metadata``).
"""

from __future__ import annotations

from typing import Any

from lm_eval.api.task import ConfigurableTask


class ExecutableCFTask(ConfigurableTask):
    """``ConfigurableTask`` whose ``custom_dataset`` is called quietly (behaviour otherwise identical)."""

    def __init__(self, config: dict | None = None, **kwargs: Any) -> None:
        config = {k: v for k, v in (config or {}).items() if k != "class"}
        super().__init__(config=config, **kwargs)

    def download(self, dataset_kwargs: dict[str, Any] | None = None, **kwargs: Any) -> None:
        loader = self.config.custom_dataset
        if not callable(loader):
            return super().download(dataset_kwargs, **kwargs)
        self.dataset = loader(**(self.config.metadata or {}), **(self.config.dataset_kwargs or {}))
