"""The check only opdoc can make: a page compared with the verified specs of the class it documents.

When opdoc has a spec for the page's class (its H1, or ``op-<Class>.md``), two rules compare:

* OD951: configuration values the page states (hidden size, layer, head and expert counts,
  vocabulary, ...) with the model configuration of the spec's scope, so that a vision encoder's 24
  layers are never compared with the language model's 12;
* OD952: the parameter counts it states (for the class, a child such as ``self_attn`` or a class
  opdoc knows) and the FLOP totals of every worked example it can bind (a B and an S it states) with
  the evaluated formulas.

Values marked as not being claims ("e.g.", "illustrative", "for example", comparisons with other
models) are skipped.  Everything opdoc-specific goes through :mod:`opdoc.lint.specs`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Iterator

from ..arith import Number, tokenize
from ..context import LintContext, LintDoc
from ..registry import Finding, finding, rule
from ..specs import Specs, open_specs
from ..symbols import BUILTIN_MEANINGS, concepts
from ._common import definitions

_NUM = r"(?<![\w.])(?P<num>\d{1,3}(?:,\d{3}){1,5}(?![\d,])|\d{1,15}(?:\.\d{1,15})?(?:[eE][-+]?\d{1,3})?)(?![\w.]|,\d)"


@dataclass(frozen=True)
class Concept:
    name: str
    label: str
    keys: tuple[str, ...]  # configuration keys, the first one the scope has
    symbol_concept: str | None  # what a symbol meaning this maps from (see symbols.concepts)
    after: str | None  # phrase, then the number: "hidden size of 4096"
    before: str | None  # the number, then a noun: "40 layers"
    also: tuple[str, ...] = ()  # other concepts the same words may mean ("6 experts": routed or per token)


CONCEPTS = (
    Concept("hidden", "hidden size", ("hidden_size", "embed_dim", "n_embed"), "hidden",
            r"hidden[ _-]?(?:size|dim(?:ension)?|width)|d_model|model (?:dim(?:ension)?|width)|embed(?:ding)?[ _-]?(?:dim(?:ension)?|size|width)",
            r"[- ]?(?:dim(?:ensional)?|wide)\s+(?:hidden|residual|embeddings?)\b"),
    Concept("layers", "layers", ("num_hidden_layers", "num_layers", "depth"), "layers",
            r"(?:number of|total) (?:decoder |transformer )?layers",
            r"(?:[- ](?:decoder|transformer|hidden|encoder|vit))[- ]layers?\b"),
    Concept("layers_any", "layers", ("num_hidden_layers", "num_layers", "depth"), None, None, r"[- ]layers?\b",
            ("moe_layers", "dense_layers")),
    Concept("moe_layers", "MoE layers", (), None, None, r"[- ](?:moe|sparse)[- ]layers?\b"),
    Concept("dense_layers", "dense layers", ("first_k_dense_replace",), None, None, r"[- ]dense(?:[- ]mlp)?[- ]layers?\b"),
    Concept("kv_heads", "key/value heads", ("num_key_value_heads",), None, r"number of (?:key[/-]value|kv) heads",
            r"[- ](?:key[/-]value|kv) heads\b"),
    Concept("heads", "attention heads", ("num_attention_heads", "num_heads"), "heads",
            r"number of (?:attention )?heads",
            r"[- ](?:attention[- ]|query[- ])?heads\b(?!\s+of\b)", ("kv_heads",)),
    Concept("head_dim", "head dimension", (), "head_dim", r"head[ _-]?dim(?:ension)?|head size|per-head (?:dim(?:ension)?|width)", None),
    Concept("intermediate", "intermediate size", ("intermediate_size", "ffn_hidden_size"), "intermediate",
            r"intermediate[ _]size|ffn[ _](?:hidden[ _])?(?:size|dim(?:ension)?)|mlp (?:hidden |intermediate )?(?:size|width)|"
            r"inner (?:width|size|dim(?:ension)?)", None, ("expert_width", "shared_width")),
    Concept("expert_width", "expert intermediate size", ("moe_intermediate_size",), "expert_width",
            r"expert (?:intermediate |hidden |inner )?(?:size|width|dim(?:ension)?)|moe_intermediate_size", None),
    Concept("topk", "experts per token", ("num_experts_per_tok",), "topk", r"top[- ]?k",
            r"[- ](?:routed[- ])?experts?\s+(?:per token|(?:are\s+)?(?:active|activated|selected|chosen|kept))|[- ](?:active|activated|selected) experts\b"),
    Concept("shared", "shared experts", ("n_shared_experts",), "shared", None, r"[- ]shared[- ]experts?\b"),
    Concept("experts", "routed experts", ("n_routed_experts",), "experts", r"number of (?:routed )?experts",
            r"[- ]routed[- ]experts\b(?!\s+(?:per|are\s+(?:active|activated|selected|chosen)|active|activated|selected|chosen))"),
    Concept("experts_any", "routed experts", ("n_routed_experts",), None, None,
            r"[- ]experts\b(?!\s+(?:per|are\s+(?:active|activated|selected|chosen)|active|activated|selected|chosen))",
            ("topk", "shared")),
    Concept("vocab", "vocabulary size", ("vocab_size",), "vocab", r"vocab(?:ulary)?(?:[ _]size)?", r"[- ](?:token|entry)[- ]vocab(?:ulary)?\b"),
    Concept("patch", "patch size", ("patch_size",), "patch", r"patch[ _]size", None),
    Concept("image", "image size", ("img_size", "image_size"), None, r"image[ _]size|img_size|input resolution", None),
)
_BY_NAME = {c.name: c for c in CONCEPTS}

_HEDGE = re.compile(
    r"\be\.\s?g\.|\beg\b|for example|for instance|illustrat|hypothetic|suppos|\bsay\b|such as|\btypical|"
    r"\bvs\b|versus|unlike|compared|instead of|rather than|other models?|deepseek[- ]?v[23]\b|\bv[23]\b|llama|mistral|gpt|"
    r"qwen|\boriginal\b|\bstandard\b|\bif\b|\bwould\b|\bcould\b|\bmay\b|\bdefault",
    re.IGNORECASE,
)
_CLAIM_PHRASE = re.compile(r"this model|builds? it with|\buses\b|set to|\bis\b|\bhas\b|\bhere\b", re.IGNORECASE)
_PER_TOKEN = re.compile(r"per token|each token|are used|\bused\b|\bactive\b|activated|chosen|selected|\bkept\b|top-?k",
                        re.IGNORECASE)
_VISION = re.compile(r"\b(?:vision|visual|image|images|sam|clip|vit|patch(?:es)?|pixels?|deepencoder)\b", re.IGNORECASE)
_LANGUAGE = re.compile(r"\b(?:language|llm|decoder|text|vocab\w*|moe|experts?|lm)\b", re.IGNORECASE)
_BINDING = re.compile(r"(?<![\w.])(?P<name>B|S|P|K)\s*=\s*(?P<value>\d{1,3}(?:,\d{3}){1,4}(?![\d,])|\d{1,12})(?![\d.])")
_SYMBOL_VALUE = re.compile(
    r"(?<![\w.`])`?(?P<name>[A-Za-z][A-Za-z0-9_]{0,7})`?\s*=\s*(?P<value>\d{1,3}(?:,\d{3}){1,4}(?![\d,])|\d{1,15})(?![\w.]|,\d|\s*[×*/+^-])"
)
_PARAM_WORD = re.compile(r"\bparam(?:eter)?s?\b|\bweights\b", re.IGNORECASE)
_MULTI = re.compile(
    r"\b\d+\s+(?:\w+\s+)?(?:layers|norms|blocks|modules|copies|instances)\b|\ball (?:\d+ )?(?:layers|blocks|norms)\b|"
    r"\ball \d+\b|\btogether\b|\bcombined\b|whole model|entire model|per (?:decode )?step for",
    re.IGNORECASE,
)
_TOTAL = re.compile(r"\btotal\b|_total\b", re.IGNORECASE)
# A count of modules times a module (or times a per-module value): not one module's count.
_SEVERAL = re.compile(r"(?<![\d.])(?!1\s)\w+\s*[×*]\s*[A-Z]\w*[a-z]\w*|\d\s*[KMGB]\b\s*[×*]|[×*]\s*\d+(?:\.\d+)?\s*[KMGB]\b")
# Parameters a token uses, or a part of the module: not the module's own count.
_PART = re.compile(r"\btokens?\b|\bactive\b|\bactivated\b|\btouch|\buses?\b|\bread|\bcompute\b|\bcost\b|\bper (?:expert|head)|\beach\b",
                   re.IGNORECASE)


@dataclass
class Claim:
    concept: Concept
    value: Fraction
    text: str
    line: int
    others: list[int] = field(default_factory=list)


# The first line of a page opdoc generated: its numbers are the specs' own, evaluated, so comparing the
# page with the specs adds nothing (and its derived figures, counts times a child, are not claims).
_GENERATED = re.compile(r"\A<!-- generated by opdoc ")


def _specs_for(doc: LintDoc, context: LintContext) -> tuple[Specs, str] | None:
    if doc.md is not None and _GENERATED.match(doc.md.text):
        return None
    name = _class_of(doc)
    specs = open_specs(context.specs_root)
    if name is None or specs is None or not specs.has(name):
        return None
    return specs, name


def _class_of(doc: LintDoc) -> str | None:
    md = doc.md
    assert md is not None
    h1 = next((h for h in md.headings if h.level == 1), None)
    if h1 is not None:
        title = re.sub(r"[`*_]", "", h1.title).strip()
        if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", title):
            return title
    return doc.class_name


def _lines(doc: LintDoc) -> Iterator[tuple[int, str]]:
    md = doc.md
    assert md is not None
    mermaid = {n for b in md.code_blocks if b.lang == "mermaid" for n in range(b.line, b.end_line + 1)}
    headings = {h.line for h in md.headings if h.level == 1}
    for number, text in enumerate(md.lines, start=1):
        if number not in mermaid and number not in headings and number not in md.comment_lines:
            yield number, text[:MAX_LINE]  # what a line states is read from its start, boundedly


_WINDOW = 240  # characters either side of a value that can qualify it (bounded: lines may be long)


def _clause_at(text: str, position: int) -> str:
    """The sentence part around ``position``: from the previous ``.``/``;``/``(`` to the next."""
    low, high = max(position - _WINDOW, 0), min(position + _WINDOW, len(text))
    start = max(text.rfind(". ", low, position), text.rfind(";", low, position), text.rfind("(", low, position), low - 1)
    ends = [i for i in (text.find(". ", position, high), text.find(";", position, high)) if i >= 0]
    end = min(ends) if ends else high
    clause = text[start + 1 : end]
    # a remark in parentheses right after the value belongs to it: "4096 (illustrative)"
    after = re.match(r"\s*[^\s(]{0,40}\s*\(([^)]{0,120})\)", text[position:high])
    return clause + (" " + after.group(1) if after else "")


def _number(text: str) -> Fraction | None:
    try:
        return Fraction(text.replace(",", "").lower())
    except (ValueError, ZeroDivisionError):
        return None


def _expected(concept: Concept, config: dict, bound: dict[str, int]) -> tuple[str, Fraction] | None:
    for key in concept.keys:
        value = config.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return key, Fraction(str(value))  # 1e-06 as written, not its binary float
    if concept.name == "shared_width" and "d_e" in bound and "E_s" in bound:
        return "n_shared_experts × moe_intermediate_size", Fraction(bound["d_e"] * bound["E_s"])
    if concept.name == "moe_layers" and "L" in bound and "L_dense" in bound:
        return "num_hidden_layers - first_k_dense_replace", Fraction(bound["L"] - bound["L_dense"])
    if concept.name == "head_dim" and "d_h" in bound:
        return "hidden_size // num_attention_heads", Fraction(bound["d_h"])
    return None


def _other_scope(scope: str) -> re.Pattern[str]:
    return _VISION if scope == "language" else _LANGUAGE


MAX_LINE = 10_000  # characters of one line the comparison reads
MAX_CANDIDATES = 2_000  # values looked at per page: far more than any op-doc states, bounded for any file


def config_claims(doc: LintDoc, context: LintContext, specs: Specs, op: str) -> list[tuple[Claim, str, Fraction]]:
    """(claim, config key, configured value) for every configuration value the page gets wrong."""
    if "config_claims" not in doc.cache:
        doc.cache["config_claims"] = _config_claims(doc, context, specs, op)
    return doc.cache["config_claims"]


def _config_claims(doc: LintDoc, context: LintContext, specs: Specs, op: str) -> list[tuple[Claim, str, Fraction]]:
    config = specs.config(op)
    bound = specs.bound(op)
    scope = specs.scope(op)
    foreign = _other_scope(scope)
    found: dict[tuple[str, Fraction], Claim] = {}
    expected: dict[str, tuple[str, Fraction]] = {}

    budget = [MAX_CANDIDATES]
    intros = _table_intros(doc)

    def claim(concept: Concept, text: str, value_text: str, number: int, position: int) -> bool:
        """Record a wrong value; False when the value is not a claim (hedged, or another scope's)."""
        budget[0] -= 1
        if budget[0] < 0:
            return False
        value = _number(value_text)
        if value is None:
            return False
        clause = _clause_at(text, position)
        if _HEDGE.search(clause) or foreign.search(clause):
            return False
        target = _expected(concept, config, bound)
        if target is None or target[1] == value:
            return True
        also = concept.also
        if concept.name == "experts" and (_PER_TOKEN.search(clause) or _PER_TOKEN.search(intros.get(number, ""))):
            also = also + ("topk",)  # "only 6 routed experts ... are used per token"
        for other in also:  # "6 experts": the routed ones or the ones per token
            alternative = _expected(_BY_NAME.get(other, Concept(other, other, (), None, None, None)), config, bound)
            if alternative is not None and alternative[1] == value:
                return True
        expected[concept.name] = target
        key = (target[0], value)  # one finding per configuration value, however it is worded
        if key in found:
            found[key].others.append(number)
        else:
            found[key] = Claim(concept, value, value_text, number)
        return True

    numeric_keys = [k for k, v in config.items() if isinstance(v, (int, float)) and not isinstance(v, bool)]
    keys = "|".join(map(re.escape, sorted(numeric_keys, key=len, reverse=True)))
    key_pattern = re.compile(
        r"(?<![\w])(?:(?:config|cfg|self\.config)\.)?[`\"']?(?<![\w])(?P<key>" + keys +
        r")[`\"']?\s*(?:=(?!=)|:|\bis\b|\bof\b)?\s*" + _NUM
    ) if numeric_keys else None
    # "- `config.n_routed_experts`: number of routed experts (DeepSeek-OCR: 160)": a bullet about a key
    key_bullet = re.compile(
        r"^\s*(?:[-*+]\s+|\d+[.)]\s+)?(?:\*\*)?`?(?:(?:config|cfg)\.)?(?P<key>" + keys + r")`?(?:\*\*)?\s*:(?P<rest>.*)$"
    ) if numeric_keys else None
    config_calls = _config_call_lines(doc)
    model_name = specs.model_title().lower()  # "(DeepSeek-OCR: 160)" names the model the page claims about
    by_key = {key: next((c for c in CONCEPTS if key in c.keys), None) for key in numeric_keys}
    symbol_concepts = _symbol_concepts(doc, context)
    code = _python_lines(doc)
    for number, text in _lines(doc):
        if budget[0] < 0:
            break
        if number in code and number not in config_calls and not re.search(r"[\"']\w+[\"']\s*:", text):
            continue  # a module built with an override (`DeepseekV2MLP(config, intermediate_size=896)`) claims nothing
        bullet = key_bullet.match(text) if key_bullet is not None else None
        if bullet is not None:
            concept = by_key.get(bullet.group("key")) or Concept(bullet.group("key"), bullet.group("key"),
                                                                   (bullet.group("key"),), None, None, None)
            rest = bullet.group("rest")
            for match in re.finditer(_NUM, rest):
                lead = re.split(r"[(:;,=]", rest[: match.start("num")])[-1]
                if lead.strip() and not _CLAIM_PHRASE.search(lead) and model_name not in lead.lower():
                    continue  # "(the dense MLP of layer 0)": a number about something else
                position = bullet.start("rest") + match.start("num")
                if not _range_or_more(text, bullet.start("rest") + match.end("num")):
                    if claim(concept, text, match.group("num"), number, position):
                        break
        if key_pattern is not None:
            for match in key_pattern.finditer(text):
                if bullet is not None and match.group("key") == bullet.group("key"):
                    continue
                concept = by_key.get(match.group("key")) or Concept(match.group("key"), match.group("key"),
                                                                      (match.group("key"),), None, None, None)
                if _range_or_more(text, match.end("num")):
                    continue
                claim(concept, text, match.group("num"), number, match.start("num"))
        for concept in CONCEPTS:
            if concept.after:
                for match in re.finditer(rf"\b(?:{concept.after})\b[`*]*\s*(?:[:=(]|\bis\b|\bof\b|\bequals\b)?\s*(?:of\s+)?{_NUM}",
                                         text, re.IGNORECASE):
                    if not _range_or_more(text, match.end("num")):
                        claim(concept, text, match.group("num"), number, match.start("num"))
            if concept.before:
                for match in re.finditer(rf"(?<![\w.,/+-]){_NUM}(?:{concept.before})", text, re.IGNORECASE):
                    if not _range_or_more(text, match.end("num"), before=text[: match.start("num")]):
                        claim(concept, text, match.group("num"), number, match.start("num"))
        stacked = re.search(rf"\b(?:repeated|stacked)\s+{_NUM}\s+times\b", text, re.IGNORECASE)
        if stacked and re.search(r"layer|stack|decoder|transformer", text, re.IGNORECASE):
            claim(_BY_NAME["layers"], text, stacked.group("num"), number, stacked.start("num"))
        # "2/160 experts": k of E
        for match in re.finditer(r"(?<![\w.])(?P<k>\d+)\s*/\s*(?P<e>\d+)\s+(?:routed\s+)?experts\b", text, re.IGNORECASE):
            claim(_BY_NAME["topk"], text, match.group("k"), number, match.start("k"))
            claim(_BY_NAME["experts"], text, match.group("e"), number, match.start("e"))
        # "h=4096", "`d` = 4096": a symbol the model fixes, given a value (not a Python assignment)
        for match in [] if number in code else _SYMBOL_VALUE.finditer(text):
            concept = symbol_concepts.get(match.group("name"))
            if concept is not None:
                claim(concept, text, match.group("value"), number, match.start("value"))
    return [(c, *expected[c.concept.name]) for c in sorted(found.values(), key=lambda c: c.line)]


def _table_intros(doc: LintDoc) -> dict[int, str]:
    """Each table row's introducing sentence ("Only 6 routed experts ... are used per token:")."""
    md = doc.md
    assert md is not None
    intros: dict[int, str] = {}
    last_prose = ""
    for number, text in enumerate(md.lines, start=1):
        if text.lstrip().startswith("|"):
            intros[number] = last_prose
        elif text.strip():
            last_prose = text
    return intros


def _config_call_lines(doc: LintDoc) -> set[int]:
    """Lines of python blocks inside a ``...Config(`` call or a config dict: where ``key=value`` is a claim."""
    md = doc.md
    assert md is not None
    lines: set[int] = set()
    for block in md.code_blocks:
        if block.lang not in ("python", "py", "python3"):
            continue
        depth = 0
        for offset, text in enumerate(block.text_lines):
            if re.search(r"Config\w*\(|config\s*=\s*\{|\bdict\(", text):
                depth = max(depth, 1)
            if depth:
                lines.add(block.first_text_line + offset)
                depth += text.count("(") + text.count("{") - text.count(")") - text.count("}")
                depth = max(depth, 0)
    return lines


def _python_lines(doc: LintDoc) -> set[int]:
    md = doc.md
    assert md is not None
    return {n for b in md.code_blocks if b.lang in ("python", "py", "python3") for n in range(b.line, b.end_line + 1)}


def _range_or_more(text: str, end: int, before: str = "") -> bool:
    """``100+ layers``, ``0-39``, ``1.5x``, ``2 × 896``: not a count of the model's own."""
    rest = text[end : end + 3]
    if rest[:1] in ("+", "%", "x", "×") or re.match(r"[-–]\d|\s*[×*·/]\s", rest):
        return True
    return bool(re.search(r"\d\s*[-–]\s*$|[×*·/]\s*$", before[-4:]))


def _symbol_concepts(doc: LintDoc, context: LintContext) -> dict[str, Concept]:
    """Symbols this page uses for model constants, and the concept each stands for: the page's own
    definition first, then the knowledge base's meaning, then the template's."""
    said = {d.name: d.meaning for d in definitions(doc) if not re.fullmatch(r"[\d,.\s]+", d.meaning)}
    result = {}
    by_concept = {c.symbol_concept: c for c in CONCEPTS if c.symbol_concept}
    for name in set(said) | set(context.kb_meanings) | set(BUILTIN_MEANINGS):
        if name in ("B", "S", "P", "K", "N", "M", "T"):
            continue  # chosen per example, not fixed by the model
        meaning = said.get(name) or context.kb_meanings.get(name) or BUILTIN_MEANINGS.get(name, "")
        found = concepts(meaning)
        if len(found) == 1:
            concept = by_concept.get(next(iter(found)))
            if concept is not None:
                result[name] = concept
    return result


@rule("OD951", "error", "A configuration value the page states differs from opdoc's specs of the same module.")
def configuration(doc: LintDoc, context: LintContext) -> list[Finding]:
    found = _specs_for(doc, context)
    if found is None:
        return []
    specs, op = found
    findings = []
    model = specs.model_title()
    scope = specs.scope(op)
    for claim, key, value in config_claims(doc, context, specs, op):
        also = f" (also line{'s' * (len(claim.others) > 1)} {', '.join(map(str, claim.others[:5]))})" if claim.others else ""
        findings.append(
            finding(
                "OD951",
                doc,
                claim.line,
                f"the page gives {claim.text} for the {claim.concept.label}{also}; {model}'s `{scope}` configuration "
                f"has {key} = {_fmt(value)}",
            )
        )
    return findings


# --- worked examples --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Stated:
    line: int
    value: Fraction
    error: Fraction
    text: str
    family: str
    label: str  # the line's text from the start of the value's clause up to the value
    position: int = 0  # where the value starts on its line


_NOT_TOTAL = re.compile(
    r"backward|training|gradient|adamw|optimi[sz]er|tensor[- ]core|cuda[- ]core|dominant|largest term|% of|"
    r"\bper (?:token|element|expert|head|position)|\beach\b|\bbytes?\b|memory|\bat (?:bf16|fp16|fp32)|activation|\bpeak\b|cache",
    re.IGNORECASE,
)
_TOTAL_LABEL = re.compile(r"\btotal\b|flops_total|\bforward\b|\bsum\b|\boverall\b", re.IGNORECASE)
_EXAMPLE_LABEL = re.compile(r"\b(?:prefill|decode|decoding|generation|example)\b", re.IGNORECASE)


def _stated_values(text: str, number: int) -> list[Stated]:
    """Results stated on one line (not operands, not restatements in parentheses), with their family
    (params, flops, bytes, count) and the label before each."""
    values = []
    tokens = tokenize(text, [(0, number)])
    depth = 0
    clause_start = 0
    for index, token in enumerate(tokens):
        if token.kind == "lp":
            depth += 1
        elif token.kind == "rp":
            depth = max(depth - 1, 0)
        elif token.kind == "sep" and token.text in ";." and depth == 0:
            clause_start = token.end
        if token.kind != "num" or depth:
            continue
        following = tokens[index + 1] if index + 1 < len(tokens) else None
        if following is not None and following.kind == "op" and following.text not in "²³":
            continue  # an operand
        previous = tokens[index - 1] if index else None
        if previous is not None and previous.kind == "op":
            continue
        parsed = Number.parse(token, text[token.start : token.end])
        family = parsed.unit.family if parsed.unit is not None else "count"
        if family == "count" and following is not None and following.kind == "word" and _PARAM_WORD.fullmatch(following.text):
            family = "params"
        approximate = previous is not None and (previous.kind == "tilde" or previous.text in ("≈", "~="))
        values.append(Stated(number, parsed.value, parsed.stated_error(approximate), parsed.text, family,
                             text[max(clause_start, token.start - _WINDOW) : token.start], token.start))
    return values


def _after(text: str, stated: Stated) -> str:
    return text[stated.position : stated.position + 60]


def _fmt(value: Fraction | int) -> str:
    value = Fraction(value)
    if value.denominator == 1 and abs(value) < 100_000:
        return f"{value.numerator:,}"
    for scale, suffix in ((10**12, " T"), (10**9, " G"), (10**6, " M"), (10**3, " K")):
        if abs(value) >= scale:
            return f"{float(value / scale):.2f}{suffix}"
    return f"{float(value):.4g}"


def _close(stated: Stated, expected: int, relative: Fraction) -> bool:
    return abs(stated.value - expected) <= max(stated.error, relative * abs(expected))


def _lead_in(md, lines: list[tuple[int, str]], index: int) -> str:
    """What a line sits under: its bullet parents, the lines of its block above it, and the two prose
    lines before the block (``**Total per layer**:`` then a code block)."""
    number, text = lines[index]
    block = next((b for b in md.code_blocks if b.first_text_line <= number < b.end_line), None)
    parts = [text]
    if block is not None:
        parts.extend(line for n, line in lines[max(index - 40, 0) : index] if n > block.line)
        before = [line for n, line in lines[max(index - 60, 0) : index] if n < block.line and line.strip()][-2:]
        parts.extend(before)
    else:
        indent = len(text) - len(text.lstrip())
        for back in range(index - 1, max(index - 8, -1), -1):
            other = lines[back][1]
            if not other.strip():
                break
            if len(other) - len(other.lstrip()) < indent or other.rstrip().endswith(":"):
                parts.append(other)
                indent = len(other) - len(other.lstrip())
    return " ".join(parts)


_GENERIC = (("attention", re.compile(r"\battention\b|\battn\b", re.IGNORECASE), "Attention"),
            ("mlp", re.compile(r"\bmlp\b|\bffn\b|feed[- ]?forward", re.IGNORECASE), "MLP"),
            ("moe", re.compile(r"\bmoe\b", re.IGNORECASE), "MoE"),
            ("norm", re.compile(r"\bnorms?\b|layernorm\b|rmsnorm\b", re.IGNORECASE), "Norm"))


def _named_module(text: str, op: str, specs: Specs) -> list[tuple[str, str | None, str]] | None:
    """The module a text names: a child attribute, a class opdoc specifies, or a generic word
    (``attention``); None when it names none, [] when it names one opdoc cannot value."""
    children = specs.children(op)
    for child in children:
        if re.search(rf"(?<![\w.])(?:self\.)?{re.escape(child.name)}\b", text):
            same = [c for c in children if c.name == child.name]
            return [(c.op, c.variant, f"`{c.name}` ({c.op})") for c in same if not c.rebound]
    for name in sorted(set(re.findall(r"\b[A-Z][A-Za-z0-9]+\b", text)), key=len, reverse=True):
        if name == op or not specs.has(name) or specs.scope(name) != specs.scope(op):
            continue  # a class of another scope ("Attention" of the vision encoder on a decoder's page) is a word
        as_child = [c for c in children if c.op == name]
        if as_child:
            return [(c.op, c.variant, f"`{c.name}` ({c.op})") for c in as_child if not c.rebound]
        return [(name, None, name)]
    for _, pattern, class_part in _GENERIC:
        if pattern.search(text):
            if class_part in op:
                return [(op, v, op) for v in specs.variants(op)]
            matches = [c for c in children if class_part in c.op]
            return [(c.op, c.variant, f"`{c.name}` ({c.op})") for c in matches if not c.rebound]
    return None


def _variant_of(text: str, op: str, specs: Specs) -> list[tuple[str, str | None, str]]:
    """The page's own module in the variant the text names (``Dense layer (layer 0):``), if any."""
    named = [v for v in specs.variants(op) if v and re.search(rf"\b{re.escape(v)}\b", text, re.IGNORECASE)]
    return [(op, v, f"{op} ({v})") for v in named[:1]]


def _example_bindings(lines: list[tuple[int, str]]) -> dict[str, dict[str, int]]:
    """Named examples the page defines: ``Typical prefill: B=1, S=8192``."""
    named: dict[str, dict[str, int]] = {}
    for _, text in lines:
        label = re.search(r"\b(prefill|decode|decoding|generation)\b", text, re.IGNORECASE)
        values = _bindings(text)
        if label and "S" in values:
            named.setdefault(label.group(1).lower()[:6], values)
    return named


def _bindings(text: str) -> dict[str, int]:
    values: dict[str, int] = {}
    for match in _BINDING.finditer(text):
        values.setdefault(match.group("name"), int(match.group("value").replace(",", "")))
    if "P" not in values and "K" in values and values.get("S") == 1:
        values["P"] = values["K"]
    return values


_DECODE = re.compile(r"\bdecod\w*|\bone token\b|\bsingle token\b|\bgeneration step\b|\bper token\b", re.IGNORECASE)


def _binding_for(lines: list[tuple[int, str]], index: int, named: dict[str, dict[str, int]],
                 headings: set[int]) -> dict[str, int] | None:
    """The B and S (and P) a line's example is stated at: on the line, under the example's name, or on
    the nearest line above that states them; None when the line is about a decode step the page
    does not bind (its B and S above belong to another example)."""
    here = _bindings(lines[index][1])
    for back in range(index, max(index - 20, -1), -1):
        number, text = lines[back]
        if back < index:
            if number in headings and text.lstrip().startswith(("## ", "### ")):
                break
            for key, value in _bindings(text).items():
                here.setdefault(key, value)
        if "B" in here and "S" in here:
            return here
        label = re.search(r"\b(prefill|decode|decoding|generation)\b", text, re.IGNORECASE)
        if label and label.group(1).lower()[:6] in named:
            return {**named[label.group(1).lower()[:6]], **here}
        if _DECODE.search(text) and "S" not in here:
            return None  # a decode step: the nearest B and S above are another example's
    return None


def example_claims(doc: LintDoc, specs: Specs, op: str) -> list[tuple[Stated, str, str, int]]:
    """(stated value, what it is, which module, spec value) for each bound worked example that disagrees."""
    md = doc.md
    assert md is not None
    lines = list(_lines(doc))
    headings = {h.line for h in md.headings}
    named = _example_bindings(lines)
    wrong: list[tuple[Stated, str, str, int]] = []
    seen: set[tuple[str, Fraction]] = set()
    own = [(op, v, op) for v in specs.variants(op)]
    budget = MAX_CANDIDATES
    for index, (number, text) in enumerate(lines):
        if text.lstrip().startswith("|") or not re.search(r"\d", text):
            continue  # tables: which column is which is not read
        values = _stated_values(text, number)[:budget]
        budget -= len(values)
        if budget <= 0:
            break
        if not values:
            continue
        for stated in values:
            if _HEDGE.search(stated.label) or _NOT_TOTAL.search(stated.label):
                continue
            label_and_more = stated.label + " " + _after(text, stated)
            if stated.family == "params" or (stated.family == "count" and re.search(r"\bparam", stated.label, re.IGNORECASE)
                                             and stated.value >= 1000):
                if _MULTI.search(label_and_more) or _PART.search(label_and_more) or ("params", stated.value) in seen:
                    continue
                if _SEVERAL.search(stated.label):
                    continue  # "L × DeepseekV2DecoderLayer = ...", "12 × 6.55M": several modules
                targets = _named_module(stated.label or text[:_WINDOW], op, specs)
                if targets is None and not _TOTAL.search(stated.label):
                    targets = _named_module(_lead_in(md, lines, index), op, specs)
                if targets == [] or targets is None and not (
                    _TOTAL.search(stated.label) or re.search(r"\bparam", stated.label, re.IGNORECASE)
                ):
                    continue  # a module opdoc cannot value on its own, or no module at all
                # the page's own module is always a candidate: "an MoE layer holds ..." on a layer's page
                candidates = (targets or []) + own
                expected = [e for t, v, _ in candidates if (e := specs.quantities(t, variant=v).get("parameters"))]
                if expected and not any(_close(stated, e, Fraction(3, 100)) for e in expected):
                    seen.add(("params", stated.value))
                    wrong.append((stated, "parameters", candidates[0][2], expected[0]))
            elif stated.family == "flops":
                lead = _lead_in(md, lines, index)
                example = _EXAMPLE_LABEL.search(stated.label)
                if not (_TOTAL_LABEL.search(stated.label) or (example and _TOTAL_LABEL.search(lead))
                        or (example and re.search(r"\bFLOPs?\b\W*$", stated.label))):
                    continue  # "Example (B=1, S=8192): FLOPs ≈ ..." is the template's worked total
                if _MULTI.search(lead) or ("flops", stated.value) in seen:
                    continue
                binding = _binding_for(lines, index, named, headings)
                if binding is None:
                    continue
                if binding.get("S") == 1 and "P" not in binding:
                    # a decode step without its cached context: fine for a module that keeps no cache
                    without = specs.quantities(op, B=binding["B"], S=1, P=0).get("forward_flops")
                    if without is None or without != specs.quantities(op, B=binding["B"], S=1, P=4096).get("forward_flops"):
                        continue
                targets = _named_module(stated.label, op, specs) or _variant_of(lead, op, specs) or own
                expected_flops = []
                for target, variant, _ in targets:
                    at = specs.quantities(target, B=binding["B"], S=binding["S"], P=binding.get("P", 0), variant=variant)
                    expected_flops += [at[q] for q in ("forward_flops", "tensor_flops") if at.get(q)]
                if expected_flops and not any(_close(stated, e, Fraction(15, 100)) for e in expected_flops):
                    seen.add(("flops", stated.value))
                    where = ", ".join(f"{k}={v}" for k, v in sorted(binding.items()) if k in ("B", "S", "P"))
                    wrong.append((stated, f"at {where}", targets[0][2], expected_flops[0]))
        kv_line: list[tuple[Stated, str, int]] = []
        for stated in _kv_values(text, number):
            if stated.family != "bytes" or ("kv", stated.value) in seen:
                continue
            in_block = any(b.first_text_line <= number < b.end_line for b in md.code_blocks)
            about_kv = (_KV.search(stated.label) or in_block and _KV.search(_lead_in(md, lines, index))) and not (
                _OTHER_MEMORY.search(stated.label))
            if _MULTI.search(stated.label) or _PART.search(stated.label):
                continue
            if not about_kv:
                if _KV.search(text) and not _OTHER_MEMORY.search(stated.label):
                    kv_line.append((stated, "", 0))  # "...; in total 41.94 MB" on a KV-cache line
                continue
            binding = _binding_for(lines, index, named, headings) or _positions(stated.label + " " + text, doc)
            if binding is None or "S" not in binding or "B" not in binding:
                continue
            at = specs.quantities(op, B=binding["B"], S=binding["S"], P=binding.get("P", 0))
            expected = at.get("kv_cache_bytes")
            if expected:
                where = ", ".join(f"{k}={v}" for k, v in sorted(binding.items()) if k in ("B", "S", "P"))
                kv_line.append((stated, where, expected))
        # a line that also gives the right total lists its parts (keys, then values): no claim
        claims = [entry for entry in kv_line if entry[2]]
        expected_here = claims[0][2] if claims else 0
        if claims and not any(_close(stated, expected_here, Fraction(10, 100)) for stated, _, _ in kv_line):
            stated, where, expected = claims[0]
            seen.add(("kv", stated.value))
            wrong.append((stated, f"of KV cache at {where}", op, expected))
    return wrong


_OTHER_MEMORY = re.compile(r"weight|param|activation|peak|gradient|adam|optimi|training|input|output|score|softmax",
                           re.IGNORECASE)
_KV = re.compile(r"\bkv[- ]?cache\b|\bkey[/-]value cache\b|^\s*#+\s*kv\b", re.IGNORECASE)


def _kv_values(text: str, number: int) -> list[Stated]:
    """Values on a KV-cache line, including one in a remark: "(21.0 MB per layer at 8192 positions)"."""
    if not _KV.search(text) and not re.search(r"\bper layer\b", text):
        return _stated_values(text, number)
    # open remarks that say more than a number; a bare "(20,971,520)" stays a restatement
    inner = re.sub(r"\(([^()]*)\)", lambda m: m.group(0) if re.fullmatch(r"\s*[\d,.]+\s*", m.group(1)) else f" {m.group(1)} ",
                   text)
    return _stated_values(inner, number)


def _positions(text: str, doc: LintDoc) -> dict[str, int] | None:
    """"at 8192 positions" with the page's single batch size (``B`` = 1)."""
    match = re.search(r"\bat\s+(\d[\d,]*)\s+(?:positions|tokens)\b", text)
    batch = {d.meaning.strip() for d in definitions(doc) if d.name == "B" and re.match(r"\s*\(?\d", d.meaning)}
    values = {int(m.group(0)) for b in batch for m in [re.search(r"\d+", b)] if m}
    if match is None or len(values) != 1:
        return None
    return {"B": next(iter(values)), "S": int(match.group(1).replace(",", ""))}


# Which configuration values can explain a wrong count (for the message only).
_RELEVANT = {
    "params": {"hidden", "heads", "kv_heads", "head_dim", "intermediate", "expert_width", "experts", "shared", "vocab", "layers"},
    "flops": {"hidden", "heads", "kv_heads", "head_dim", "intermediate", "expert_width", "topk", "shared", "vocab", "layers"},
}
_RELEVANT_BY_MODULE = {
    "Attention": {"hidden", "heads", "kv_heads", "head_dim"},
    "MLP": {"hidden", "intermediate", "expert_width"},
    "MoE": {"hidden", "expert_width", "experts", "topk", "shared"},
    "Norm": {"hidden"},
    "DecoderLayer": {"hidden", "heads", "kv_heads", "head_dim", "intermediate", "expert_width", "experts", "topk", "shared"},
    "(dense)": {"hidden", "heads", "kv_heads", "head_dim", "intermediate"},
}


@rule("OD952", "error", "A worked example (parameters, FLOPs at a stated B and S) differs from opdoc's evaluated specs.")
def worked_examples(doc: LintDoc, context: LintContext) -> list[Finding]:
    found = _specs_for(doc, context)
    if found is None:
        return []
    specs, op = found
    wrong_config = config_claims(doc, context, specs, op)
    findings = []
    for stated, what, module, expected in example_claims(doc, specs, op):
        relevant = _RELEVANT["flops" if what.startswith("at ") else "params"]
        for part, names in _RELEVANT_BY_MODULE.items():
            if part in module:
                relevant = relevant & names
        hints = [f"{claim.concept.label} {_fmt(value)}, not {claim.text}"
                 for claim, _, value in wrong_config if claim.concept.name in relevant]
        because = f" ({'; '.join(hints[:2])})" if hints else ""
        findings.append(
            finding(
                "OD952",
                doc,
                stated.line,
                f"the page says {stated.text} {what} for {module}; the specs give {_fmt(expected)}{because}".replace("  ", " "),
            )
        )
    return findings
