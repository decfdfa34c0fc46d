"""Same seed -> same bytes, across processes and PYTHONHASHSEED values."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

SCRIPT = r"""
import sys
from cf_tasks.generation import generate_code_items
from cf_tasks.jsonl import write_jsonl
from plugins.registry import FAMILIES

out = sys.argv[1]
rows = []
for name in ("if_else", "if_else_long", "while", "multi_r"):
    fam = FAMILIES.get(name)
    for variant in ("counterfactual", "interventional"):
        res = generate_code_items(fam, variant=variant, n=12, seed=123, config=fam.config("hard"), level="hard")
        rows.extend(res.items)
        rows.append({"report": {k: res.report[k] for k in ("attempts", "accepted", "rejected")}})
write_jsonl(out, rows)
"""


def test_generation_is_byte_identical_across_processes_and_hash_seeds(tmp_path: Path):
    digests = []
    for hash_seed in ("1", "2"):
        out = tmp_path / f"items-{hash_seed}.jsonl"
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        subprocess.run([sys.executable, "-c", SCRIPT, str(out)], check=True, env=env, timeout=120,
                       cwd=Path(__file__).resolve().parents[2])
        data = out.read_bytes()
        assert data.count(b"\n") == 4 * 2 * 13
        digests.append(hashlib.sha256(data).hexdigest())
    assert digests[0] == digests[1]
