"""Story templates: everyday domains that put words on a quantity graph.

Why one graph grammar and many vocabularies: the causal structure (what
multiplies what, what is added once) is shared by all domains and built by
:func:`build_graph` from a list of *components*; a :class:`Domain` only says
how each component is phrased (with several paraphrases each). So every domain
can express every graph its components allow, and the gold answer never
depends on wording.

Components (quantity names in brackets) and the ops they add::

    base       [count, rate]      count * rate                      1 op   (always)
    extra      [extra]            count * (rate + extra)            +1     a per-unit surcharge
    second     [count2, rate2]    ... + count2 * rate2              +2     a second kind of item
    periods    [periods]          (...) * periods                   +1     repeated every week/day
    fixed      [fixed]            ... + fixed                       +1     a one-off charge
    discount   [discount]         ... - discount                    +1     a one-off deduction
    people     [people]           (...) / people                    +1     shared equally; asks for a share

A domain phrases each component as a *fact* (value shown, ``"{extra}"``) and,
for quantities that can be hidden, a *hidden* sentence (value withheld) and a
*revealing* sentence (``"extra="``: "The service fee is $1 per tray."). The
interventional twin is the counterfactual story, word for word, with the
revealing sentence inserted between the observation and the question: the
model sees the same frame and observation and is told the hidden value
instead of having to abduce it.

Why rate interventions carry a scope: "if instead each ticket had cost €17"
is ambiguous when a per-ticket booking fee (``extra``) or a one-off fee
(``fixed``) is present (does €17 include the fee?), so the clause names what
stays out: "(excluding the booking fee, which stays the same)".
"""

from __future__ import annotations

import functools
import random
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Mapping

from .graph import Quantity, QuantityGraph, add, div, format_number, mul, sub

COMPONENTS = ("extra", "second", "periods", "fixed", "discount", "people")
COMPONENT_OPS = {"extra": 1, "second": 2, "periods": 1, "fixed": 1, "discount": 1, "people": 1}
COMPONENT_QUANTITIES = {
    "base": ("count", "rate"), "extra": ("extra",), "second": ("count2", "rate2"), "periods": ("periods",),
    "fixed": ("fixed",), "discount": ("discount",), "people": ("people",),
}
COUNT_QUANTITIES = ("count", "count2", "periods", "people")
HIDEABLE = ("rate", "extra", "fixed", "discount", "rate2", "count2")
INTERVENABLE = ("count", "periods", "count2", "people", "rate")
SENTENCE_ORDER = ("rate", "extra", "second", "periods", "fixed", "discount", "people")


@dataclass(frozen=True)
class Domain:
    """The vocabulary of one everyday setting.

    ``texts`` maps a sentence key to its paraphrases. Keys: ``rate``, ``extra``, ``fixed``,
    ``discount``, ``second``, ``periods``, ``people`` (facts); ``rate?``, ``extra?``, ``fixed?``,
    ``discount?``, ``rate2?``, ``count2?`` (hidden versions); ``observe``, ``if_count``, ``if_count2``,
    ``if_periods``, ``if_people``, ``if_rate`` (observation and intervention clauses); ``ask`` (questions
    without a split or repetition). Placeholders: a quantity name (``{rate}``: formatted amount;
    ``{count}``: a number), ``{count_n}``/``{count2_n}``/``{periods_n}``/``{people_n}`` (number + noun),
    ``{count_part}`` (``{count_n}`` plus "each week" when repeated), ``{outcome}``, ``{y}``.
    Revealing sentences ``rate=``, ``extra=``, ... (interventional twin) state a hidden quantity's value;
    ``if_count2_none`` (optional) replaces ``if_count2`` when the second item is dropped ("had not waited").

    ``labels`` name the ``extra`` and ``fixed`` charges ("the booking fee"): a rate intervention excludes them
    by name. ``distractors`` are ``(entity, sentence)`` pairs; one story never tells two about one entity.
    """

    name: str
    item: tuple[str, str]
    outcome: str
    texts: Mapping[str, tuple[str, ...]]
    currency: str | None = "$"  # money domain when set
    unit: tuple[str, str] | None = None  # amount domains: ("cup of flour", "cups of flour")
    item2: tuple[str, str] | None = None
    period: tuple[str, str] | None = None
    people_noun: tuple[str, str] | None = None
    share: str | None = None  # outcome when shared: "each colleague's share"
    distractors: tuple[tuple[str, str], ...] = ()  # (entity, sentence with one irrelevant number ``{d}``)
    components: tuple[str, ...] = field(default=())  # optional components this domain supports
    labels: Mapping[str, str] = field(default_factory=dict)  # "extra"/"fixed" -> "the booking fee"
    count_per_period: bool = True  # "6 trays each week" (False: "21 hens", a stock rather than a flow)

    @property
    def money(self) -> bool:
        return self.currency is not None


def _noun(n: int, forms: tuple[str, str]) -> str:
    if n == 0:
        return f"no {forms[1]}"
    return f"{n} {forms[0] if n == 1 else forms[1]}"


def format_amount(domain: Domain, value: Fraction) -> str:
    """``$6``, ``$6.50``, ``-$3`` for money; ``3 cups of flour`` for amounts."""
    if domain.money:
        sign = "-" if value < 0 else ""
        v = abs(value)
        cents = v * 100
        if v.denominator == 1 or cents.denominator != 1:
            text = format_number(v)
        else:
            text = f"{cents.numerator // 100}.{cents.numerator % 100:02d}"
        return f"{sign}{domain.currency}{text}"
    assert domain.unit is not None
    text = format_number(value)
    return f"{text} {domain.unit[0] if value == 1 else domain.unit[1]}"


