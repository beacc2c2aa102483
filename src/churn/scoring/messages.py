"""Offer messages: each incentive's templates per language, rendered for each contacted customer.

A template is plain text with ``{placeholder}`` fields (Python ``str.format`` syntax):

    {name}        the customer's name          {first_name}  its first word
    {plan}        the customer's plan          {incentive}   the incentive's name in the catalogue
    {customer_id} the customer id              {country} {region} {channel}
    {monthly_fee} the monthly fee (a number: ``{monthly_fee:.2f}`` works)     {currency}  e.g. EUR

A catalogue's templates are checked when the config loads (`template_problems`): an unknown placeholder,
broken braces or a format that does not fit is refused there, naming the key. Rendering stays safe for
templates that never passed that check (a Config built in code): an unknown placeholder renders as nothing
(and is reported), a missing value (no
name on file) renders as nothing and the space or comma it leaves is tidied, and a template that is not
valid format syntax is rendered by plain substitution instead of failing. Text is never transliterated
or reordered: Persian, Turkish or Latvian templates come out exactly as written, with values inserted.

Language: the customer's ``language`` (``de``, ``de-AT`` and ``DE`` all match a ``de`` template); a
language without a template falls back to ``default_language`` (English) and is counted as a missing
translation. A customer with no language on file simply gets the default and is not counted.
"""

from __future__ import annotations

import math
import re
import string
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

PLACEHOLDERS = (
    "name", "first_name", "plan", "incentive", "customer_id", "country", "region", "channel",
    "monthly_fee", "currency",
)
_NUMERIC = {"monthly_fee"}
_FIELD = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)[^{}]*\}")
_SPACES = re.compile(r"[ \t]{2,}")
_SPACE_BEFORE_PUNCT = re.compile(r"[ \t]+([,.!?;:\u060c\u061b\u061f])")  # includes Arabic-script ، ؛ ؟


def normalise_language(language: object) -> str | None:
    """'DE', ' de_AT ' -> 'de', 'de-at'; missing -> None."""
    if language is None or (isinstance(language, float) and math.isnan(language)) or language is pd.NA:
        return None
    s = str(language).strip().lower().replace("_", "-")
    return s or None


def pick_language(language: object, available: Iterable[str], default: str) -> tuple[str | None, bool]:
    """The template language to use and whether the customer's own language was missing.

    Exact match, then the primary subtag (``de-at`` -> ``de``), then `default`, then the first available
    language in sorted order (so a catalogue without English still renders something).
    """
    avail = {normalise_language(a): a for a in available}
    avail.pop(None, None)
    if not avail:
        return None, False
    lang = normalise_language(language)
    if lang is not None:
        if lang in avail:
            return avail[lang], False
        primary = lang.split("-")[0]
        if primary in avail:
            return avail[primary], False
    missing = lang is not None
    d = normalise_language(default)
    if d in avail:
        return avail[d], missing
    return avail[min(avail)], missing


def template_fields(template: str) -> list[str] | None:
    """Names of the fields a template uses, or None when it is not valid format syntax."""
    try:
        names = [f for _, f, _, _ in string.Formatter().parse(template) if f is not None]
    except ValueError:
        return None
    out = []
    for f in names:
        base = re.split(r"[.\[!:]", f, maxsplit=1)[0]
        out.append(base)
    return out


