"""Where a response states its final answer (the extraction order of ``docs/answers.md``).

1. **Region**: the text after the last ``</think>`` (also ``</thinking>``,
   ``<|end_of_thought|>``); the whole text when there is none. A box inside the
   reasoning never competes with the final answer.
2. **Boxes**: the last ``\\boxed{...}`` / ``\\fbox{...}`` of the region, together with
   the boxes right before it that form one list with it (``\\boxed{4}, \\boxed{10}``,
   ``r=1 \\to \\boxed{4}; r=5 \\to \\boxed{10}``): boxes separated only by a short
   label or separator, or parallel boxes (each the value of the same name: ``If r = 1,
   f(7) = 7 - 3 = \\boxed{4}. If r = 5, f(7) = 7 + 3 = \\boxed{10}``). A correction
   ("wait", "actually") or a conclusion word ("so", "thus") between two boxes always
   ends the list; longer reasoning or arithmetic ends it unless the boxes are parallel.
   An opened but unbalanced last box is a broken answer: nothing else is read.
3. **Unboxed fallbacks**, first that applies: the last ``<answer>...</answer>``; the
   last answer marker (``Final answer:``, ``**Answer:**``, ``The answer is``,
   a ``## Final Answer`` heading, GSM8K's ``####``) with a value after it; a last
   line that is only a set or list; a concluding last sentence ("So f(7) could
   have returned 4 or 10.").

Cost bound: ``rfind`` scans and brace scans capped by :data:`MAX_BOX_CHARS` and
:data:`MAX_BOX_CANDIDATES`; fallbacks read only the last :data:`MAX_TAIL_CHARS`.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from cf_tasks import answer_tokens as T

THINK_ENDS = ("</think>", "</thinking>", "<|end_of_thought|>")
MAX_BOX_CHARS = T.MAX_SPAN_CHARS  # a box longer than this is not an answer
MAX_BOX_CANDIDATES = 256  # bare "\\boxed" mentions examined from the end before giving up
MAX_LIST_BOXES = 64  # boxes in one list; more make the answer unmatchable
MAX_GAP_CHARS = 64  # text between two boxes of one list, after removing spacing and \text{}
MAX_TAIL_CHARS = 65536  # the unboxed fallbacks read only the response's tail
MAX_PARAGRAPH_CHARS = 1024  # the value under a "## Final Answer" heading
MAX_MARKERS = 16  # answer markers examined from the end for one with a value after it
MAX_SENTENCE_CHARS = 400  # a longer last sentence is not a concluding statement


class Located(NamedTuple):
    """The final answer's text: one span per box of a box list, or one fallback span."""

    source: str  # "boxed", "answer_tag", "marker", "last_line", "conclusion"
    spans: tuple
    refused: str | None = None  # why the answer is refused outright ("ellipsis" between boxes)
    truncated: bool = False  # more than MAX_LIST_BOXES boxes in the list

    @property
    def prose(self) -> bool:
        return self.source in ("marker", "conclusion")


def final_region(text: str) -> str:
    """The text after the last end-of-reasoning tag, else the whole text."""
    cut = -1
    think = text.rfind("</think")  # one search for "</think>" and "</thinking>"
    while think >= 0 and cut < 0:
        for tag in THINK_ENDS[:2]:
            if text.startswith(tag, think):
                cut = think + len(tag)
                break
        else:
            think = text.rfind("</think", 0, think)
    thought = text.rfind(THINK_ENDS[2])
    if thought >= 0:
        cut = max(cut, thought + len(THINK_ENDS[2]))
    return text if cut < 0 else text[cut:]


# -- boxes -----------------------------------------------------------------------------------------

_BOX_RE = re.compile(r"\\(?:boxed|fbox)\s*\{(?!\s*\})")  # an empty box ("inside \boxed{}") is a mention
_BRACE_RE = re.compile(r"[{}]")


class _Box(NamedTuple):
    start: int  # the backslash
    content_start: int
    content_end: int
    end: int  # after the closing brace


