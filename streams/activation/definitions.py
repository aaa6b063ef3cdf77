"""Audiences and their curated messages, declared in YAML and checked at load (pure).

An audience is a predicate over a customer's profile attributes (the profile carries
the new-customer score as ``predicted_value_365d``), with the confidence it accepts::

    audiences:
      - name: high-value-shoes
        description: Predicted to spend 100 or more, and into shoes.
        confidence: [observed, declared, inferred]   # default: all three
        min_probability: 0.6    # inferred attributes count from this probability
        all:                    # or any: (exactly one of the two)
          - {attribute: predicted_value_365d, op: ">=", value: 100}
          - {attribute: preferred_category, op: "==", value: Shoes}

Operators: ``==``, ``!=``, ``>``, ``>=``, ``<``, ``<=`` (numbers), ``in``, ``not_in``
(a list), ``exists``, ``missing`` (no value). An attribute whose confidence the
audience does not accept counts as missing.

Each audience's message set::

    messages:
      high-value-shoes:
        - id: new-season
          text: "New season {preferred_category} picked for you"
          channels: [email, push]      # default: every channel

``{attribute}`` placeholders are the attributes a variant personalises with. A set
holds at most ``max_variants`` variants. Every mistake is a ``DefinitionError`` at
load naming the file, the audience and the field.
"""

from __future__ import annotations

import hashlib
import re
import string
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import yaml

from streams.core.errors import FatalError
from streams.profiles.logic import ATTRIBUTES

DEFAULTS = Path(__file__).parent / "defaults"
CONFIDENCES = ("observed", "declared", "inferred")
CHANNELS = ("email", "push", "sms", "social")
ORDERED = {">", ">=", "<", "<="}
OPS = ("==", "!=", ">", ">=", "<", "<=", "in", "not_in", "exists", "missing")
NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")


class DefinitionError(FatalError):
    """An audience or message definition that cannot be used; the message names the
    file, the audience and the field."""


@dataclass(frozen=True)
class Condition:
    """One test of a profile attribute."""

    attribute: str
    op: str
    value: Any = None


@dataclass(frozen=True)
class Audience:
    """A declared audience; ``version`` is a hash of its definition."""

    name: str
    conditions: tuple[Condition, ...]
    match_all: bool
    confidence: frozenset[str]
    min_probability: float
    description: str = ""
    version: str = ""


@dataclass(frozen=True)
class Variant:
    """One message of an audience's curated set."""

    id: str
    text: str
    channels: tuple[str, ...]
    attributes: tuple[str, ...] = field(default=())  # the placeholders of ``text``


def confident(attribute: dict[str, Any] | None, confidences: Iterable[str], floor: float) -> bool:
    """Whether an attribute (``{value, confidence, probability}``) is known well enough:
    a value, a confidence among ``confidences``, and if inferred, a probability of at
    least ``floor``. Audiences and personalisation both decide by this rule."""
    if attribute is None or attribute.get("value") is None:
        return False
    confidence = attribute["confidence"]
    if confidence not in confidences:
        return False
    return confidence != "inferred" or (attribute.get("probability") or 0.0) >= floor


def attribute_used(name: str, attribute: dict[str, Any]) -> dict[str, Any]:
    """The ``AttributeUsed`` record of an attribute a decision read."""
    return {
        "name": name,
        "value": attribute.get("value"),
        "confidence": attribute["confidence"],
        "probability": attribute.get("probability"),
    }


def _fail(path: Path, where: str, problem: str) -> DefinitionError:
    return DefinitionError(f"{path}: {where}: {problem}")


def _read(path: Path, top: str) -> list | dict:
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise DefinitionError(f"{path}: cannot read: {exc}") from None
    if not isinstance(data, dict) or top not in data:
        raise DefinitionError(f"{path}: expected a mapping with '{top}'")
    return data[top]


def _condition(path: Path, where: str, raw: Any) -> Condition:
    if not isinstance(raw, dict):
        raise _fail(path, where, "a condition is a mapping of attribute, op, value")
    unknown = set(raw) - {"attribute", "op", "value"}
    if unknown:
        raise _fail(path, where, f"unknown keys {sorted(unknown)}")
    attribute, op, value = raw.get("attribute"), raw.get("op"), raw.get("value")
    if attribute not in ATTRIBUTES:
        raise _fail(path, f"{where}.attribute", f"unknown attribute {attribute!r} (known: "
                    f"{', '.join(ATTRIBUTES)})")  # fmt: skip
    if op not in OPS:
        raise _fail(path, f"{where}.op", f"unknown operator {op!r} (use one of {', '.join(OPS)})")
    if op in ("exists", "missing"):
        if value is not None:
            raise _fail(path, f"{where}.value", f"'{op}' takes no value")
    elif op in ORDERED and (isinstance(value, bool) or not isinstance(value, int | float)):
        raise _fail(path, f"{where}.value", f"'{op}' needs a number, not {value!r}")
    elif op in ("in", "not_in"):
        if not isinstance(value, list) or not value:
            raise _fail(path, f"{where}.value", f"'{op}' needs a non-empty list")
        value = tuple(str(v) for v in value)
    elif value is None:
        raise _fail(path, f"{where}.value", f"'{op}' needs a value")
    return Condition(attribute, op, value)


