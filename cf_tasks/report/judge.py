"""Rubric-based LLM judge: planning and execution scores (1-5) for each response.

The paper's trace analysis scores each response on two decoupled 1-5
dimensions (planning: abduction -> intervention -> prediction; execution:
correct computations) with an LLM judge. The rubric is a versioned file
(``rubrics/judge_v1.md``) so a score is always reported with the rubric that
produced it; changing the rubric means adding ``judge_v2.md``, not editing v1.

Backends are anything that turns prompts into texts:

* :class:`LmEvalJudge` -- any lm-eval model (``hf``, ``vllm``, ``local-chat-completions``,
  a plugin...), built through lm-eval's model registry and called with
  ``generate_until``, so the judge runs wherever lm-eval runs.
* :class:`OpenAIJudge` -- an OpenAI-compatible ``/chat/completions`` endpoint over
  ``urllib`` (no extra dependency); the key is read from an environment variable.

Judge replies are parsed by :func:`parse_judge_scores`, which accepts the
formats judges actually produce (``PLANNING: 4``, ``**Planning**: 4/5``,
JSON, a ``<think>`` block first) and refuses out-of-range numbers instead of
clamping them. Unparseable replies are recorded, never guessed.
"""

from __future__ import annotations

import json
import logging
import os
import re
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Callable, Mapping, Protocol, Sequence

from cf_tasks.progress import progress_bar

logger = logging.getLogger(__name__)

DEFAULT_RUBRIC = "judge_v1"
DIMENSIONS = ("planning", "execution")


class JudgeParseError(ValueError):
    """A judge reply without a valid 1-5 score for every dimension."""


class JudgeBackend(Protocol):
    name: str

    def generate(self, prompts: Sequence[str]) -> list[str]: ...


# ---------------------------------------------------------------------------
# rubric
# ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Rubric:
    version: str
    template: str
    source: str

    def render(self, problem: str, response: str, reference_answer: str) -> str:
        # Plain replacement, not str.format: problems and responses contain braces.
        return (
            self.template.replace("{{problem}}", problem)
            .replace("{{reference_answer}}", reference_answer)
            .replace("{{response}}", response)
        )


def load_rubric(name_or_path: str = DEFAULT_RUBRIC) -> Rubric:
    """A packaged rubric by version name (``judge_v1``) or a rubric file path."""
    path = Path(name_or_path)
    if path.suffix == ".md" and path.exists():
        text, source = path.read_text(encoding="utf-8"), str(path)
    else:
        try:
            text = resources.files("cf_tasks.report").joinpath("rubrics").joinpath(f"{name_or_path}.md").read_text(encoding="utf-8")
        except FileNotFoundError:
            available = sorted(
                p.name[:-3] for p in resources.files("cf_tasks.report").joinpath("rubrics").iterdir() if p.name.endswith(".md")
            )
            raise ValueError(f"rubric: unknown rubric {name_or_path!r}; packaged rubrics: {', '.join(available)}") from None
        source = f"cf_tasks/report/rubrics/{name_or_path}.md"
    version = path.stem if path.suffix == ".md" else name_or_path
    body = text
    if text.startswith("---\n"):
        end = text.find("\n---\n", 4)
        if end < 0:
            raise ValueError(f"{source}: front matter starting with '---' is not closed")
        for line in text[4:end].splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "rubric_version" and value.strip():
                version = value.strip()
        body = text[end + len("\n---\n"):]
    for placeholder in ("{{problem}}", "{{response}}"):
        if placeholder not in body:
            raise ValueError(f"{source}: rubric lacks the placeholder {placeholder}")
    return Rubric(version, body, source)


# ---------------------------------------------------------------------------
# parsing
# ---------------------------------------------------------------------------
_THINK_RE = re.compile(r"<think>.*?</think>", re.S | re.I)
_SCALE_RE = re.compile(r"\(?\s*(?:on a scale of\s*)?1\s*(?:-|–|—|to)\s*5\s*\)?", re.I)


@dataclass(frozen=True)
class JudgeScores:
    planning: float
    execution: float