def build_graph(domain: Domain, components: tuple[str, ...], money_step: Fraction = Fraction(1)) -> QuantityGraph:
    """The quantity graph of a story with the given optional components (see the module docstring).

    Cached: generation asks for the same few structures over and over. Treat the result as read-only.
    """
    components, money_step = tuple(components), Fraction(money_step)
    if DOMAINS.get(domain.name) is domain:
        return _cached_graph(domain.name, components, money_step)
    return _build_graph(domain, components, money_step)


@functools.lru_cache(maxsize=4096)
def _cached_graph(domain_name: str, components: tuple[str, ...], money_step: Fraction) -> QuantityGraph:
    return _build_graph(DOMAINS[domain_name], components, money_step)


def _build_graph(domain: Domain, components: tuple[str, ...], money_step: Fraction) -> QuantityGraph:
    unknown = [c for c in components if c not in COMPONENTS]
    if unknown:
        raise ValueError(f"components: unknown {unknown}; known: {', '.join(COMPONENTS)}")
    unsupported = [c for c in components if c not in domain.components]
    if unsupported:
        raise ValueError(f"components: domain {domain.name!r} does not support {unsupported}")
    has = set(components)
    unit_kind = "money" if domain.money else "amount"
    unit_step = money_step if domain.money else Fraction(1)
    quantities: dict[str, Quantity] = {}
    for comp in ("base",) + tuple(c for c in COMPONENTS if c in has):
        for name in COMPONENT_QUANTITIES[comp]:
            if name in COUNT_QUANTITIES:
                minimum = Fraction(0) if name == "count2" else Fraction(1)
                quantities[name] = Quantity(name, "count", Fraction(1), minimum)
            else:
                quantities[name] = Quantity(name, unit_kind, unit_step, unit_step)
    unit = add("rate", "extra") if "extra" in has else "rate"
    total = mul("count", unit)
    if "second" in has:
        total = add(total, mul("count2", "rate2"))
    if "periods" in has:
        total = mul(total, "periods")
    if "fixed" in has:
        total = add(total, "fixed")
    if "discount" in has:
        total = sub(total, "discount")
    if "people" in has:
        total = div(total, "people")
    return QuantityGraph(quantities, total)


@dataclass(frozen=True)
class Story:
    """Everything needed to render a problem's text, besides the numbers."""

    domain: str
    components: tuple[str, ...]
    hidden: str
    target: str  # the intervened quantity
    phrasing: Mapping[str, int]  # sentence key -> paraphrase index (missing key: 0)
    distractors: tuple[tuple[int, int, int], ...] = ()  # (sentence index, insert position, number)

    def to_json(self) -> dict:
        return {"domain": self.domain, "components": list(self.components), "hidden": self.hidden,
                "target": self.target, "phrasing": dict(sorted(self.phrasing.items())),
                "distractors": [list(d) for d in self.distractors]}


def _slots(domain: Domain, story: Story, values: Mapping[str, Fraction]) -> dict[str, str]:
    has = set(story.components)
    slots: dict[str, str] = {}
    for name, value in values.items():
        slots[name] = format_number(value) if name in COUNT_QUANTITIES else format_amount(domain, value)
    if "count" in values:
        slots["count_n"] = _noun(int(values["count"]), domain.item)
        per = f" each {domain.period[0]}" if "periods" in has and domain.period and domain.count_per_period else ""
        slots["count_part"] = slots["count_n"] + per
    if "count2" in values and domain.item2:
        slots["count2_n"] = _noun(int(values["count2"]), domain.item2)
    if "periods" in values and domain.period:
        slots["periods_n"] = _noun(int(values["periods"]), domain.period)
    if "people" in values and domain.people_noun:
        slots["people_n"] = _noun(int(values["people"]), domain.people_noun)
    if "people" in has and domain.share:
        slots["outcome"] = domain.share
    elif "periods" in has and "periods_n" in slots:
        slots["outcome"] = f"{domain.outcome} for the {slots['periods_n']}"
    else:
        slots["outcome"] = domain.outcome
    return slots


def _pick(domain: Domain, story: Story, key: str) -> str:
    options = domain.texts[key]
    return options[story.phrasing.get(key, 0) % len(options)]


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def rate_scope(domain: Domain, components: tuple[str, ...]) -> str:
    """What a new per-unit rate excludes: " (excluding the booking fee, which stays the same)" or ""."""
    names = [domain.labels[c] for c in ("extra", "fixed") if c in components]
    if not names:
        return ""
    verb = "stays" if len(names) == 1 else "stay"
    return f" (excluding {' and '.join(names)}, which {verb} the same)"


def intervention_clause(domain: Domain, story: Story, new_slots: Mapping[str, str],
                        intervention: Mapping[str, Fraction]) -> str:
    """"If instead 11 trays were ordered"; a rate names exactly what changes (:func:`rate_scope`)."""
    key = f"if_{story.target}"
    if story.target == "count2" and intervention["count2"] == 0 and "if_count2_none" in domain.texts:
        key = "if_count2_none"
    clause = _pick(domain, story, key).format(**new_slots)
    if story.target == "rate":
        clause += rate_scope(domain, story.components)
    return clause


