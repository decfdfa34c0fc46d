"""The ``gsm`` family: counterfactual math word problems with one hidden quantity.

The paper's out-of-domain test (Vashishtha, Dai et al., *Executable Counterfactuals*,
ICLR 2026, arXiv 2510.01539: the math example of Figure 1, the code -> math transfer
of Figure 6; see docs/references.md): a story states a small causal graph of
quantities, hides one of them, reports one observed outcome and asks what the
outcome would have been under an intervention on an observed quantity. Solving it takes abduction (infer the
hidden quantity from the observation), intervention and prediction.

Generation of item ``i`` (RNG :func:`item_stream`: a hash of the family version,
the level, every content knob of the config, the seed and ``i``, so levels at
one seed are independent draws; the variant is not part of the key, so the two
variants are twins):

1. pick a domain and optional components whose graph has ``min_ops..max_ops``
   operations, a hidden quantity and an intervened one;
2. sample values, execute the graph for the observation and, with the
   intervention applied, for the gold answer;
3. filters (``report["rejected"][name]``):

   ``no_structure``        the config leaves no graph / hidden / target choice for the drawn domain;
   ``implausible``         observation or answer not positive, above ``max_abs_value``, or not a
                           whole count / whole cents as the story requires;
   ``non_unique``          the observation does not determine the hidden quantity;
   ``invalid_hidden``      no valid value (positive, integer or whole cents) reproduces the observation;
   ``no_dependence``       the answer does not depend on the hidden quantity (no abduction needed);
   ``prior_equals_answer`` ignoring the observation (hidden quantity absent, i.e. 0) gives the answer;
   ``duplicate``           same domain, graph, numbers and query as an earlier item.

The hidden quantity is recovered by the exact solver (:mod:`.solver`), and the
item is rejected unless it is unique and equals the sampled value.
"""

from __future__ import annotations

import json
import logging
import random
import time
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, Mapping

from cf_tasks.families.base import Family, FamilyConfig, GenerationResult
from cf_tasks.progress import progress_bar
from cf_tasks.seeding import derive_seed

from .graph import GraphError, QuantityGraph, format_number, to_fraction
from .solver import INVALID, NO_SOLUTION, NON_UNIQUE, OK, depends_on, solve_hidden
from .templates import (COMPONENT_OPS, COMPONENTS, COUNT_QUANTITIES, DOMAINS, HIDEABLE, INTERVENABLE, Domain, Story,
                        build_graph, render, sample_phrasing)

logger = logging.getLogger(__name__)

GENERATOR_VERSION = "2"  # 2: level and knobs in the item stream, distinct distractors, grammar, rate scope
PROMPT_VERSION = "gsm-2"  # 2: interventional = counterfactual story + one revealing sentence before the question
FILTERS = ("no_structure", "implausible", "non_unique", "invalid_hidden", "no_dependence", "prior_equals_answer",
           "duplicate")
MONEY_STEPS = ("1", "0.5", "0.25", "0.1", "0.05", "0.01")
INSTRUCTION = ("Reason step by step, then give the final answer as a single number inside \\boxed{} "
               "(only the number, without units).")
VARIANTS = ("counterfactual", "interventional")


def _tuple(value: Any) -> tuple:
    if isinstance(value, str):
        return tuple(v.strip() for v in value.split(",") if v.strip())
    return tuple(value)