def template_problems(template: str) -> list[str]:
    """What would make a template render wrongly, each said with its placeholder: invalid brace syntax, an
    unknown placeholder (with the nearest known one), an attribute/index/positional field, a format that
    does not fit the value (`{name:.2f}`). Empty when it renders as written; checked when the config loads."""
    import difflib

    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        return [f"not a valid template ({exc}) in {template!r}: write a placeholder as {{first_name}} and a "
                "literal brace as {{ or }}"]
    problems = []
    for _, name, spec, conversion in parsed:
        if name is None:
            continue
        shown = "{" + name + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "") + "}"
        if not name.isidentifier():
            problems.append(f"placeholder {shown}: only plain names like {{first_name}} are filled in "
                            "(a format such as {monthly_fee:.2f} is fine)")
        elif name not in PLACEHOLDERS:
            near = difflib.get_close_matches(name, PLACEHOLDERS, n=1)
            problems.append(f"unknown placeholder {shown}" + (f" (did you mean {{{near[0]}}}?)" if near else "")
                            + "; known: " + ", ".join(f"{{{p}}}" for p in PLACEHOLDERS))
        else:
            sample: object = 12.5 if name in _NUMERIC else "text"
            try:
                shown.format_map({name: sample})
            except (ValueError, TypeError, KeyError, IndexError):
                kind = "number" if name in _NUMERIC else "text"
                problems.append(f"placeholder {shown}: its format does not fit its value ({kind})")
    return problems


class _SafeValues(dict):
    """format_map values: an unknown field renders as '' and is remembered."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.unknown: set[str] = set()

    def __missing__(self, key: str) -> str:
        self.unknown.add(key)
        return ""


def _is_missing(v: object) -> bool:
    return v is None or v is pd.NA or (isinstance(v, float) and math.isnan(v))


def _plain_names(template: str) -> bool:
    """Whether every field of the template is a plain name ('{first_name}', '{fee:.2f}'), not an attribute,
    index or positional field."""
    try:
        return all(f.isidentifier() for _, f, _, _ in string.Formatter().parse(template) if f is not None)
    except ValueError:
        return False


def _tidy(text: str) -> str:
    text = _SPACES.sub(" ", text)
    text = _SPACE_BEFORE_PUNCT.sub(r"\1", text)
    return text.strip()


def render_template(
    template: str, values: Mapping[str, object], fields: list[str] | None = None
) -> tuple[str, set[str], bool]:
    """Render one template safely: (text, unknown placeholders, rendered by fallback substitution).

    `fields` are the template's field names (from `template_fields`; computed when not given).
    """
    if fields is None:
        fields = template_fields(template)
    if fields is None:
        fields = _FIELD.findall(template)
    vals = _SafeValues({k: ("" if _is_missing(v) else v) for k, v in values.items()})
    empty = any(f in vals and (vals[f] == "") for f in fields)
    try:
        if not _plain_names(template):
            # '{name.__class__}', '{name.upper}' or '{x[0]}' would let a template reach into the values'
            # attributes (and print object reprs to customers): such templates are substituted by name only.
            raise ValueError("attribute, index or positional field")
        text = template.format_map(vals)
        fallback = False
    except (ValueError, KeyError, IndexError, AttributeError, TypeError):
        # Bad syntax or a format spec that does not fit the value: substitute names literally.
        def sub(m: re.Match[str]) -> str:
            v = vals[m.group(1)]
            return "" if _is_missing(v) else str(v)

        text = _FIELD.sub(sub, template)
        fallback = True
    if empty or vals.unknown:
        text = _tidy(text)
    return text, vals.unknown, fallback


@dataclass
class RenderResult:
    """Rendered messages plus what went wrong, for the plan summary."""

    message: pd.Series
    language: pd.Series
    missing_translations: Counter = field(default_factory=Counter)  # customer language -> count
    unknown_placeholders: dict[str, list[str]] = field(default_factory=dict)  # incentive -> fields
    template_errors: dict[str, list[str]] = field(default_factory=dict)  # incentive -> languages
    incentives_without_messages: list[str] = field(default_factory=list)


def _missing_to_none(values: np.ndarray) -> np.ndarray:
    out = values.astype(object, copy=True)
    out[pd.isna(out)] = None
    return out


def _field_values(grp: pd.DataFrame, field_name: str, incentive: str, currency: str) -> np.ndarray:
    """One placeholder's value for every row of a group (None where unknown)."""
    n = len(grp)
    if field_name == "incentive":
        return np.full(n, incentive, dtype=object)
    if field_name == "currency":
        return np.full(n, currency, dtype=object)
    if field_name == "first_name":
        if "name" not in grp.columns:
            return np.full(n, None, dtype=object)
        return _missing_to_none(grp["name"].astype("string").str.split().str[0].to_numpy(dtype=object))
    if field_name == "monthly_fee":
        if "monthly_fee" not in grp.columns:
            return np.full(n, None, dtype=object)
        return _missing_to_none(pd.to_numeric(grp["monthly_fee"], errors="coerce").to_numpy(dtype=object))
    if field_name not in grp.columns:
        return np.full(n, None, dtype=object)
    return _missing_to_none(grp[field_name].to_numpy(dtype=object))