def render(domain: Domain, story: Story, values: Mapping[str, Fraction], observed: Fraction,
           intervention: Mapping[str, Fraction], *, reveal: bool) -> str:
    """The problem text: facts (hidden quantity withheld), the observation and the counterfactual question.

    ``values`` holds every quantity including the hidden one. ``reveal`` (interventional twin) inserts one
    sentence stating the hidden quantity's value right after the observation; the rest is identical.
    """
    has = set(story.components)
    slots = _slots(domain, story, values)
    facts: list[str] = []
    for key in SENTENCE_ORDER:
        if key != "rate" and key not in has:
            continue
        if key == "second" and story.hidden in ("rate2", "count2"):
            key = f"{story.hidden}?"
        elif key == story.hidden:
            key = f"{key}?"
        facts.append(_pick(domain, story, key).format(**slots))
    for index, position, number in story.distractors:
        sentence = domain.distractors[index % len(domain.distractors)][1].format(d=number)
        facts.insert(min(position, len(facts)), sentence)
    obs = _pick(domain, story, "observe").format(**{**slots, "y": format_amount(domain, observed)})
    revealed = [_pick(domain, story, f"{story.hidden}=").format(**slots)] if reveal else []
    new_slots = _slots(domain, story, {**values, **intervention})
    clause = intervention_clause(domain, story, new_slots, intervention)
    if has & {"people", "periods"}:
        ask = "what would {outcome} have been?".format(**new_slots)
    else:
        ask = _pick(domain, story, "ask").format(**new_slots)
    question = f"{clause}, {ask}"
    return " ".join([*facts, _cap(obs), *revealed, _cap(question)])


# ------------------------------------------------------------------------------------------
# The domains. Paraphrase 0 of the catering domain reproduces the paper's example verbatim.
# ------------------------------------------------------------------------------------------
def _d(**kw) -> Domain:
    texts = {k: (v,) if isinstance(v, str) else tuple(v) for k, v in kw.pop("texts").items()}
    texts.setdefault("ask", ("what would {outcome} have been?",))
    return Domain(texts=texts, **kw)


