"""Dataset cards: the README.md written next to generated data.

The YAML front matter declares ``data.jsonl`` as the ``test`` split, so both
``datasets.load_dataset(DIR)`` and ``load_dataset("json", data_files=...)`` work.
"""

from __future__ import annotations

from typing import Any, Mapping

import yaml


def dataset_card(*, title: str, description: str, config: Mapping[str, Any], report: Mapping[str, Any],
                 data_file: str = "data.jsonl") -> str:
    front = {"configs": [{"config_name": "default", "data_files": [{"split": "test", "path": data_file}]}],
             "license": "mit", "tags": ["executable-cf", "counterfactual-reasoning"]}
    lines = [
        "---",
        yaml.safe_dump(front, sort_keys=False).rstrip(),
        "---",
        f"# {title}",
        "",
        description,
        "",
        "Load it with `datasets.load_dataset(\"json\", data_files=\"data.jsonl\")` or `load_dataset(\"<this folder>\")`.",
        "",
        "## Generation config",
        "",
        "```yaml",
        yaml.safe_dump(dict(config), sort_keys=True).rstrip(),
        "```",
        "",
        "## Generation report",
        "",
        "```yaml",
        yaml.safe_dump(dict(report), sort_keys=True).rstrip(),
        "```",
        "",
    ]
    return "\n".join(lines)