def _valid(value: float, denominator: str | None, dim: str, text: str) -> float:
    if denominator is not None and denominator != "5":
        raise JudgeParseError(f"{dim} score is on a /{denominator} scale, expected 1-5: {text[-200:]!r}")
    if not 1 <= value <= 5:
        raise JudgeParseError(f"{dim} score {value:g} outside 1-5")
    return value


def _from_json(text: str) -> JudgeScores | None:
    decoder = json.JSONDecoder()
    tail = text[-8000:]  # verdicts come last; bounds the work on long replies
    starts = [i for i, ch in enumerate(tail) if ch == "{"][-50:]
    for start in reversed(starts):
        try:
            obj, _end = decoder.raw_decode(tail, start)
        except json.JSONDecodeError:
            continue
        if not isinstance(obj, dict):
            continue
        lowered = {str(k).lower(): v for k, v in obj.items()}
        found = {}
        for dim in DIMENSIONS:
            key = next((k for k in lowered if k.startswith(dim)), None)
            value = lowered.get(key) if key else None
            if isinstance(value, dict):
                value = value.get("score")
            if isinstance(value, str) and re.fullmatch(r"\s*\d+(?:\.\d+)?\s*", value):
                value = float(value)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                found[dim] = _valid(float(value), None, dim, text)
        if len(found) == len(DIMENSIONS):
            return JudgeScores(**found)
    return None


def parse_judge_scores(text: str) -> JudgeScores:
    """Planning and execution scores from a judge reply; raises :class:`JudgeParseError`.

    The *last* score given for each dimension wins (judges often restate the
    rubric or revise themselves before the verdict); text inside ``<think>``
    is ignored when a verdict follows it.
    """
    if not isinstance(text, str) or not text.strip():
        raise JudgeParseError("empty judge reply")
    visible = _THINK_RE.sub(" ", text)
    if not visible.strip():
        visible = text
    from_json = _from_json(visible)
    if from_json is not None:
        return from_json
    cleaned = _SCALE_RE.sub(" ", visible).replace("*", "")
    scores = {}
    for dim in DIMENSIONS:
        pattern = re.compile(
            rf"\b{dim}\w*\s*(?:score|rating|grade)?\s*[:=\-–—]?\s*(-?\d+(?:\.\d+)?)\s*(?:(?:/|out of)\s*(\d+))?", re.I
        )
        matches = list(pattern.finditer(cleaned))
        if not matches:
            raise JudgeParseError(f"no {dim} score in judge reply: {visible.strip()[-200:]!r}")
        last = matches[-1]
        scores[dim] = _valid(float(last.group(1)), last.group(2), dim, visible)
    return JudgeScores(**scores)


# ---------------------------------------------------------------------------
# backends
# ---------------------------------------------------------------------------
@dataclass
class LmEvalJudge:
    """A judge backed by any registered lm-eval model (``lm_eval --model NAME`` names)."""

    model: str
    model_args: str = ""
    gen_kwargs: dict[str, Any] = field(default_factory=lambda: {"until": [], "max_gen_toks": 1024, "do_sample": False})
    batch_size: int | str | None = 1
    device: str | None = None
    chat_template: bool = False
    lm: Any = None

    @property
    def name(self) -> str:
        return f"lm_eval:{self.model}" + (f"({self.model_args})" if self.model_args else "")

    def _load(self) -> Any:
        if self.lm is None:
            import lm_eval.models  # noqa: F401  -- built-in backends; get_model only imports them into an empty registry
            from lm_eval.api.registry import get_model

            try:
                cls = get_model(self.model)
            except ValueError as exc:
                raise ValueError(f"judge_model: {exc}") from None
            from cf_tasks.torch_device import default_device

            extra = {"batch_size": self.batch_size, "device": self.device or default_device()}
            self.lm = cls.create_from_arg_string(self.model_args, extra)
        return self.lm

    def generate(self, prompts: Sequence[str]) -> list[str]:
        from lm_eval.api.instance import Instance

        lm = self._load()
        contexts = list(prompts)
        if self.chat_template:
            contexts = [lm.apply_chat_template([{"role": "user", "content": p}]) for p in prompts]
        requests = [
            Instance(request_type="generate_until", doc={}, arguments=(ctx, dict(self.gen_kwargs)), idx=i)
            for i, ctx in enumerate(contexts)
        ]
        outputs = lm.generate_until(requests, disable_tqdm=True)
        if len(outputs) != len(requests):
            raise RuntimeError(f"{self.name}: generate_until returned {len(outputs)} texts for {len(requests)} requests")
        return [o if isinstance(o, str) else str(o) for o in outputs]