DOMAINS: dict[str, Domain] = {d.name: d for d in [
    _d(name="catering", item=("tray", "trays"), outcome="the total", item2=("jug of lemonade", "jugs of lemonade"),
       period=("week", "weeks"), people_noun=("colleague", "colleagues"), share="each colleague's share",
       components=("extra", "second", "periods", "fixed", "discount", "people"),
       labels={"extra": "the service fee", "fixed": "the setup fee"},
       distractors=(("caterer", "The caterer has been in business for {d} years."),
                    ("party room", "The party room has {d} chairs.")),
       texts={
           "rate": ["Every catering tray is {rate}.", "Each catering tray costs {rate}."],
           "rate?": ["Every catering tray costs the same, but the price is not listed."],
           "extra": ["There is a per-tray service fee of {extra}.", "A service fee of {extra} is charged per tray."],
           "extra?": ["There is a per-tray service fee.",
                      "A service fee is charged per tray, but its amount is not shown."],
           "second": ["The order also includes {count2_n} at {rate2} each."],
           "rate2?": ["The order also includes {count2_n}, all at the same price."],
           "count2?": ["The order also includes some jugs of lemonade at {rate2} each."],
           "periods": ["The same order is delivered every week for {periods_n}."],
           "fixed": ["A one-time setup fee of {fixed} is added.", "There is also a one-off setup fee of {fixed}."],
           "fixed?": ["A one-time setup fee is added.", "There is also a one-off setup fee."],
           "discount": ["A loyalty voucher takes {discount} off, once."],
           "discount?": ["A loyalty voucher takes a fixed amount off, once."],
           "people": ["The whole cost is shared equally by {people_n}."],
           "observe": ["For {count_part} {outcome} is {y}.", "With {count_part}, {outcome} comes to {y}."],
           "if_count": ["If instead {count_part} were ordered", "Had {count_part} been ordered instead"],
           "if_count2": ["If instead {count2_n} had been included"],
           "if_periods": ["If instead the order had run for {periods_n}"],
           "if_people": ["If instead the cost had been shared by {people_n}"],
           "if_rate": ["If instead each tray had cost {rate}"],
           "ask": ["what amount would be shown?", "what would {outcome} have been?"],
           "rate=": "The price per tray is {rate}.", "extra=": "The service fee is {extra} per tray.",
           "fixed=": "The setup fee is {fixed}.", "discount=": "The loyalty voucher is worth {discount}.",
           "rate2=": "Each jug of lemonade costs {rate2}.", "count2=": "The order includes {count2_n}.",
       }),
    _d(name="taxi", item=("kilometre", "kilometres"), outcome="the fare",
       item2=("minute", "minutes"),
       period=("day", "days"), people_noun=("friend", "friends"), share="each friend's part of the fare",
       components=("extra", "second", "periods", "fixed", "discount", "people"),
       labels={"extra": "the night surcharge", "fixed": "the booking fee"},
       distractors=(("driver's car", "The driver's car is {d} years old."), ("trip", "The trip starts at gate {d}.")),
       texts={
           "rate": ["The taxi charges {rate} per kilometre.", "A kilometre in the taxi costs {rate}."],
           "rate?": ["The taxi charges a fixed price per kilometre, but the meter does not show it."],
           "extra": ["At night there is a surcharge of {extra} per kilometre, and this is a night ride."],
           "extra?": ["At night there is a surcharge per kilometre, and this is a night ride."],
           "second": ["The taxi also waits for {count2_n}, billed at {rate2} per minute."],
           "rate2?": ["The taxi also waits for {count2_n}, billed at a fixed rate per minute."],
           "count2?": ["The taxi also waits for a while, billed at {rate2} per minute."],
           "periods": ["The same ride is taken on {periods_n}."],
           "fixed": ["The taxi app adds a one-time booking fee of {fixed}.",
                     "A one-off booking fee of {fixed} is added."],
           "fixed?": ["The taxi app adds a one-time booking fee.", "A one-off booking fee is added to the fare."],
           "discount": ["A one-time promo code takes {discount} off."],
           "discount?": ["A one-time promo code takes a fixed amount off."],
           "people": ["The total is split equally among {people_n}."],
           "observe": ["For a ride of {count_part} {outcome} is {y}.", "Riding {count_part}, {outcome} came to {y}."],
           "if_count": ["If instead the ride had been {count_part}", "Had the ride been {count_part} instead"],
           "if_count2": ["If instead the taxi had waited for {count2_n}"],
           "if_count2_none": ["If instead the taxi had not waited at all"],
           "if_periods": ["If instead the ride had been taken on {periods_n}"],
           "if_people": ["If instead it had been split among {people_n}"],
           "if_rate": ["If instead the taxi had charged {rate} per kilometre"],
           "ask": ["what would the meter have shown?", "what would {outcome} have been?"],
           "rate=": "The price per kilometre is {rate}.", "extra=": "The night surcharge is {extra} per kilometre.",
           "fixed=": "The booking fee is {fixed}.", "discount=": "The promo code is worth {discount}.",
           "rate2=": "Waiting is billed at {rate2} per minute.", "count2=": "The taxi waits for {count2_n}.",
       }),
    _d(name="bakery", item=("batch of bread", "batches of bread"), outcome="her total flour use", currency=None,
       unit=("cup of flour", "cups of flour"), item2=("pizza base", "pizza bases"), period=("day", "days"),
       components=("extra", "second", "periods", "fixed", "discount"),
       labels={"extra": "the dusting flour", "fixed": "the starter's flour"},
       distractors=(("oven", "Her oven can hold {d} loaves at a time."),
                    ("bakery", "She opened the bakery {d} years ago.")),
       texts={
           "rate": ["Mia's recipe needs {rate} for each batch of bread.", "Each batch of bread takes {rate}."],
           "rate?": ["Mia's recipe needs the same amount of flour for each batch of bread."],
           "extra": ["For each batch she also dusts the counter with {extra}."],
           "extra?": ["For each batch she also dusts the counter with some extra flour."],
           "second": ["She also makes {count2_n} that need {rate2} each."],
           "rate2?": ["She also makes {count2_n}, which all need the same amount of flour."],
           "count2?": ["She also makes some pizza bases that need {rate2} each."],
           "periods": ["She bakes exactly the same every day for {periods_n}."],
           "fixed": ["She feeds her sourdough starter {fixed} once."],
           "fixed?": ["She also feeds her sourdough starter some flour once."],
           "discount": ["Over the whole time she reuses {discount} swept up from the counter, which is not counted."],
           "discount?": ["Over the whole time she reuses some flour swept up from the counter, which is not counted."],
           "observe": ["For {count_part} {outcome} comes to {y}.", "Baking {count_part}, she uses {y} in all."],
           "if_count": ["If instead she had baked {count_part}"],
           "if_count2": ["If instead she had made {count2_n}"],
           "if_periods": ["If instead she had baked for {periods_n}"],
           "if_rate": ["If instead each batch had taken {rate}"],
           "ask": ["how much flour would she have used?", "what would {outcome} have been?"],
           "rate=": "Each batch of bread takes {rate}.", "extra=": "The counter is dusted with {extra} per batch.",
           "fixed=": "The starter gets {fixed}.", "discount=": "She reuses {discount} from the counter.",
           "rate2=": "Each pizza base needs {rate2}.", "count2=": "She makes {count2_n}.",
       }),
    _d(name="car_rental", item=("day", "days"), outcome="the rental bill", currency="€",
       item2=("toll pass", "toll passes"), people_noun=("friend", "friends"), share="each friend's share",
       components=("extra", "second", "fixed", "discount", "people"),
       labels={"extra": "the insurance", "fixed": "the cleaning fee"},
       distractors=(("car", "The car has {d} thousand kilometres on the clock."),
                    ("rental office", "The rental office is on street number {d}.")),
       texts={
           "rate": ["The car costs {rate} per day to rent.", "Renting the car is {rate} a day."],
           "rate?": ["The car has a fixed daily rental price that the receipt does not list."],
           "extra": ["Insurance adds {extra} per day."],
           "extra?": ["Insurance adds a fixed amount per day."],
           "second": ["They also buy {count2_n} at {rate2} each."],
           "rate2?": ["They also buy {count2_n}, all at the same price."],
           "count2?": ["They also buy some toll passes at {rate2} each."],
           "fixed": ["There is a one-time cleaning fee of {fixed}."],
           "fixed?": ["There is a one-time cleaning fee."],
           "discount": ["A membership discount takes {discount} off the bill."],
           "discount?": ["A membership discount takes a fixed amount off the bill."],
           "people": ["The friends split the bill equally: there are {people_n}."],
           "observe": ["For {count_part} {outcome} is {y}.", "Renting for {count_part}, {outcome} came to {y}."],
           "if_count": ["If instead the car had been rented for {count_part}"],
           "if_count2": ["If instead they had bought {count2_n}"],
           "if_people": ["If instead the bill had been split among {people_n}"],
           "if_rate": ["If instead the car had cost {rate} per day"],
           "ask": ["what would {outcome} have been?", "how much would they have paid?"],
           "rate=": "The daily rental price is {rate}.", "extra=": "Insurance is {extra} per day.",
           "fixed=": "The cleaning fee is {fixed}.", "discount=": "The membership discount is {discount}.",
           "rate2=": "Each toll pass costs {rate2}.", "count2=": "They buy {count2_n}.",
       }),
    _d(name="reading", item=("day", "days"), outcome="Lena's page count", currency=None,
       unit=("page", "pages"), item2=("magazine article", "magazine articles"),
       components=("extra", "second", "fixed", "discount"),
       labels={"extra": "the comics", "fixed": "the pages from the first evening"},
       distractors=(("book", "Her book has a chapter called 'Year {d}'."), ("Lena's age", "Lena is {d} years old.")),
       texts={
           "rate": ["Lena reads {rate} of her novel every day.", "Every day, Lena reads {rate}."],
           "rate?": ["Lena reads the same number of pages of her novel every day."],
           "extra": ["On the bus she also reads {extra} of comics each day."],
           "extra?": ["On the bus she also reads a few pages of comics each day, always the same number."],
           "second": ["She also reads {count2_n} of {rate2} each."],
           "rate2?": ["She also reads {count2_n}, all of the same length."],
           "count2?": ["She also reads some magazine articles of {rate2} each."],
           "fixed": ["Before this she had already read {fixed} on the first evening."],
           "fixed?": ["Before this she had already read a few pages on the first evening."],
           "discount": ["She skips {discount} of maps at the start of one book, which do not count."],
           "discount?": ["She skips some pages of maps at the start of one book, which do not count."],
           "observe": ["After {count_part}, {outcome} is {y}."],
           "if_count": ["If instead she had kept reading for {count_part}"],
           "if_count2": ["If instead she had read {count2_n}"],
           "if_rate": ["If instead she had read {rate} of the novel every day"],
           "ask": ["how many pages would she have read?", "what would {outcome} have been?"],
           "rate=": "Lena reads {rate} of her novel each day.", "extra=": "She reads {extra} of comics each day.",
           "fixed=": "On the first evening she read {fixed}.", "discount=": "The maps take up {discount}.",
           "rate2=": "Each magazine article is {rate2} long.", "count2=": "She reads {count2_n}.",
       }),
    _d(name="gym", item=("month", "months"), outcome="the membership cost",
       item2=("personal training session", "personal training sessions"),
       components=("extra", "second", "fixed", "discount"),
       labels={"extra": "the locker", "fixed": "the joining fee"},
       distractors=(("gym", "The gym has {d} treadmills."), ("car park", "The gym's car park has {d} spaces.")),
       texts={
           "rate": ["The gym costs {rate} a month.", "A month at the gym costs {rate}."],
           "rate?": ["The gym charges the same amount every month."],
           "extra": ["A locker costs {extra} per month on top."],
           "extra?": ["A locker costs a fixed amount per month on top."],
           "second": ["Omar also books {count2_n} at {rate2} each."],
           "rate2?": ["Omar also books {count2_n}, all at one price."],
           "count2?": ["Omar also books some personal training sessions at {rate2} each."],
           "fixed": ["There is a joining fee of {fixed}."],
           "fixed?": ["There is a joining fee."],
           "discount": ["A student discount takes {discount} off the total."],
           "discount?": ["A student discount takes a fixed amount off the total."],
           "observe": ["For {count_part} {outcome} is {y}.", "Over {count_part}, Omar paid {y}."],
           "if_count": ["If instead Omar had stayed for {count_part}"],
           "if_count2": ["If instead he had booked {count2_n}"],
           "if_rate": ["If instead the gym had cost {rate} a month"],
           "ask": ["how much would he have paid?", "what would {outcome} have been?"],
           "rate=": "The monthly price is {rate}.", "extra=": "The locker is {extra} per month.",
           "fixed=": "The joining fee is {fixed}.", "discount=": "The student discount is {discount}.",
           "rate2=": "Each personal training session costs {rate2}.", "count2=": "Omar books {count2_n}.",
       }),
    _d(name="plumber", item=("hour", "hours"), outcome="the invoice", currency="£",
       item2=("replacement valve", "replacement valves"), people_noun=("housemate", "housemates"),
       share="each housemate's share", components=("extra", "second", "fixed", "discount", "people"),
       labels={"extra": "the weekend surcharge", "fixed": "the call-out fee"},
       distractors=(("van", "The plumber's van is {d} years old."), ("house", "The house was built {d} years ago.")),
       texts={
           "rate": ["The plumber charges {rate} per hour.", "An hour of the plumber's work costs {rate}."],
           "rate?": ["The plumber charges a fixed hourly rate, which the invoice leaves out."],
           "extra": ["Because it is a weekend job, there is a surcharge of {extra} per hour."],
           "extra?": ["Because it is a weekend job, there is an hourly surcharge."],
           "second": ["The plumber also fits {count2_n} at {rate2} each."],
           "rate2?": ["The plumber also fits {count2_n}, all at the same price."],
           "count2?": ["The plumber also fits some replacement valves at {rate2} each."],
           "fixed": ["The call-out fee is {fixed}."],
           "fixed?": ["There is a call-out fee."],
           "discount": ["A returning-customer discount of {discount} is taken off."],
           "discount?": ["A returning-customer discount of a fixed amount is taken off."],
           "people": ["The invoice is shared equally by {people_n}."],
           "observe": ["For {count_part} of work {outcome} is {y}."],
           "if_count": ["If instead the job had taken {count_part}"],
           "if_count2": ["If instead {count2_n} had been fitted"],
           "if_people": ["If instead it had been shared by {people_n}"],
           "if_rate": ["If instead the plumber had charged {rate} per hour"],
           "ask": ["what would {outcome} have come to?", "what would {outcome} have been?"],
           "rate=": "The hourly rate is {rate}.", "extra=": "The weekend surcharge is {extra} per hour.",
           "fixed=": "The call-out fee is {fixed}.", "discount=": "The returning-customer discount is {discount}.",
           "rate2=": "Each replacement valve costs {rate2}.", "count2=": "The plumber fits {count2_n}.",
       }),
    _d(name="electricity", item=("kilowatt-hour", "kilowatt-hours"), outcome="the bill", period=("month", "months"),
       people_noun=("flatmate", "flatmates"), share="each flatmate's share",
       components=("extra", "periods", "fixed", "discount", "people"),
       labels={"extra": "the grid levy", "fixed": "the standing charge"},
       distractors=(("flat", "The flat is on floor {d}."), ("meter", "The meter's serial number ends in {d}.")),
       texts={
           "rate": ["Electricity costs {rate} per kilowatt-hour.", "Each kilowatt-hour of electricity costs {rate}."],
           "rate?": ["Electricity is billed at a fixed price per kilowatt-hour."],
           "extra": ["A grid levy of {extra} is added per kilowatt-hour."],
           "extra?": ["A grid levy is added per kilowatt-hour."],
           "periods": ["The flat uses the same amount every month, and the bill covers {periods_n}."],
           "fixed": ["The standing charge is {fixed} for the whole bill."],
           "fixed?": ["There is a standing charge for the whole bill."],
           "discount": ["A one-off solar credit of {discount} is deducted from the bill."],
           "discount?": ["A one-off solar credit of a fixed amount is deducted from the bill."],
           "people": ["The bill is split equally among {people_n}."],
           "observe": ["Using {count_part}, {outcome} is {y}."],
           "if_count": ["If instead the flat had used {count_part}"],
           "if_periods": ["If instead the bill had covered {periods_n}"],
           "if_people": ["If instead it had been split among {people_n}"],
           "if_rate": ["If instead electricity had cost {rate} per kilowatt-hour"],
           "ask": ["what would {outcome} have been?", "how much would the bill have been?"],
           "rate=": "Electricity costs {rate} per kilowatt-hour.",
           "extra=": "The grid levy is {extra} per kilowatt-hour.",
           "fixed=": "The standing charge is {fixed}.", "discount=": "The solar credit is {discount}.",
       }),
    _d(name="concert", item=("ticket", "tickets"), outcome="the order total", currency="€",
       item2=("programme", "programmes"), people_noun=("friend", "friends"), share="each friend's share",
       components=("extra", "second", "fixed", "discount", "people"),
       labels={"extra": "the booking fee", "fixed": "the handling fee"},
       distractors=(("band", "The band has released {d} albums."),
                    ("doors", "The doors open {d} minutes before the show.")),
       texts={
           "rate": ["Each concert ticket costs {rate}.", "A ticket for the concert is {rate}."],
           "rate?": ["All concert tickets cost the same."],
           "extra": ["The website adds a booking fee of {extra} per ticket."],
           "extra?": ["The website adds a booking fee per ticket."],
           "second": ["The order also includes {count2_n} at {rate2} each."],
           "rate2?": ["The order also includes {count2_n}, all at the same price."],
           "count2?": ["The order also includes some programmes at {rate2} each."],
           "fixed": ["A handling fee of {fixed} is charged per order."],
           "fixed?": ["A handling fee is charged per order."],
           "discount": ["A fan-club code takes {discount} off the order."],
           "discount?": ["A fan-club code takes a fixed amount off the order."],
           "people": ["The friends split the order equally; there are {people_n}."],
           "observe": ["For {count_part} {outcome} is {y}.", "Buying {count_part}, {outcome} came to {y}."],
           "if_count": ["If instead {count_part} had been bought"],
           "if_count2": ["If instead {count2_n} had been included"],
           "if_people": ["If instead the order had been split among {people_n}"],
           "if_rate": ["If instead each ticket had cost {rate}"],
           "ask": ["what would the checkout page have shown?", "what would {outcome} have been?"],
           "rate=": "Each ticket costs {rate}.", "extra=": "The booking fee is {extra} per ticket.",
           "fixed=": "The handling fee is {fixed}.", "discount=": "The fan-club code is worth {discount}.",
           "rate2=": "Each programme costs {rate2}.", "count2=": "The order includes {count2_n}.",
       }),
    _d(name="shipping", item=("kilogram", "kilograms"), outcome="the shipping cost",
       item2=("roll of bubble wrap", "rolls of bubble wrap"), period=("week", "weeks"),
       components=("extra", "second", "periods", "fixed", "discount"),
       labels={"extra": "the fuel surcharge", "fixed": "the label fee"},
       distractors=(("depot", "The depot is {d} kilometres away."), ("shop", "The shop has {d} employees.")),
       texts={
           "rate": ["The courier charges {rate} per kilogram.", "Shipping costs {rate} for each kilogram."],
           "rate?": ["The courier charges a fixed price per kilogram."],
           "extra": ["A fuel surcharge of {extra} per kilogram applies."],
           "extra?": ["A fuel surcharge per kilogram applies."],
           "second": ["Each shipment also needs {count2_n} at {rate2} each."],
           "rate2?": ["Each shipment also needs {count2_n}, all at the same price."],
           "count2?": ["Each shipment also needs some rolls of bubble wrap at {rate2} each."],
           "periods": ["The same shipment goes out every week for {periods_n}."],
           "fixed": ["A label fee of {fixed} is charged once."],
           "fixed?": ["A label fee is charged once."],
           "discount": ["A one-time business discount of {discount} is deducted."],
           "discount?": ["A one-time business discount of a fixed amount is deducted."],
           "observe": ["Shipping {count_part}, {outcome} is {y}."],
           "if_count": ["If instead the shop had shipped {count_part}"],
           "if_count2": ["If instead each shipment had needed {count2_n}"],
           "if_periods": ["If instead the shipments had gone out for {periods_n}"],
           "if_rate": ["If instead the courier had charged {rate} per kilogram"],
           "ask": ["what would {outcome} have been?", "how much would the shop have paid?"],
           "rate=": "The courier charges {rate} per kilogram.", "extra=": "The fuel surcharge is {extra} per kilogram.",
           "fixed=": "The label fee is {fixed}.", "discount=": "The business discount is {discount}.",
           "rate2=": "Each roll of bubble wrap costs {rate2}.", "count2=": "Each shipment needs {count2_n}.",
       }),
    _d(name="eggs", item=("hen", "hens"), outcome="the egg count", currency=None,
       unit=("egg", "eggs"), item2=("duck", "ducks"), period=("week", "weeks"), people_noun=("family", "families"),
       share="the number of eggs each family gets",
       components=("extra", "second", "periods", "fixed", "discount", "people"),
       labels={"extra": "the extra eggs from the new feed", "fixed": "the neighbour's eggs"}, count_per_period=False,
       distractors=(("farm", "The farm has {d} apple trees."), ("barn", "The barn was painted {d} years ago.")),
       texts={
           "rate": ["Each hen on the farm lays {rate} a week.", "A hen lays {rate} per week."],
           "rate?": ["Every hen lays the same number of eggs a week."],
           "extra": ["With the new feed, each hen lays {extra} more per week."],
           "extra?": ["With the new feed, each hen lays a few more eggs per week."],
           "second": ["There are also {count2_n} that lay {rate2} a week each."],
           "rate2?": ["There are also {count2_n}, which all lay the same number of eggs a week."],
           "count2?": ["There are also some ducks that lay {rate2} a week each."],
           "periods": ["The farmer collects eggs for {periods_n}."],
           "fixed": ["A neighbour also brings {fixed} once."],
           "fixed?": ["A neighbour also brings a basket of eggs once."],
           "discount": ["In total, the farmer throws away {discount} that broke."],
           "discount?": ["In total, the farmer throws away a few eggs that broke."],
           "people": ["All the eggs are shared equally among {people_n}."],
           "observe": ["With {count_part}, {outcome} is {y}.", "With {count_part}, {outcome} comes to {y}."],
           "if_count": ["If instead the farm had kept {count_part}"],
           "if_count2": ["If instead there had been {count2_n}"],
           "if_periods": ["If instead the farmer had collected for {periods_n}"],
           "if_people": ["If instead the eggs had been shared among {people_n}"],
           "ask": ["how many eggs would have been collected?", "what would {outcome} have been?"],
           "rate=": "Each hen lays {rate} a week.", "extra=": "With the new feed, each hen lays {extra} more per week.",
           "fixed=": "The neighbour brings {fixed}.", "discount=": "The farmer throws away {discount}.",
           "rate2=": "Each duck lays {rate2} a week.", "count2=": "There are {count2_n}.",
       }),
    _d(name="painting", item=("room", "rooms"), outcome="the amount of paint to buy", currency=None,
       unit=("litre of paint", "litres of paint"), item2=("cupboard", "cupboards"),
       components=("extra", "second", "fixed", "discount"),
       labels={"extra": "the primer coat", "fixed": "the paint for the front door"},
       distractors=(("house", "The house has {d} windows."), ("painter", "The painter has {d} brushes.")),
       texts={
           "rate": ["Each room needs {rate}.", "Painting a room takes {rate}."],
           "rate?": ["Each room needs the same amount of paint."],
           "extra": ["Each room also needs {extra} for a primer coat."],
           "extra?": ["Each room also needs some paint for a primer coat."],
           "second": ["There are also {count2_n} that need {rate2} each."],
           "rate2?": ["There are also {count2_n}, which all need the same amount of paint."],
           "count2?": ["There are also some cupboards that need {rate2} each."],
           "fixed": ["The front door needs {fixed}."],
           "fixed?": ["The front door needs some paint too."],
           "discount": ["The painter still has {discount} from an earlier job, so that much need not be bought."],
           "discount?": ["The painter still has some paint from an earlier job, so that much need not be bought."],
           "observe": ["For {count_part} {outcome} comes to {y}."],
           "if_count": ["If instead {count_part} had been painted"],
           "if_count2": ["If instead there had been {count2_n}"],
           "if_rate": ["If instead each room had needed {rate}"],
           "ask": ["how much paint would have to be bought?", "what would {outcome} have been?"],
           "rate=": "Each room needs {rate}.", "extra=": "The primer coat takes {extra} per room.",
           "fixed=": "The front door needs {fixed}.", "discount=": "The leftover paint amounts to {discount}.",
           "rate2=": "Each cupboard needs {rate2}.", "count2=": "There are {count2_n}.",
       }),
    _d(name="bake_sale", item=("box of cookies", "boxes of cookies"), outcome="the money raised",
       item2=("cup of cocoa", "cups of cocoa"), period=("Saturday", "Saturdays"), people_noun=("club", "clubs"),
       share="the amount each club receives", components=("extra", "second", "periods", "fixed", "discount", "people"),
       labels={"extra": "the sponsor's money", "fixed": "the principal's donation"},
       distractors=(("school", "The school has {d} classrooms."), ("sale table", "The sale table is {d} metres long.")),
       texts={
           "rate": ["Each box of cookies sells for {rate}.", "A box of cookies is sold for {rate}."],
           "rate?": ["Every box of cookies sells for the same price."],
           "extra": ["A sponsor adds {extra} for every box sold."],
           "extra?": ["A sponsor adds a fixed amount for every box sold."],
           "second": ["They also sell {count2_n} at {rate2} each."],
           "rate2?": ["They also sell {count2_n}, all at the same price."],
           "count2?": ["They also sell some cups of cocoa at {rate2} each."],
           "periods": ["The sale runs on {periods_n} with the same sales each time."],
           "fixed": ["The principal donates {fixed} once."],
           "fixed?": ["The principal also makes a one-time donation."],
           "discount": ["The table rental of {discount} for the whole sale is paid out of the takings."],
           "discount?": ["The table rental for the whole sale is paid out of the takings."],
           "people": ["The money is split equally among {people_n}."],
           "observe": ["Selling {count_part}, {outcome} is {y}."],
           "if_count": ["If instead they had sold {count_part}"],
           "if_count2": ["If instead they had sold {count2_n}"],
           "if_periods": ["If instead the sale had run on {periods_n}"],
           "if_people": ["If instead the money had been split among {people_n}"],
           "if_rate": ["If instead each box had sold for {rate}"],
           "ask": ["how much money would have been raised?", "what would {outcome} have been?"],
           "rate=": "Each box of cookies sells for {rate}.", "extra=": "The sponsor adds {extra} per box sold.",
           "fixed=": "The principal's donation is {fixed}.", "discount=": "The table rental is {discount}.",
           "rate2=": "Each cup of cocoa sells for {rate2}.", "count2=": "They sell {count2_n}.",
       }),
    _d(name="water_tank", item=("minute", "minutes"), outcome="the amount of water in the tank", currency=None,
       unit=("litre", "litres"), item2=("bucket", "buckets"),
       components=("extra", "second", "fixed", "discount"),
       labels={"extra": "the rain gutter", "fixed": "the water held before filling"},
       distractors=(("garden", "The garden has {d} tomato plants."), ("hose", "The hose is {d} metres long.")),
       texts={
           "rate": ["The hose fills the tank at {rate} per minute.", "Each minute, the hose adds {rate} to the tank."],
           "rate?": ["The hose fills the tank at a steady rate."],
           "extra": ["A rain gutter adds another {extra} per minute."],
           "extra?": ["A rain gutter adds some more water per minute, at a steady rate."],
           "second": ["Kai also pours in {count2_n} of {rate2} each."],
           "rate2?": ["Kai also pours in {count2_n}, all of the same size."],
           "count2?": ["Kai also pours in some buckets of {rate2} each."],
           "fixed": ["The tank already held {fixed} before filling started."],
           "fixed?": ["The tank already held some water before filling started."],
           "discount": ["A crack lets {discount} leak out."],
           "discount?": ["Some water leaks out through a crack."],
           "observe": ["After {count_part}, {outcome} is {y}."],
           "if_count": ["If instead the hose had run for {count_part}"],
           "if_count2": ["If instead Kai had poured in {count2_n}"],
           "if_rate": ["If instead the hose had added {rate} per minute"],
           "ask": ["how much water would be in the tank?", "what would {outcome} have been?"],
           "rate=": "The hose adds {rate} per minute.", "extra=": "The rain gutter adds {extra} per minute.",
           "fixed=": "The tank held {fixed} before filling started.",
           "discount=": "The crack lets {discount} leak out.",
           "rate2=": "Each bucket holds {rate2}.", "count2=": "Kai pours in {count2_n}.",
       }),
]}


def paraphrase_keys(domain: Domain, components: tuple[str, ...], hidden: str, target: str) -> list[str]:
    """Sentence keys whose paraphrase a story picks, in a fixed order (for the RNG)."""
    keys = ["rate", "rate?"] + [k for c in components for k in (c, f"{c}?")] + ["rate2?", "count2?"]
    keys += ["observe", f"if_{target}", "ask"]
    return [k for k in keys if k in domain.texts]


def sample_phrasing(rng: random.Random, domain: Domain, components: tuple[str, ...], hidden: str,
                    target: str) -> dict[str, int]:
    return {k: rng.randrange(len(domain.texts[k])) for k in paraphrase_keys(domain, components, hidden, target)}