class _BoxScanner:
    """Finds box commands from the end backwards, each needle's position cached.

    Each needle's last position is moved only when its candidate fails or is
    consumed, so walking back over all boxes is linear; re-searching both needles
    from the end every step was quadratic (``"\\boxed" * 10**5`` took 11 s, and
    20,000 boxes with no ``\\fbox`` rescanned the whole text per box).
    """

    def __init__(self, text: str) -> None:
        self.text = text
        self.boxed = text.rfind("\\boxed")
        self.fbox = text.rfind("\\fbox")
        self.gave_up = False

    def previous(self, before: int) -> tuple[int, int]:
        """``(start, brace end)`` of the last box command opened before ``before``, or ``(-1, -1)``."""
        text = self.text
        if self.boxed >= before:
            self.boxed = text.rfind("\\boxed", 0, before)
        if self.fbox >= before:
            self.fbox = text.rfind("\\fbox", 0, before)
        for _ in range(MAX_BOX_CANDIDATES):
            pos = max(self.boxed, self.fbox)
            if pos < 0:
                return -1, -1
            match = _BOX_RE.match(text, pos)
            if match is not None:
                return pos, match.end()
            if pos == self.boxed:
                self.boxed = text.rfind("\\boxed", 0, pos)
            else:
                self.fbox = text.rfind("\\fbox", 0, pos)
        self.gave_up = True
        return -1, -1


def _box_at(text: str, start: int, content_start: int) -> _Box | None:
    close = text.find("}", content_start, content_start + MAX_BOX_CHARS)
    if close >= 0 and text.find("{", content_start, close) < 0:  # the common box without inner braces
        return _Box(start, content_start, close, close + 1)
    depth = 1
    for brace in _BRACE_RE.finditer(text, content_start, min(len(text), content_start + MAX_BOX_CHARS)):
        depth += 1 if brace.group() == "{" else -1
        if depth == 0:
            return _Box(start, content_start, brace.start(), brace.end())
    return None


def last_box(text: str) -> tuple[str | None, bool]:
    """``(content of the last box or None, whether a box was opened)`` over the whole text."""
    scanner = _BoxScanner(text)
    start, content_start = scanner.previous(len(text))
    if start < 0:
        return None, scanner.gave_up
    box = _box_at(text, start, content_start)
    return (None if box is None else text[box.content_start:box.content_end]), True


_GAP_NOISE = re.compile(r"\\(?:quad|qquad|text|textbf|mathrm|;|,|!|:| )|[${}\s]+|\\\\")
_GAP_ELLIPSIS = re.compile(r"\.\.\.|…|\\(?:ldots|cdots|dots)")
_GAP_ARITH = re.compile(r"[0-9)]\s*(?:[-+*/×·÷^]|\\times|\\cdot|\\div)\s*[0-9(]")
# A correction or a conclusion between two boxes always ends the list: the earlier box was superseded.
_GAP_HARD_BREAK = re.compile(r"(?i)\b(?:wait|actually|no|instead|correction|rather|mistake|oops|hmm|recheck|re-check|"
                             r"double[- ]check|let me|so|thus|therefore|hence|but|however|note)\b")
_GAP_SOFT_BREAK = re.compile(r"(?i)\b(?:then|step)\b")
# What a box is the value of: "f(7) = 7 - 3 = \boxed{4}" -> "f"; "r = \boxed{3}" -> "r".
_TARGET = re.compile(r"([A-Za-z_]\w*)\s*(?:\([^()]{0,40}\))?\s*(?:=|\\in\b)")
_LABEL_CHARS = 120


def _gap_kind(gap: str) -> str:
    """``"list"``, ``"soft"`` (a list only if the boxes are parallel), ``"ellipsis"`` or ``"break"``."""
    if len(gap) > 8 * MAX_GAP_CHARS:
        return "break"
    if _GAP_ELLIPSIS.search(gap):
        return "ellipsis"
    if _GAP_HARD_BREAK.search(gap):
        return "break"
    if _GAP_SOFT_BREAK.search(gap) or _GAP_ARITH.search(gap) or len(_GAP_NOISE.sub("", gap)) > MAX_GAP_CHARS:
        return "soft"
    return "list"


