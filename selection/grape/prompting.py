"""Turn an instruction and its candidates into token ids, so that exactly the response is scored.

The text of each candidate is built here (plain template or chat template);
the token ids come from the shared joint encoder
(:func:`selection.tokenization.encode_pair`): ``prompt + response`` is
tokenized once and split at the character boundary, as lm-eval's
``loglikelihood`` does. Both scoring backends receive these ids, and every
selected row records the same text (:class:`~selection.tokenization.FormattedExample`),
so SFT and BIDS train on what GRAPE scored.

Token-boundary rules (the paper leaves them open):

- Plain template: the text before ``{response}`` is the prompt; its trailing
  whitespace (the space in ``"Answer: "``) goes with the response. The joint
  text is encoded with the tokenizer's own ``add_special_tokens`` behaviour
  (``bos="auto"``: Llama/Mistral get their BOS, GPT-2 none); ``bos="always"``
  forces a leading BOS, ``bos="never"`` adds no special tokens.
- Chat template: the prompt is ``apply_chat_template(messages,
  add_generation_prompt=True)``, the response is what the template renders
  for the assistant turn up to the end of the response; no special tokens are
  added (chat templates write their own BOS); ``bos="always"`` still forces one.
- EOS is not scored unless ``score_eos`` is set (then one EOS id is appended
  and counted).
- An empty prompt gets a BOS (or EOS) id so the first response token has a
  context (``bos="never"`` then raises).

Candidates share one prompt cache when their prompt ids are equal, which is the
normal case. Joint encoding can make them differ (a token merging across the
boundary, or a prompt truncated to fit a long response); such candidates form
groups of their own (:func:`encode_instruction`), so the backends' interface,
one :class:`EncodedGroup` per shared prompt, stays the same.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

from selection.tokenization import FormattedExample, PairIds, chat_example, encode_example, text_example

OVERLENGTH = ("truncate", "skip")


@dataclass(frozen=True)
class EncodedGroup:
    """Candidates sharing one prompt: its ids and the ids of each candidate response (scored tokens only)."""

    prompt_ids: tuple[int, ...]
    response_ids: tuple[tuple[int, ...], ...]

    @property
    def n_tokens(self) -> int:
        """Prompt + response tokens over all candidates: the 'tokens scored' of the progress bar."""
        return sum(len(self.prompt_ids) + len(r) for r in self.response_ids)


@dataclass
class EncodedInstruction:
    """One instruction's candidates as backend groups, and what the length limit did to each candidate."""

    groups: list[EncodedGroup]
    members: list[list[int]]
    """Candidate indices of each group, in the group's order."""
    n_candidates: int
    prompt_cut: list[int] = field(default_factory=list)
    """Tokens cut from the left of each candidate's prompt to fit the limit (0 for most)."""
    skipped: list[bool] = field(default_factory=list)
    """Candidates not scored: the response alone does not fit the limit (or ``overlength="skip"``)."""


def _plain_instruction(instruction: Any) -> str:
    if isinstance(instruction, str):
        return instruction
    users = [m for m in instruction if m["role"] != "system"]
    if len(users) == 1:
        return users[0]["content"]
    raise ValueError("a multi-turn chat instruction needs --chat-template")


def prompt_text(tokenizer: Any, instruction: Any, *, template: str, chat_template: bool) -> str:
    if chat_template:
        if getattr(tokenizer, "chat_template", None) is None:
            raise ValueError("--chat-template: the tokenizer has no chat template")
        messages = instruction if isinstance(instruction, list) else [{"role": "user", "content": instruction}]
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    prefix = template[: template.index("{response}")]
    return prefix.replace("{instruction}", _plain_instruction(instruction))


def format_candidate(tokenizer: Any, instruction: Any, response: str, *, template: str, chat_template: bool = False,
                     bos: str = "auto") -> FormattedExample:
    """The exact text GRAPE scores for one candidate (recorded in the selection file as ``formatted``)."""
    if chat_template:
        if getattr(tokenizer, "chat_template", None) is None:
            raise ValueError("--chat-template: the tokenizer has no chat template")
        messages = instruction if isinstance(instruction, list) else [{"role": "user", "content": instruction}]
        return chat_example(tokenizer, messages, response, force_bos=bos == "always")
    prompt = prompt_text(tokenizer, instruction, template=template, chat_template=False)
    return text_example(tokenizer, prompt, response, style="template", template=template,
                        add_special_tokens=bos != "never", force_bos=bos == "always")