def render_messages(
    customers: pd.DataFrame,
    templates: Mapping[str, Mapping[str, str]],
    *,
    incentive_column: str = "incentive",
    default_language: str = "en",
    currency: str = "EUR",
) -> RenderResult:
    """Render the offer message for every row with an incentive, in the customer's language.

    `templates` maps incentive name -> {language: template}. Rows without an incentive get None.
    """
    idx = customers.index
    message = pd.Series([None] * len(customers), index=idx, dtype=object, name="offer_message")
    used_lang = pd.Series([None] * len(customers), index=idx, dtype=object, name="message_language")
    result = RenderResult(message=message, language=used_lang)
    if len(customers) == 0 or incentive_column not in customers.columns:
        return result
    inc = customers[incentive_column]
    has = inc.notna().to_numpy()
    if not has.any():
        return result
    sub = customers.loc[has]
    names = inc[has].astype(str).to_numpy(dtype=object)
    if "language" in sub.columns:
        codes, uniques = pd.factorize(sub["language"], use_na_sentinel=True)
        lang_keys = np.array([normalise_language(u) for u in uniques] + [None], dtype=object)[codes]
    else:
        lang_keys = np.full(len(sub), None, dtype=object)
    group_keys = pd.DataFrame({"i": names, "l": lang_keys})

    msgs: dict[object, str] = {}
    used: dict[object, str] = {}
    # One language decision per (incentive, customer language); one rendering per distinct set of values.
    for (name, lang_key), pos in group_keys.groupby(["i", "l"], dropna=False, sort=True).indices.items():
        tpl_by_lang = templates.get(name) or {}
        lang_key = None if _is_missing(lang_key) else lang_key
        chosen, missing = pick_language(lang_key, tpl_by_lang.keys(), default_language)
        if chosen is None:
            if name not in result.incentives_without_messages:
                result.incentives_without_messages.append(name)
            continue
        if missing:
            result.missing_translations[lang_key] += len(pos)
        tpl = tpl_by_lang[chosen]
        fields = template_fields(tpl)
        if fields is None:
            errs = result.template_errors.setdefault(name, [])
            if chosen not in errs:
                errs.append(chosen)
        known = [f for f in dict.fromkeys(fields if fields is not None else _FIELD.findall(tpl)) if f in PLACEHOLDERS]
        grp = sub.iloc[pos]
        columns = [_field_values(grp, f, name, currency) for f in known]
        cache: dict[tuple, str] = {}
        rows = zip(*columns) if columns else ((),) * len(pos)
        for i, vals in zip(grp.index, rows):
            text = cache.get(vals)
            if text is None:
                text, unknown, _ = render_template(tpl, dict(zip(known, vals)), fields)
                if unknown:
                    lst = result.unknown_placeholders.setdefault(name, [])
                    lst.extend(u for u in sorted(unknown) if u not in lst)
                cache[vals] = text
            msgs[i] = text
            used[i] = chosen
    if msgs:
        keys = list(msgs)
        message.loc[keys] = [msgs[k] for k in keys]
        used_lang.loc[keys] = [used[k] for k in keys]
    return result