def _target(region: str, box_start: int, floor: int) -> str | None:
    """The name a box is the value of, from its label (the clause before it, after ``floor``)."""
    start = max(floor, box_start - _LABEL_CHARS)
    start = max(start, region.rfind("\n", start, box_start) + 1)
    clause = re.split(r"[,;:]|\.\s", region[start:box_start])[-1]
    match = _TARGET.search(clause)
    return match.group(1) if match else None


def _parallel(region: str, earlier: _Box, later: _Box) -> bool:
    """Both boxes are values of the same name ("If r = 1, f(7) = ... = \boxed{4}. If r = 5, f(7) = ...")."""
    first = _target(region, earlier.start, 0)
    return first is not None and first == _target(region, later.start, earlier.end)


def _box_list(region: str) -> Located | None | bool:
    """The final box list of the region; ``None`` without boxes; ``False`` for a broken box."""
    scanner = _BoxScanner(region)
    start, content_start = scanner.previous(len(region))
    if start < 0:
        return False if scanner.gave_up else None
    box = _box_at(region, start, content_start)
    if box is None:
        return False
    if scanner.fbox < 0 and region.rfind("\\boxed", 0, start) < 0:  # the common single box
        return Located("boxed", (region[box.content_start:box.content_end],))
    boxes, refused, truncated = [box], None, False
    while True:
        start, content_start = scanner.previous(boxes[-1].start)
        if start < 0:
            break
        prev = _box_at(region, start, content_start)
        if prev is None or prev.end > boxes[-1].start:  # unbalanced, or a box around this one
            break
        kind = _gap_kind(region[prev.end:boxes[-1].start])
        if kind == "break" or (kind == "soft" and not _parallel(region, prev, boxes[-1])):
            break
        if len(boxes) == MAX_LIST_BOXES:
            truncated = True
            break
        refused = refused or ("ellipsis" if kind == "ellipsis" else None)
        boxes.append(prev)
    spans = tuple(region[b.content_start:b.content_end] for b in reversed(boxes))
    return Located("boxed", spans, refused=refused, truncated=truncated)


# -- unboxed fallbacks -----------------------------------------------------------------------------

_ANSWER_TAG_RE = re.compile(r"<answer>(.*?)</answer>", re.S | re.I)
_LAST_CLOSE_TAG_RE = re.compile(r".*</answer>", re.S | re.I)
_MARKER_AFTER_WORD = re.compile(  # after "answer": "(s)", "**", then ":" / "is" / "=" / "would be"
    r"s?[ \t]*(?:\(s\))?[ \t]*(?:\*\*|__)?[ \t]*(?::|is\b|are\b|=|would[ \t]+be\b|will[ \t]+be\b)"
    r"[ \t]*(?:\*\*|__)?[ \t]*:?", re.I)
_HEADING = re.compile(  # a line that is only "## Final Answer", "**Answer**", "Final answer:", "Conclusion"
    r"[ \t>]*(?:#{1,6}[ \t]*)?(?:\*\*|__)?[ \t]*(?:final[ \t]+answers?|answers?|final[ \t]+results?|results?|"
    r"conclusion|summary)[ \t]*:?[ \t]*(?:\*\*|__)?[ \t]*:?[ \t]*", re.I)
