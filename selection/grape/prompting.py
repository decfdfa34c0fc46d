"""Turn an instruction and its candidates into token ids, so that exactly the response is scored.

Why the prompt and the response are tokenised separately: every candidate of
an instruction must share the *same* prompt token prefix, or the prompt's KV
cache could not be reused (and the vLLM prefix cache would miss). Tokenising
``prompt + response`` jointly would let BPE merge across the boundary and give
each candidate a slightly different prefix.

Token-boundary rules (the paper leaves them open; these follow lm-eval's
``loglikelihood``):

- Plain template: the text before ``{response}`` is the prompt. Its trailing
  whitespace (the space in ``"Answer: "``) is moved to the front of the
  response, so the response starts with a normal ``" word"`` token rather than
  a lone space token. The prompt is encoded with the tokenizer's own
  ``add_special_tokens`` behaviour (``bos="auto"``: Llama/Mistral get their
  BOS, GPT-2 gets none); ``bos="always"`` forces a leading BOS,
  ``bos="never"`` encodes with no special tokens.
- Chat template: the prompt is ``apply_chat_template(messages,
  add_generation_prompt=True)`` verbatim (the text the model conditions on when
  it generates), encoded without adding special tokens (chat templates write
  their own BOS); ``bos="always"`` still forces one.
- The response is encoded with ``add_special_tokens=False``. EOS is not scored
  unless ``score_eos`` is set (then one EOS id is appended and counted).
- If the prompt would be empty, a BOS (or EOS) id is prepended so the first
  response token has a context (``bos="never"`` then raises).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence


@dataclass(frozen=True)
class EncodedGroup:
    """One instruction: its prompt ids and the ids of each candidate response (scored tokens only)."""

    prompt_ids: tuple[int, ...]
    response_ids: tuple[tuple[int, ...], ...]

    @property
    def n_tokens(self) -> int:
        """Prompt + response tokens over all candidates: the 'tokens scored' of the progress bar."""
        return sum(len(self.prompt_ids) + len(r) for r in self.response_ids)


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


def encode_group(tokenizer: Any, instruction: Any, responses: Sequence[str], *, template: str,
                 chat_template: bool = False, bos: str = "auto", score_eos: bool = False) -> EncodedGroup:
    text = prompt_text(tokenizer, instruction, template=template, chat_template=chat_template)
    moved = ""
    if not chat_template:
        stripped = text.rstrip()
        moved = text[len(stripped):]
        text = stripped
    add_special = bos != "never" and not chat_template
    prompt = list(tokenizer(text, add_special_tokens=add_special)["input_ids"]) if text else []
    start = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
    if bos == "always" and start is not None and (not prompt or prompt[0] != start):
        prompt.insert(0, start)
    if not prompt:
        if bos == "never" or start is None:
            raise ValueError("the prompt is empty and no BOS/EOS token is available to condition on")
        prompt = [start]
    eos = [tokenizer.eos_token_id] if score_eos else []
    if score_eos and tokenizer.eos_token_id is None:
        raise ValueError("score_eos: the tokenizer has no EOS token")
    responses_ids = []
    for r in responses:
        ids = list(tokenizer(moved + r, add_special_tokens=False)["input_ids"]) + eos
        if not ids:
            raise ValueError(f"response {r[:40]!r} encodes to no tokens")
        responses_ids.append(tuple(ids))
    return EncodedGroup(tuple(prompt), tuple(responses_ids))