def _audience(path: Path, index: int, raw: Any, floor: float) -> Audience:
    if not isinstance(raw, dict) or not NAME.match(str(raw.get("name", ""))):
        raise _fail(path, f"audiences[{index}].name", "a lower-case name of letters, digits, -")
    name = raw["name"]
    where = f"audience {name!r}"
    unknown = set(raw) - {"name", "description", "confidence", "min_probability", "all", "any"}
    if unknown:
        raise _fail(path, where, f"unknown keys {sorted(unknown)}")
    if ("all" in raw) == ("any" in raw):
        raise _fail(path, where, "give exactly one of 'all' and 'any'")
    key = "all" if "all" in raw else "any"
    if not isinstance(raw[key], list) or not raw[key]:
        raise _fail(path, f"{where}: {key}", "a non-empty list of conditions")
    conditions = tuple(_condition(path, f"{where}: {key}[{i}]", c) for i, c in enumerate(raw[key]))
    confidence = raw.get("confidence", list(CONFIDENCES))
    if not isinstance(confidence, list) or not confidence or set(confidence) - set(CONFIDENCES):
        raise _fail(path, f"{where}: confidence", f"a non-empty list of {', '.join(CONFIDENCES)}")
    probability = raw.get("min_probability", floor)
    number = not isinstance(probability, bool) and isinstance(probability, int | float)
    if not number or not 0 <= probability <= 1:
        raise _fail(path, f"{where}: min_probability", "a number from 0 to 1")
    version = hashlib.blake2b(orjson.dumps(raw, option=orjson.OPT_SORT_KEYS), digest_size=5)
    return Audience(
        name,
        conditions,
        key == "all",
        frozenset(confidence),
        float(probability),
        str(raw.get("description", "")),
        version.hexdigest(),
    )


def load_audiences(path: Path | None = None, floor: float = 0.8) -> dict[str, Audience]:
    """The audiences of ``path`` (default: the shipped examples) by name;
    ``floor`` is the ``min_probability`` of audiences that do not set one."""
    path = path or DEFAULTS / "audiences.yaml"
    raw = _read(path, "audiences")
    if not isinstance(raw, list):
        raise DefinitionError(f"{path}: 'audiences' is a list")
    out: dict[str, Audience] = {}
    for i, item in enumerate(raw):
        audience = _audience(path, i, item, floor)
        if audience.name in out:
            raise _fail(path, f"audience {audience.name!r}", "declared twice")
        out[audience.name] = audience
    return out


def _variant(path: Path, where: str, raw: Any) -> Variant:
    if not isinstance(raw, dict) or not NAME.match(str(raw.get("id", ""))):
        raise _fail(path, f"{where}.id", "a lower-case id of letters, digits, -")
    where = f"{where} ({raw['id']})"
    unknown = set(raw) - {"id", "text", "channels"}
    if unknown:
        raise _fail(path, where, f"unknown keys {sorted(unknown)}")
    text = raw.get("text")
    if not isinstance(text, str) or not text.strip():
        raise _fail(path, f"{where}.text", "a non-empty text")
    try:
        names = [f for _, f, _, _ in string.Formatter().parse(text) if f is not None]
    except ValueError as exc:
        raise _fail(path, f"{where}.text", f"bad placeholder: {exc}") from None
    for placeholder in names:
        if placeholder not in ATTRIBUTES:
            raise _fail(path, f"{where}.text", f"unknown attribute {{{placeholder}}} (known: "
                        f"{', '.join(ATTRIBUTES)})")  # fmt: skip
    channels = raw.get("channels", list(CHANNELS))
    if not isinstance(channels, list) or not channels or set(channels) - set(CHANNELS):
        raise _fail(path, f"{where}.channels", f"a non-empty list of {', '.join(CHANNELS)}")
    return Variant(raw["id"], text, tuple(channels), tuple(dict.fromkeys(names)))


def load_messages(
    audiences: dict[str, Audience], path: Path | None = None, max_variants: int = 10
) -> dict[str, tuple[Variant, ...]]:
    """Each audience's message variants from ``path`` (default: the shipped examples);
    an audience that is not declared, or a set above ``max_variants``, is an error."""
    path = path or DEFAULTS / "messages.yaml"
    raw = _read(path, "messages")
    if not isinstance(raw, dict):
        raise DefinitionError(f"{path}: 'messages' maps audience names to variant lists")
    out: dict[str, tuple[Variant, ...]] = {}
    for name, items in raw.items():
        where = f"messages of audience {name!r}"
        if name not in audiences:
            raise _fail(path, where, "no such audience in the audiences file")
        if not isinstance(items, list) or not items:
            raise _fail(path, where, "a non-empty list of variants")
        if len(items) > max_variants:
            raise _fail(path, where, f"{len(items)} variants, above the cap of {max_variants}")
        variants = tuple(_variant(path, f"{where}[{i}]", v) for i, v in enumerate(items))
        ids = [v.id for v in variants]
        if len(set(ids)) != len(ids):
            raise _fail(path, where, f"variant ids repeat: {sorted(ids)}")
        out[name] = variants
    return out