_HEADING_WORDS = ("answer", "result", "conclusion", "summary")
_GSM8K = re.compile(r"[ \t]*####[ \t]+(?=[-+$€£0-9.])")
_DIGIT = re.compile(r"[0-9]")
_QUOTED_OR_CONST = re.compile(r"'[^'\n]*'|\"[^\"\n]*\"|\b(?:True|False|None)\b")
_SENTENCE_END = re.compile(r"(?<=[^\s.][.!?])[ \t]+(?=[A-Z])|(?<=[.!?])[ \t]*\n(?=[ \t]*[A-Z])|\n[ \t]*\n")
_LINE_DECOR = re.compile(r"(?m)^[ \t>]*(?:[-*•+][ \t]+|[0-9]{1,2}[.)][ \t]+)")
_CONCLUSION = re.compile(
    r"(?i)(?:^\W*|,[ \t]*)(?:so|thus|therefore|hence|finally|overall|altogether|consequently|in[ \t]+(?:conclusion|"
    r"summary|total|short|sum))\b"
    r"|^\W*(?:since|because|given|with)\b[^,]*,"
    r"|\b(?:answers?|final|total|result|outputs?)\b"
    r"|\b(?:could|would|will|might|can)[ \t]+(?:have[ \t]+)?(?:been|be|return(?:ed)?|output(?:ted)?|give[ns]?)\b"
)
_LIST_KINDS = frozenset((T.NUM, T.STR, T.CONST, T.COMMA, T.SEP, T.AND, T.OR, T.EMPTY, T.DOT))
_PREFIX_KINDS = frozenset((T.IDENT, T.CALL, "group"))


def _paragraph_after(text: str, pos: int) -> str:
    """The rest of the line at ``pos``; when it is empty, the paragraph that follows (bullets removed)."""
    end = text.find("\n", pos, pos + MAX_PARAGRAPH_CHARS)
    line = text[pos:pos + MAX_PARAGRAPH_CHARS] if end < 0 else text[pos:end]
    if line.strip(" \t*_:") or end < 0:
        return line
    rest = text[end + 1:end + 1 + MAX_PARAGRAPH_CHARS].lstrip("\n \t")
    blank = re.search(r"\n[ \t]*\n", rest)
    return _LINE_DECOR.sub(" ", rest if blank is None else rest[:blank.start()])


def _first_sentence(span: str) -> str:
    match = _SENTENCE_END.search(span)
    return span if match is None else span[:match.start()]


def _has_value(text: str) -> bool:
    """Whether a (short) text holds a digit, a quoted string or True/False/None."""
    if _DIGIT.search(text):
        return True
    return ("'" in text or '"' in text or "True" in text or "False" in text or "None" in text) and bool(
        _QUOTED_OR_CONST.search(text))


def _line_around(text: str, pos: int, width: int = 128) -> tuple[int, int]:
    """Bounds of the line holding ``pos`` when it is at most ``width`` characters either side, else (-1, -1)."""
    start = text.rfind("\n", max(0, pos - width), pos) + 1
    if start == 0 and pos > width:
        return -1, -1
    end = text.find("\n", pos, pos + width)
    if end < 0:
        if len(text) - pos > width:
            return -1, -1
        end = len(text)
    return start, end


def _marker_ends(tail: str) -> list[int]:
    """Where the value of each answer marker starts, found with ``rfind`` (no regex over the whole tail)."""
    lower = tail.lower()
    ends: set[int] = set()
    for word in _HEADING_WORDS:
        pos = len(lower)
        for _ in range(MAX_BOX_CANDIDATES):
            pos = lower.rfind(word, 0, pos)
            if pos < 0:
                break
            line_start, line_end = _line_around(lower, pos)
            if line_start >= 0 and _HEADING.fullmatch(tail, line_start, line_end):
                ends.add(line_end)
            elif word == "answer" and (pos == 0 or not (lower[pos - 1].isalnum() or lower[pos - 1] in "_-")):
                after = _MARKER_AFTER_WORD.match(tail, pos + len(word))
                if after is not None:
                    ends.add(after.end())
    pos = len(tail)
    for _ in range(MAX_BOX_CANDIDATES):
        pos = tail.rfind("####", 0, pos)
        if pos < 0:
            break
        line_start = tail.rfind("\n", max(0, pos - 8), pos) + 1
        match = _GSM8K.match(tail, line_start)
        if match is not None:
            ends.add(match.end())
    return sorted(ends)


