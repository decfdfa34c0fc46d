"""Fenced code blocks of the README and docs, and how the contract test runs each kind.

The README is a contract: every block a reader can copy runs in CI. A block is
run according to its language, in one working folder per document (so a
``generate`` earlier in a document feeds a ``solve`` later), in document order:

* ``bash`` / ``sh``: the block runs as one ``bash -euxo pipefail`` script (so
  loops work and ``-x`` shows the failing command), each line rewritten by
  :func:`substitute`;
* ``yaml``, ``json``, ``python``, ``ini`` whose first line is a comment naming a
  file (``# my_tasks/x.yaml``, ``# setup.cfg of my-pkg``) are written to that file
  and checked for their kind (a task YAML loads in lm-eval, a JSON record
  parses as a program record, ...); other ``python`` blocks run in a fresh
  interpreter; other ``json`` blocks must parse;
* an HTML comment right above the fence steers a block:
  ``<!-- snippet: skip (REASON) -->`` (a GPU, a hub download; the reason is
  required), ``<!-- snippet: file PATH -->`` (write the block to PATH; JSON
  lines for ``.jsonl``), ``<!-- snippet: dry-run -->`` (``cf-train`` commands
  get ``--dry-run``: the config must load and fit, no training).

Substitutions keep the path the user runs and only make it small and offline:
hub model names (in commands and in Python blocks) become the tiny local
model of ``cf-tasks tiny-model``;
``--limit``, ``--n`` and ``--train-n`` are capped (``lm_eval``, ``inspect eval``
and ``cf-tasks export`` get a cap when they have none); ``lm_eval --model hf``
generates at most a few tokens; ``cf-select bids --model`` warms up for 2
epochs and projects to 256 dimensions; a ``cf-report`` judge writes 16 tokens; ``inspect eval`` uses inspect's own
``mockllm/model`` with the scripted solver of the inspect tests (mockllm's
default reply counts tokens with a tiktoken file it downloads), and every
inspect log it writes must have status ``success``. The working folder links the checkout's ``tests/`` and
``benchmarks/``, so commands that name them run as in a checkout. Lines that are not re-run: ``pip install`` and
``python -m pytest`` (CI has just done both) and ``python benchmarks/...``
(minutes of CPU each; their numbers are measured by hand and quoted in the docs).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

FENCE_RE = re.compile(r"^```([\w+-]*)\s*$")
DIRECTIVE_RE = re.compile(r"^<!--\s*snippet:\s*(?P<verb>skip|file|dry-run)\b\s*(?P<arg>.*?)\s*-->\s*$")
FILE_COMMENT_RE = re.compile(r"^(?:#|//|;)\s*(?P<path>[\w./-]+\.(?:ya?ml|json|jsonl|py|cfg|toml))\b")
HUB_MODEL_RE = re.compile(r"(?<=pretrained=)(?!\.{0,2}/)[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+|"
                          r"(?<=--model )(?!\.{0,2}/)[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+")
INSPECT_SOLVER = "tests/integrations/inspect_scripted_solver.py@alternate"  # mockllm's own reply needs tiktoken's download
CAPS = {"--limit": 3, "--n": 40, "--train-n": 40, "--judge-limit": 2}
NOT_RERUN = (re.compile(r"^(python -m )?pip install\b"), re.compile(r"^python3? -m pytest\b"),
             re.compile(r"^python3? benchmarks/"))
ADDED_WHEN_ABSENT = (  # (command pattern, flag, value): keep runs small where the doc shows full size
    (re.compile(r"\blm_eval\b"), "--limit", "3"),
    (re.compile(r"^inspect eval\b"), "--limit", "3"),
    (re.compile(r"^cf-tasks export\b"), "--n", "40"),
    (re.compile(r"^cf-tasks export\b"), "--train-n", "40"),
    (re.compile(r"^cf-select bids\b.*--model\b"), "--epochs", "2"),
    (re.compile(r"^cf-select bids\b.*--model\b"), "--proj-dim", "256"),
    (re.compile(r"^cf-report\b.*--judge-model\b"), "--judge-max-tokens", "16"),
)


@dataclass(frozen=True)
class Snippet:
    doc: Path
    line: int  # 1-based line of the opening fence
    lang: str
    text: str
    directive: str | None = None
    argument: str = ""

    @property
    def where(self) -> str:
        return f"{self.doc.name}:{self.line}"


def extract(doc: Path) -> list[Snippet]:
    """Every fenced block of a markdown file, with the directive just above it (if any)."""
    lines = doc.read_text(encoding="utf-8").splitlines()
    out: list[Snippet] = []
    i = 0
    while i < len(lines):
        match = FENCE_RE.match(lines[i])
        if not match:
            i += 1
            continue
        start, lang = i, match.group(1).lower()
        body = []
        i += 1
        while i < len(lines) and not lines[i].startswith("```"):
            body.append(lines[i])
            i += 1
        if i >= len(lines):
            raise ValueError(f"{doc}:{start + 1}: unclosed code fence")
        above = next((lines[j] for j in range(start - 1, -1, -1) if lines[j].strip()), "")
        directive = DIRECTIVE_RE.match(above.strip())
        out.append(Snippet(doc, start + 1, lang, "\n".join(body) + "\n",
                           directive.group("verb") if directive else None,
                           directive.group("arg") if directive else ""))
        i += 1
    return out


def commands(text: str) -> list[str]:
    """Shell commands of a block: continuation lines joined, comment lines and trailing comments dropped."""
    joined = re.sub(r"\s*\\\n\s*", " ", text)
    out = []
    for raw in joined.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        line = re.sub(r"\s+#\s.*$", "", line)  # a trailing "  # explanation"
        out.append(line)
    return out


def script(text: str, *, tiny_model: str, dry_run: bool = False) -> str:
    """A bash block as the contract test runs it: every command substituted, not-re-run commands dropped."""
    lines = []
    for command in commands(text):
        parts = [substitute(part, tiny_model=tiny_model, dry_run=dry_run) for part in command.split(" && ")]
        kept = [part for part in parts if part is not None]
        if kept:
            lines.append(" && ".join(kept))
    return "\n".join(lines) + "\n" if lines else ""


def substitute(command: str, *, tiny_model: str, dry_run: bool = False) -> str | None:
    """The command as the contract test runs it, or None when it is not re-run (pip install, pytest)."""
    if any(p.match(command) for p in NOT_RERUN):
        return None
    if command.startswith("inspect eval"):
        command = re.sub(r"--model\s+\S+", f"--model mockllm/model --solver {INSPECT_SOLVER}", command)
    else:
        command = HUB_MODEL_RE.sub(tiny_model, command)
    command = re.sub(r"pretrained=\.\.\.", f"pretrained={tiny_model}", command)
    for flag, cap in CAPS.items():
        command = re.sub(rf"(?<=\s){re.escape(flag)}(\s+|=)(\d+)\b",
                         lambda m, f=flag, c=cap: f"{f}{m.group(1)}{min(int(m.group(2)), c)}", command)
    for pattern, flag, value in ADDED_WHEN_ABSENT:
        if pattern.search(command) and not re.search(rf"(?<=\s){re.escape(flag)}(\s|=|$)", command):
            command += f" {flag} {value}"
    if re.search(r"\blm_eval\b.*--model\s+hf\b", command) and "--gen_kwargs" not in command:
        command += " --gen_kwargs max_gen_toks=16"
    if dry_run and re.match(r"^cf-train\s+(grpo|sft)\b", command) and "--dry-run" not in command:
        command += " --dry-run"
    return command


def file_target(snippet: Snippet) -> str | None:
    """Where a block is written, from ``<!-- snippet: file PATH -->`` or a first-line file comment."""
    if snippet.directive == "file":
        return snippet.argument
    first = snippet.text.splitlines()[0] if snippet.text.strip() else ""
    match = FILE_COMMENT_RE.match(first.strip())
    if match:
        return match.group("path")
    if snippet.lang == "ini" and re.match(r"^[#;]\s*setup\.cfg\b", first.strip()):
        return "setup.cfg"
    return None