@dataclass
class OpenAIJudge:
    """An OpenAI-compatible chat endpoint (``base_url`` ending in ``/v1``)."""

    base_url: str
    model: str
    api_key_env: str = "OPENAI_API_KEY"
    temperature: float = 0.0
    max_tokens: int = 1024
    timeout_s: float = 120.0
    retries: int = 2

    @property
    def name(self) -> str:
        return f"openai:{self.model}@{self.base_url}"

    def _post(self, prompt: str) -> str:
        body = json.dumps(
            {
                "model": self.model,
                "messages": [{"role": "user", "content": prompt}],
                "temperature": self.temperature,
                "max_tokens": self.max_tokens,
            }
        ).encode()
        headers = {"Content-Type": "application/json"}
        key = os.environ.get(self.api_key_env)
        if key:
            headers["Authorization"] = f"Bearer {key}"
        url = self.base_url.rstrip("/") + "/chat/completions"
        last_error: Exception | None = None
        for _attempt in range(self.retries + 1):
            request = urllib.request.Request(url, data=body, headers=headers, method="POST")
            try:
                with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                    payload = json.loads(response.read().decode("utf-8"))
                return payload["choices"][0]["message"]["content"] or ""
            except urllib.error.HTTPError as exc:
                last_error = exc
                if exc.code < 500 and exc.code != 429:
                    break
            except (urllib.error.URLError, TimeoutError, KeyError, IndexError, json.JSONDecodeError) as exc:
                last_error = exc
        raise RuntimeError(f"{self.name}: request failed: {last_error}")

    def generate(self, prompts: Sequence[str]) -> list[str]:
        return [self._post(p) for p in prompts]


# ---------------------------------------------------------------------------
# scoring
# ---------------------------------------------------------------------------
@dataclass(frozen=True)
class JudgeVerdict:
    planning: float | None
    execution: float | None
    error: str | None
    reply: str


def judge_prompt(rubric: Rubric, doc: Mapping[str, Any], response: str) -> str:
    from cf_tasks.answers import format_answer

    problem = str(doc.get("prompt") or doc.get("question") or "")
    answer = doc.get("answer")
    reference = format_answer(answer if isinstance(answer, list) else [answer]) if answer is not None else "(not given)"
    return rubric.render(problem, response, reference)


def judge_responses(
    backend: JudgeBackend,
    items: Sequence[tuple[Mapping[str, Any], str]],
    rubric: Rubric,
    batch_size: int = 16,
    on_batch: Callable[[int, list[JudgeVerdict]], None] | None = None,
    progress: bool = False,
) -> list[JudgeVerdict]:
    """Judge ``(doc, response)`` pairs in batches; ``on_batch(start, verdicts)`` allows checkpointing."""
    if batch_size < 1:
        raise ValueError("batch_size: must be >= 1")
    verdicts: list[JudgeVerdict] = []
    bar = progress_bar(progress, total=len(items), desc="judge", unit="resp")
    for start in range(0, len(items), batch_size):
        chunk = items[start: start + batch_size]
        replies = backend.generate([judge_prompt(rubric, doc, resp) for doc, resp in chunk])
        batch = []
        for reply in replies:
            try:
                s = parse_judge_scores(reply)
                batch.append(JudgeVerdict(s.planning, s.execution, None, reply))
            except JudgeParseError as exc:
                batch.append(JudgeVerdict(None, None, str(exc), reply))
        verdicts.extend(batch)
        if on_batch is not None:
            on_batch(start, batch)
        bar.update(len(chunk))
    bar.close()
    return verdicts