def _marker_span(tail: str) -> str | None:
    """The value after the last answer marker that has one."""
    for end in reversed(_marker_ends(tail)[-MAX_MARKERS:]):
        span = _first_sentence(_paragraph_after(tail, end))
        if _has_value(span):
            return span[:MAX_BOX_CHARS]
    return None


def _last_line_span(tail: str) -> str | None:
    """The last non-empty line, when it holds nothing but values (``{4, 10}``, ``$[4, 10]$``)."""
    stripped = tail[-2 * MAX_BOX_CHARS:].rstrip()
    newline = stripped.rfind("\n")
    line = stripped[newline + 1:]
    if (newline < 0 and len(tail) > 2 * MAX_BOX_CHARS) or len(line) > MAX_BOX_CHARS or not _has_value(line):
        return None
    line = _LINE_DECOR.sub(" ", line)
    try:
        nodes = T.tree(T.tokenize(T.normalise(line)))
    except T.TooManyTokens:
        return None
    return line if _only_values(nodes) else None


def _only_values(nodes: list, depth: int = 0) -> bool:
    """Values, separators, signs and brackets only; or ``name = {values}`` / ``f(7) \\in {values}``."""
    if depth > T.MAX_DEPTH:
        return False
    cut = T.last_index(nodes, frozenset((T.EQ, T.IN)))
    if cut >= 0:
        rest = [n for n in nodes[cut + 1:] if T.kind_of(n) != T.DOT]
        prefix_ok = all(T.kind_of(n) in _PREFIX_KINDS for n in nodes[:cut])
        return (prefix_ok and len(rest) == 1 and isinstance(rest[0], T.Group)
                and _only_values(rest[0].children, depth + 1))
    for node in nodes:
        if isinstance(node, T.Group):
            if not _only_values(node.children, depth + 1):
                return False
        elif node[0] not in _LIST_KINDS and not (node[0] == T.OP and node[1] in "-+"):
            return False
    return True


def _conclusion_span(tail: str) -> str | None:
    """The last sentence with a value, when it concludes ("So ...", "... could have returned 4.")."""
    paragraph = re.split(r"\n[ \t]*\n", tail.rstrip()[-4 * MAX_PARAGRAPH_CHARS:])[-1][-MAX_PARAGRAPH_CHARS:]
    sentences = [s for s in _SENTENCE_END.split(paragraph) if s.strip()]
    for sentence in reversed(sentences):
        if _has_value(sentence):
            if len(sentence) > MAX_SENTENCE_CHARS:
                return None
            sentence = _LINE_DECOR.sub(" ", sentence)
            return sentence if _CONCLUSION.search(sentence.strip(" \t*_#>")) else None
    return None


def _fallback(region: str) -> Located | None:
    tail = region[-MAX_TAIL_CHARS:]
    # Cut the tail after its last closing tag first: with no closing tag ahead, every
    # "<answer>" made the lazy scan run to the end ("<answer>" * 8192 took 4.6 s).
    closing = _LAST_CLOSE_TAG_RE.match(tail) if "</answer>" in tail.lower() else None
    tags = _ANSWER_TAG_RE.findall(tail, 0, closing.end()) if closing else []
    if tags:
        return Located("answer_tag", (tags[-1][:MAX_BOX_CHARS],))
    for source, find in (("marker", _marker_span), ("last_line", _last_line_span),
                         ("conclusion", _conclusion_span)):
        span = find(tail)
        if span is not None:
            return Located(source, (span,))
    return None


def locate(text: str) -> Located | None:
    """The final answer of a response (see the module docstring), or ``None``."""
    if not isinstance(text, str):
        return None
    region = final_region(text)
    boxes = _box_list(region)
    if boxes is False:
        return None  # a box was opened but is broken: do not fall back to other text
    if boxes is not None:
        return boxes
    return _fallback(region)