@dataclass(frozen=True)
class GsmConfig(FamilyConfig):
    """Knobs of the word-problem generator (levels in :data:`LEVELS`)."""

    min_ops: int = field(default=2, metadata={"help": "Fewest arithmetic operations in the quantity graph."})
    max_ops: int = field(default=4, metadata={"help": "Most arithmetic operations in the quantity graph (<= 8)."})
    count_max: int = field(default=12, metadata={"help": "Counts (items, days, ...) are drawn from 2..count_max."})
    amount_max: int = field(default=20, metadata={"help": "Prices and amounts are drawn up to this many whole units."})
    money_step: str = field(default="1", metadata={
        "help": f"Granularity of money amounts (one of {', '.join(MONEY_STEPS)}); below 1 gives decimal answers."})
    distractors_max: int = field(default=0, metadata={
        "help": "Up to this many irrelevant sentences with numbers are added to the story."})
    intervene_on: tuple = field(default=("count",), metadata={
        "help": f"Quantities the question may intervene on (subset of {', '.join(INTERVENABLE)})."})
    hidden_roles: tuple = field(default=HIDEABLE, metadata={
        "help": f"Quantities that may be hidden (subset of {', '.join(HIDEABLE)})."})
    domains: tuple = field(default=(), metadata={
        "help": f"Story domains to draw from (empty: all of {', '.join(DOMAINS)})."})

    def __post_init__(self) -> None:
        for name in ("intervene_on", "hidden_roles", "domains"):
            object.__setattr__(self, name, _tuple(getattr(self, name)))
        object.__setattr__(self, "money_step", str(self.money_step))

    def validate(self) -> None:
        super().validate()
        for name in ("min_ops", "max_ops", "count_max", "amount_max", "distractors_max"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool):
                raise ValueError(f"{name} must be an integer, got {value!r}")
        if not 1 <= self.min_ops <= self.max_ops <= 1 + sum(COMPONENT_OPS.values()):
            raise ValueError(f"min_ops/max_ops must satisfy 1 <= min_ops <= max_ops <= 8, "
                             f"got {self.min_ops}/{self.max_ops}")
        if self.count_max < 3:
            raise ValueError(f"count_max must be >= 3, got {self.count_max}")
        if self.amount_max < 2:
            raise ValueError(f"amount_max must be >= 2, got {self.amount_max}")
        if self.money_step not in MONEY_STEPS:
            raise ValueError(f"money_step must be one of {', '.join(MONEY_STEPS)}, got {self.money_step!r}")
        if self.distractors_max < 0:
            raise ValueError(f"distractors_max must be >= 0, got {self.distractors_max}")
        for name, allowed in (("intervene_on", INTERVENABLE), ("hidden_roles", HIDEABLE), ("domains", tuple(DOMAINS))):
            values = getattr(self, name)
            bad = [v for v in values if v not in allowed]
            if bad:
                raise ValueError(f"{name}: unknown {', '.join(map(str, bad))}; allowed: {', '.join(allowed)}")
        if not self.intervene_on:
            raise ValueError("intervene_on must name at least one quantity")
        if not self.hidden_roles:
            raise ValueError("hidden_roles must name at least one quantity")


LEVELS: dict[str, GsmConfig] = {
    "easy": GsmConfig(min_ops=2, max_ops=2, count_max=10, amount_max=10, distractors_max=0,
                      intervene_on=("count",), hidden_roles=("rate", "extra", "fixed", "discount")),
    "medium": GsmConfig(min_ops=2, max_ops=4, count_max=15, amount_max=20, distractors_max=1,
                        intervene_on=("count", "periods", "count2")),
    "hard": GsmConfig(min_ops=3, max_ops=5, count_max=25, amount_max=50, money_step="0.25", distractors_max=2,
                      intervene_on=INTERVENABLE),
}


# -- one candidate ------------------------------------------------------------------------------
@dataclass
class Candidate:
    domain: Domain
    graph: QuantityGraph | None = None
    story: Story | None = None
    values: dict[str, Fraction] = field(default_factory=dict)
    intervention: dict[str, Fraction] = field(default_factory=dict)
    observed: Fraction | None = None
    answer: Fraction | None = None
    prior: Fraction | None = None
    reject: str | None = None


def _other(rng: random.Random, lo: int, hi: int, current: int) -> int:
    """A value in ``lo..hi`` different from ``current`` (which lies in the range)."""
    value = rng.randint(lo, hi - 1)
    return value + 1 if value >= current else value