def _start_id(tokenizer: Any) -> int | None:
    return tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id


def encode_candidate(tokenizer: Any, example: FormattedExample, *, bos: str = "auto",
                     score_eos: bool = False) -> PairIds:
    """Prompt ids and scored ids of one formatted candidate (EOS appended to the scored ids with ``score_eos``)."""
    ids = encode_example(tokenizer, example, with_end=False)
    prompt = ids.prompt_ids
    if not prompt:
        start = _start_id(tokenizer)
        if bos == "never" or start is None:
            raise ValueError("the prompt is empty and no BOS/EOS token is available to condition on")
        prompt = (start,)
    response = ids.completion_ids
    if score_eos:
        if tokenizer.eos_token_id is None:
            raise ValueError("score_eos: the tokenizer has no EOS token")
        response = (*response, tokenizer.eos_token_id)
    if not response:
        raise ValueError(f"response {example.completion[:40]!r} encodes to no tokens")
    return PairIds(prompt, response, (), ids.straddles)


def encode_instruction(tokenizer: Any, instruction: Any, responses: Sequence[str], *, template: str,
                       chat_template: bool = False, bos: str = "auto", score_eos: bool = False,
                       max_length: int | None = None, overlength: str = "truncate") -> EncodedInstruction:
    """Encode every candidate and group those with equal prompt ids, applying the length policy.

    ``max_length`` bounds prompt + response tokens. A longer candidate is, with
    ``overlength="truncate"`` (lm-eval's choice), scored on a prompt cut from
    the left (a leading BOS is kept); with ``"skip"``, or when the response
    alone does not fit, it is not scored. Either way it is counted.
    """
    if overlength not in OVERLENGTH:
        raise ValueError(f"overlength must be one of {', '.join(OVERLENGTH)}, got {overlength!r}")
    out = EncodedInstruction([], [], len(responses), [0] * len(responses), [False] * len(responses))
    by_prompt: dict[tuple[int, ...], int] = {}
    grouped: list[list[tuple[int, tuple[int, ...]]]] = []
    start = tokenizer.bos_token_id
    for j, response in enumerate(responses):
        example = format_candidate(tokenizer, instruction, response, template=template, chat_template=chat_template,
                                   bos=bos)
        ids = encode_candidate(tokenizer, example, bos=bos, score_eos=score_eos)
        prompt, resp = ids.prompt_ids, ids.completion_ids
        if max_length is not None and len(prompt) + len(resp) > max_length:
            keep_first = 1 if start is not None and prompt[0] == start and len(prompt) > 1 else 0
            room = max_length - len(resp) - keep_first
            if overlength == "skip" or room < 1:
                out.skipped[j] = True
                continue
            out.prompt_cut[j] = len(prompt) - keep_first - room
            prompt = prompt[:keep_first] + prompt[len(prompt) - room:]
        if prompt not in by_prompt:
            by_prompt[prompt] = len(grouped)
            grouped.append([])
        grouped[by_prompt[prompt]].append((j, resp))
    for prompt, g in by_prompt.items():
        out.groups.append(EncodedGroup(prompt, tuple(resp for _, resp in grouped[g])))
        out.members.append([j for j, _ in grouped[g]])
    return out


def encode_group(tokenizer: Any, instruction: Any, responses: Sequence[str], *, template: str,
                 chat_template: bool = False, bos: str = "auto", score_eos: bool = False) -> EncodedGroup:
    """One :class:`EncodedGroup` for an instruction whose candidates share their prompt ids (tests, notebooks).

    Raises when joint encoding gives candidates different prompt ids; the
    scoring pipeline uses :func:`encode_instruction`, which handles that case.
    """
    enc = encode_instruction(tokenizer, instruction, responses, template=template, chat_template=chat_template,
                             bos=bos, score_eos=score_eos)
    if len(enc.groups) != 1:
        raise ValueError(f"the {len(responses)} candidates encode to {len(enc.groups)} different prompts "
                         "(tokens merge across the prompt/response boundary); use encode_instruction")
    return enc.groups[0]