def _ranges(config: GsmConfig) -> dict[str, tuple[int, int]]:
    """Inclusive ranges: counts in items, amounts in whole units (scaled by the step later)."""
    c, a = config.count_max, config.amount_max
    return {
        "count": (2, c), "count2": (2, max(4, c // 2)), "periods": (2, max(3, c // 3)), "people": (2, 6),
        "rate": (1, a), "extra": (1, max(2, a // 4)), "fixed": (1, a), "discount": (1, max(2, a // 2)),
        "rate2": (1, a),
    }


def _valid_outcome(domain: Domain, value: Fraction, config: GsmConfig) -> bool:
    if value <= 0 or value > config.max_abs_value:
        return False
    granularity = Fraction(1, 100) if domain.money else Fraction(1)
    return (value / granularity).denominator == 1


def propose(rng: random.Random, config: GsmConfig, *, naive_solver: bool = False) -> Candidate:
    """Draw one candidate and evaluate it; ``reject`` names the first failed filter.

    ``naive_solver`` solves each item with its own sympy call (the benchmark's baseline).
    """
    names = config.domains or tuple(DOMAINS)
    domain = DOMAINS[rng.choice(sorted(names))]
    cand = Candidate(domain)
    options = [c for c in COMPONENTS if c in domain.components]
    rng.shuffle(options)
    target_ops = rng.randint(config.min_ops, config.max_ops)
    chosen, ops = [], 1
    for comp in options:
        if ops + COMPONENT_OPS[comp] <= target_ops:
            chosen.append(comp)
            ops += COMPONENT_OPS[comp]
    components = tuple(c for c in COMPONENTS if c in chosen)
    step = Fraction(config.money_step)
    graph = build_graph(domain, components, step)
    hiddens = [q for q in HIDEABLE if q in graph.quantities and q in config.hidden_roles]
    if ops < config.min_ops or not hiddens:
        cand.reject = "no_structure"
        return cand
    hidden = rng.choice(hiddens)
    targets = [q for q in INTERVENABLE if q in graph.quantities and q in config.intervene_on and q != hidden
               and f"if_{q}" in domain.texts]
    if not targets:
        cand.reject = "no_structure"
        return cand
    target = rng.choice(targets)
    ranges = _ranges(config)
    values: dict[str, Fraction] = {}
    for name, quantity in graph.quantities.items():
        lo, hi = ranges[name]
        if name in COUNT_QUANTITIES:
            values[name] = Fraction(rng.randint(lo, hi))
        else:
            unit = quantity.step
            values[name] = unit * rng.randint(int(lo / unit), int(hi / unit))
    lo, hi = ranges[target]
    if target == "count2":
        lo = 0  # "If instead no jugs had been included": the answer may stop depending on their price
    if target in COUNT_QUANTITIES:
        new = Fraction(_other(rng, lo, hi, int(values[target])))
    else:
        unit = graph.quantities[target].step
        new = unit * _other(rng, int(lo / unit), int(hi / unit), int(values[target] / unit))
    phrasing = sample_phrasing(rng, domain, components, hidden, target)
    n_facts = 1 + len(components)
    n_distractors = min(rng.randint(0, config.distractors_max), len(domain.distractors))
    # distinct sentences, hence distinct entities: never "Lena is 33 years old. Lena is 8 years old."
    distractors = tuple((index, rng.randint(1, n_facts), rng.randint(2, 40))
                        for index in rng.sample(range(len(domain.distractors)), n_distractors))
    cand.graph, cand.values, cand.intervention = graph, values, {target: new}
    cand.story = Story(domain.name, components, hidden, target, phrasing, distractors)
    check(cand, config, naive_solver=naive_solver)
    return cand


def check(cand: Candidate, config: GsmConfig, *, naive_solver: bool = False) -> None:
    """Execute the graph and apply the filters; sets ``answer``, ``prior`` and ``reject``."""
    assert cand.graph is not None and cand.story is not None
    graph, values, domain, hidden = cand.graph, cand.values, cand.domain, cand.story.hidden
    (target, new), = cand.intervention.items()
    try:
        cand.observed = graph.evaluate(values)
        intervened = {**values, target: new}
        cand.answer = graph.evaluate(intervened)
    except ZeroDivisionError:
        cand.reject = "implausible"
        return
    if not (_valid_outcome(domain, cand.observed, config) and _valid_outcome(domain, cand.answer, config)):
        cand.reject = "implausible"
        return
    known = {k: v for k, v in values.items() if k != hidden}
    abduction = solve_hidden(graph, hidden, known, cand.observed, naive=naive_solver)
    if abduction.status == NON_UNIQUE:
        cand.reject = "non_unique"
        return
    if abduction.status in (INVALID, NO_SOLUTION):
        cand.reject = "invalid_hidden"
        return
    if abduction.status != OK or abduction.value != values[hidden]:  # pragma: no cover - solver invariant
        raise AssertionError(f"gsm solver recovered {abduction} instead of {values[hidden]}")
    if not depends_on(graph.output, hidden, intervened, graph.quantities[hidden].step):
        cand.reject = "no_dependence"
        return
    try:
        cand.prior = graph.evaluate({**intervened, hidden: Fraction(0)})
    except ZeroDivisionError:
        cand.prior = None
    if cand.prior == cand.answer:
        cand.reject = "prior_equals_answer"


def make_item(domain: str, components: tuple[str, ...], hidden: str, values: Mapping[str, Any],
              intervention: Mapping[str, Any], *, phrasing: Mapping[str, int] | None = None,
              distractors: tuple = (), variant: str = "counterfactual", config: GsmConfig | None = None) -> dict:
    """Build one item by hand (tests, docs, user-authored problems); raises ``ValueError`` naming the filter.

    ``values`` gives every quantity of the graph (the hidden one included), as ints or decimal strings.
    """
    if domain not in DOMAINS:
        raise ValueError(f"domain: unknown {domain!r}; known: {', '.join(DOMAINS)}")
    config = config or LEVELS["medium"]
    dom = DOMAINS[domain]
    components = tuple(c for c in COMPONENTS if c in components)
    graph = build_graph(dom, components, Fraction(config.money_step))
    if set(values) != set(graph.quantities):
        raise ValueError(f"values: expected exactly {', '.join(graph.quantities)}, got {', '.join(values)}")
    if hidden not in graph.quantities or hidden not in HIDEABLE:
        raise ValueError(f"hidden: {hidden!r} is not a hideable quantity of this graph")
    if len(intervention) != 1:
        raise ValueError("intervention: give exactly one quantity")
    (target, new), = intervention.items()
    if target == hidden or target not in graph.quantities or f"if_{target}" not in dom.texts:
        raise ValueError(f"intervention: cannot intervene on {target!r} in domain {domain!r}")
    cand = Candidate(dom, graph=graph,
                     values={k: to_fraction(v, f"values.{k}") for k, v in values.items()},
                     intervention={target: to_fraction(new, f"intervention.{target}")})
    distractors = tuple(tuple(d) for d in distractors)
    indices = [d[0] for d in distractors]
    if any(not 0 <= i < len(dom.distractors) for i in indices) or len(set(indices)) != len(indices):
        raise ValueError(f"distractors: sentence indices must be distinct and in 0..{len(dom.distractors) - 1}, "
                         f"got {indices}")
    cand.story = Story(domain, components, hidden, target, dict(phrasing or {}), distractors)
    check(cand, config)
    if cand.reject is not None:
        raise ValueError(f"problem rejected by filter {cand.reject!r}")
    return build_item(cand, variant=variant, seed=0, index=0, level=None, config=config_dict(config))


def config_dict(config: GsmConfig) -> dict:
    """The knobs as JSON (tuples become lists)."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in config.to_dict().items()}


STREAM_EXCLUDED_KNOBS = ("max_attempts",)  # a retry budget, not content: raising it keeps the items found


def stream_key(level: str | None, config: GsmConfig) -> str:
    """The part of the item stream's key that a level and its knobs contribute (canonical JSON)."""
    knobs = {k: v for k, v in config_dict(config).items() if k not in STREAM_EXCLUDED_KNOBS}
    return json.dumps({"level": level, "knobs": knobs}, sort_keys=True, separators=(",", ":"))


def item_stream(key: str, seed: int, index: int) -> random.Random:
    """The RNG of item ``index`` (``key`` from :func:`stream_key`); same across processes and hash seeds.

    Why the level and knobs are in the key: with ``(seed, index)`` alone, easy and medium item ``i`` made the
    same first draws and mostly shared their domain (81% of positions); now they are independent.
    """
    return random.Random(derive_seed("executable_cf", "gsm", GENERATOR_VERSION, key, int(seed), int(index)))


def dedup_key(cand: Candidate) -> str:
    assert cand.story is not None and cand.graph is not None
    return json.dumps([cand.domain.name, cand.graph.output, cand.story.hidden,
                       sorted((k, str(v)) for k, v in cand.values.items()),
                       sorted((k, str(v)) for k, v in cand.intervention.items())])


def build_item(cand: Candidate, *, variant: str, seed: int, index: int, level: str | None,
               config: dict) -> dict:
    """The JSON item. Numbers are canonical strings (:func:`format_number`): ``"77"``, ``"12.5"``."""
    assert cand.story is not None and cand.graph is not None and cand.observed is not None
    story, hidden = cand.story, cand.story.hidden
    text = render(cand.domain, story, cand.values, cand.observed, cand.intervention,
                  reveal=variant == "interventional")
    answer = format_number(cand.answer)
    item = {
        "id": f"gsm-{seed}-{index}",
        "family": "gsm",
        "level": level,
        "seed": seed,
        "index": index,
        "generator_version": GENERATOR_VERSION,
        "prompt_version": PROMPT_VERSION,
        "config": config,
        "variant": variant,
        "prompt": f"{text}\n\n{INSTRUCTION}",
        "question": text,
        "answer": [answer],
        "target": answer,
        "prior_answer": [format_number(cand.prior)] if cand.prior is not None else [],
        "domain": cand.domain.name,
        "n_ops": cand.graph.n_ops,
        "graph": cand.graph.to_json(),
        "hidden": hidden,
        "hidden_value": format_number(cand.values[hidden]),
        "hidden_prior": "0",
        "known_values": {k: format_number(v) for k, v in cand.values.items() if k != hidden},
        "observed": {"output": format_number(cand.observed)},
        "intervention": {k: format_number(v) for k, v in cand.intervention.items()},
        "story": story.to_json(),
    }
    if variant == "interventional":
        item["stated_values"] = {hidden: item["hidden_value"]}
    return item


# -- reading items back (oracle / no-abduction) ---------------------------------------------------
def _mapping(doc: Mapping[str, Any], name: str) -> Any:
    if name not in doc:
        raise ValueError(f"gsm item {doc.get('id', '?')}: missing field {name!r}")
    value = doc[name]
    if isinstance(value, str) and name in ("graph", "known_values", "observed", "intervention", "stated_values"):
        value = json.loads(value)  # an lm-eval document stores nested fields as JSON text
    return value


def _numbers(doc: Mapping[str, Any], name: str) -> dict[str, Fraction]:
    obj = _mapping(doc, name)
    if not isinstance(obj, dict):
        raise ValueError(f"gsm item {doc.get('id', '?')}: field {name!r} must be an object")
    return {k: to_fraction(v, f"{name}.{k}") for k, v in obj.items()}


def _parts(doc: Mapping[str, Any]) -> tuple[QuantityGraph, str, dict, dict]:
    try:
        graph = QuantityGraph.from_json(_mapping(doc, "graph"))
    except GraphError as exc:
        raise ValueError(f"gsm item {doc.get('id', '?')}: {exc}") from None
    hidden = doc.get("hidden")
    if hidden not in graph.quantities:
        raise ValueError(f"gsm item {doc.get('id', '?')}: field 'hidden' names no quantity of the graph: {hidden!r}")
    return graph, hidden, _numbers(doc, "known_values"), _numbers(doc, "intervention")


def solve_item(doc: Mapping[str, Any], *, ignore_observation: bool = False) -> Fraction:
    """The answer of an item from its structure (never from ``doc["answer"]``).

    Counterfactual: abduce the hidden quantity from ``observed`` (or, with ``ignore_observation``, assume
    ``hidden_prior``, i.e. absent). Interventional: the hidden quantity is stated (``stated_values``).
    """
    graph, hidden, known, intervention = _parts(doc)
    if doc.get("variant") == "interventional":
        value = _numbers(doc, "stated_values")[hidden]
    elif ignore_observation:
        value = to_fraction(doc.get("hidden_prior", "0"), "hidden_prior")
    else:
        observed = _numbers(doc, "observed")
        if "output" not in observed:
            raise ValueError(f"gsm item {doc.get('id', '?')}: field 'observed' needs 'output'")
        abduction = solve_hidden(graph, hidden, known, observed["output"])
        if abduction.status != OK:
            raise ValueError(f"gsm item {doc.get('id', '?')}: the observation does not determine {hidden!r} "
                             f"({abduction.status})")
        value = abduction.value  # type: ignore[assignment]
    return graph.evaluate({**known, hidden: value, **intervention})


class GsmFamily(Family):
    """Counterfactual GSM-style word problems (see the module docstring)."""

    name = "gsm"
    version = GENERATOR_VERSION
    description = "GSM-style word problems with one hidden quantity (math transfer test)"
    config_cls = GsmConfig
    levels = LEVELS
    default_level = "medium"

    def generate_items(self, *, variant: str, n: int, seed: int, config: FamilyConfig,
                       level: str | None = None, executor=None, progress: bool = False) -> GenerationResult:
        """``n`` items; item ``i`` depends only on (level, knobs, seed, i) and the items before it (duplicates)."""
        if variant not in VARIANTS:
            raise ValueError(f"variant must be one of {', '.join(VARIANTS)}, got {variant!r}")
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n!r}")
        if not isinstance(config, GsmConfig):
            raise ValueError(f"config must be a GsmConfig, got {type(config).__name__}")
        config.validate()
        seed = int(seed)
        rejected = dict.fromkeys(FILTERS, 0)
        items: list[dict] = []
        keys: set[str] = set()
        config_json = config_dict(config)
        stream = stream_key(level, config)
        bar = progress_bar(progress, total=n, desc="generate gsm", unit="item")
        start = time.perf_counter()
        try:
            for index in range(n):
                rng = item_stream(stream, seed, index)
                for _ in range(config.max_attempts):
                    cand = propose(rng, config)
                    if cand.reject is None:
                        key = dedup_key(cand)
                        if key in keys:
                            cand.reject = "duplicate"
                        else:
                            keys.add(key)
                    if cand.reject is not None:
                        rejected[cand.reject] += 1
                        continue
                    items.append(build_item(cand, variant=variant, seed=seed, index=index, level=level,
                                            config=config_json))
                    break
                else:
                    from cf_tasks.generation import GenerationError

                    raise GenerationError(
                        f"family 'gsm': item {index} (seed {seed}) found no acceptable problem in "
                        f"{config.max_attempts} attempts (max_attempts); rejections so far: {rejected}. "
                        "Widen the config's ranges or raise max_attempts.")
                bar.update(1)
        finally:
            bar.close()
        seconds = time.perf_counter() - start
        attempts = len(items) + sum(rejected.values())
        report = {
            "family": self.name, "variant": variant, "level": level, "seed": seed, "n": n,
            "generator_version": self.version, "accepted": len(items), "attempts": attempts,
            "rejected": rejected, "acceptance_rate": (len(items) / attempts) if attempts else None,
            "seconds": seconds, "items_per_s": (len(items) / seconds) if seconds > 0 else None,
        }
        logger.info("generated %d gsm items in %.2fs (rejected %s)", len(items), seconds, rejected)
        return GenerationResult(items=items, report=report)

    def oracle_answer(self, doc: Mapping[str, Any], executor=None) -> list:
        return [format_number(solve_item(doc))]

    def no_abduction_answer(self, doc: Mapping[str, Any], executor=None) -> list:
        return [format_number(solve_item(doc, ignore_observation=True))]


FAMILY = GsmFamily()
