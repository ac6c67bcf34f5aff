"""Find personal data in free text and replace each occurrence by a typed placeholder.

Compiled regular expressions propose candidates; checksums (Luhn, IBAN mod-97, ``ipaddress``)
and a few context rules confirm them. A :class:`Finding` keeps the kind and the offsets in the
original text, never the matched value, so findings can be logged and stored.
"""

from __future__ import annotations

import bisect
import itertools
import re
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from loopwright.errors import Invalid
from loopwright.privacy.validators import IBAN_LENGTHS, card_valid, iban_valid, ipv4_valid, ipv6_valid

# Kinds in priority order: when two overlapping findings have the same length, the earlier wins.
KINDS: tuple[str, ...] = ("URL_CREDENTIALS", "EMAIL", "IBAN", "CARD", "SSN", "IP", "PHONE")
PLACEHOLDERS: dict[str, str] = {kind: f"[{kind}]" for kind in KINDS}
_PRIORITY = {kind: i for i, kind in enumerate(KINDS)}


@dataclass(frozen=True)
class Finding:
    """One piece of personal data: its kind and ``text[start:end]`` in the original text."""

    kind: str
    start: int
    end: int


@dataclass(frozen=True)
class FieldFinding:
    """A :class:`Finding` inside one payload field, named by its dotted path."""

    field: str
    kind: str
    start: int
    end: int


@dataclass(frozen=True)
class Scrubbed:
    """The text with every finding replaced by its placeholder, and the findings in text order."""

    text: str
    findings: tuple[Finding, ...]


Span = tuple[int, int]

# ---------------------------------------------------------------------------------------------
# Candidate patterns
# ---------------------------------------------------------------------------------------------

_DIGIT = re.compile(r"\d")

_URL_CREDENTIALS = re.compile(
    r"(?i)(?<![\w.+\-])[a-z][a-z0-9+.\-]{1,15}://[^\s/?#@:]+:[^\s/?#@]*@[^\s<>\"']+"
)
_URL_TRAILING = ".,;:!?)]}'\""

_EMAIL = re.compile(
    r"(?<![\w.%+\-])[A-Za-z0-9_][A-Za-z0-9._%+\-]{0,63}@"
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9\-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,24}(?![\w\-]|\.[A-Za-z0-9])"
)

_IBAN = re.compile(r"(?i)(?<![\w])[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,34}(?!\w)")

_CARD = re.compile(r"(?<![\w\-.,])\d(?:[ \-]?\d){12,24}(?!\w|[.,\-]\d)")
_CARD_GROUPS = re.compile(r"\d+")

_SSN = re.compile(r"(?<![\w\-])(?!000|666|9\d\d)\d{3}-(?!00)\d{2}-(?!0000)\d{4}(?![\w\-]|\.\d)")
_SSN_CONTEXT = re.compile(
    r"(?i)\b(?:ssn|ss\#|social\s+security(?:\s+(?:number|no\.?|\#))?)\s*[:#]?\s*"
    r"((?!000|666|9\d\d)\d{3}[ ]?(?!00)\d{2}[ ]?(?!0000)\d{4})(?![\w\-])"
)

_OCTET = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
_IPV4 = re.compile(rf"(?<![\w.\-]){_OCTET}(?:\.{_OCTET}){{3}}(?!\w|\.\d)")
_IPV6 = re.compile(
    r"(?<![\w:.])(?:[0-9A-Fa-f]{0,4}:){2,7}(?:[0-9A-Fa-f]{1,4}|\d{1,3}(?:\.\d{1,3}){3})?(?:%[\w.]+)?(?![\w:])"
)
# A dotted quad right after one of these words is a version or a section number, not an address,
# unless a network word comes later in the same window ("release server 10.0.0.1").
_VERSION_WORDS = re.compile(
    r"(?i)\b(?:versions?|ver|release[sd]?|build|firmware|revision|rev|package|sdk|library|section"
    r"|chapter|clause|upgrade[sd]?|updated?|patch(?:ed)?|bump(?:ed)?|installed|driver)\b"
)
_NETWORK_WORDS = re.compile(
    r"(?i)\b(?:ip|ipv4|address|addr|host|server|client|connect(?:ed|ion|ing)?|ping|gateway|dns"
    r"|proxy|subnet|router|login|logged|request|peer|source|destination)\b"
)

_PHONE_INTL = re.compile(
    r"(?<![\w+])(?:\+|00(?=[1-9]\d{0,2}[ .\-]))[1-9]\d{0,2}(?:[ .\-]?\(0\))?(?:[ .\-]?\(\d{1,4}\))?"
    r"[ .\-]?\d{1,5}(?:[ .\-]?\d{1,5}){0,6}"
    r"(?!\w|[.,\-]\d)"
)
_PHONE_NANP = re.compile(
    r"(?<![\w+\-.])(?:\+?1[ .\-]?)?(?:\(\d{3}\)[ .\-]?\d{3}[ .\-]\d{4}|\d{3}(?P<s>[ .\-])\d{3}(?P=s)\d{4})"
    r"(?!\w|[.\-]\d)"
)
_PHONE_NATIONAL = re.compile(
    r"(?<![\w+\-.,/])(?:\(0[1-9]\d{0,3}\)|0[1-9]\d{0,3})(?P<s>[ ./\-])\d{2,8}(?:(?P=s)\d{2,8}){0,4}"
    r"(?!\w|[.,/\-]\d)"
)
# Ten or eleven digits in one run starting with a trunk 0 (UK 07700900123, FR 0612345678).
_PHONE_COMPACT = re.compile(r"(?<![\w+\-.,/])0[1-9]\d{8,9}(?!\w|[.,\-]\d)")
# After a phone word, 7-15 digits in groups of 3 or more ("my cell is 555-0199").
_PHONE_CONTEXT = re.compile(
    r"(?i)\b(?:phone|tel|telephone|mobile|cell|call|fax|whatsapp|sms|text|dial)\b[^\d\n]{0,20}?"
    r"(?<![\w+\-.])(\+?\d{2,}(?:[ .\-]?\d{3,}){0,4})(?!\w|[.,\-]\d)"
)
_SSN_SHAPE = re.compile(r"\d{3}-\d{2}-\d{4}")
# Digits run on from a neighbouring number: the candidate is a piece of a longer number.
_DIGIT_BEFORE = re.compile(r"\d[ .\-]?$")
_DIGIT_AFTER = re.compile(r"[ .\-]?\d")
# A number right after one of these words is an identifier, not a phone number.
_NOT_PHONE_BEFORE = re.compile(
    r"(?i)(?:\b(?:order|invoice|ticket|ref|reference|tracking|isbn|sku|serial|part|item|case|batch"
    r"|lot|model|account|acct|policy|receipt|shipment|parcel|booking|confirmation)\b\.?"
    r"\s*(?:no\.?|number|num|\#|id)?\s*[:#]?\s*|\#\s*)$"
)


def _url_credentials(text: str) -> Iterator[Span]:
    for m in _URL_CREDENTIALS.finditer(text):
        s, e = m.span()
        while e > s and text[e - 1] in _URL_TRAILING:
            e -= 1
        yield s, e


def _email(text: str) -> Iterator[Span]:
    for m in _EMAIL.finditer(text):
        s, e = m.span()
        tld = text[text.rindex(".", s, e) + 1 : e]
        # "msg+ticket@kiosk.Valid" is an address-like word run into the next sentence.
        if tld.islower() or tld.isupper():
            yield s, e


def _iban(text: str) -> Iterator[Span]:
    for m in _IBAN.finditer(text):
        s, e = m.span()
        want = IBAN_LENGTHS.get(text[s : s + 2].upper())
        if want is None:
            continue
        # The pattern may run on into a following word or number: cut at the country's length,
        # on a group boundary.
        n = 0
        for i in range(s, e):
            if text[i] != " ":
                n += 1
                if n == want:
                    end = i + 1
                    if (end == e or text[end] == " ") and iban_valid(text[s:end]):
                        yield s, end
                    break


def _card(text: str) -> Iterator[Span]:
    for m in _CARD.finditer(text):
        s, e = m.span()
        chunk = text[s:e]
        seps = {ch for ch in chunk if not ch.isdigit()}
        groups = [(g.start() + s, g.end() + s) for g in _CARD_GROUPS.finditer(chunk)]
        found = _card_in_groups(text, groups, grouped=bool(seps))
        if found is None and len(seps) > 1:
            continue
        if found is not None:
            yield found


def _card_in_groups(text: str, groups: list[Span], grouped: bool) -> Span | None:
    """The longest run of whole groups that is a valid card number (a candidate may carry a
    neighbouring number on either side)."""
    best: Span | None = None
    best_len = 0
    for i in range(len(groups)):
        digits = ""
        for j in range(i, len(groups)):
            gs, ge = groups[j]
            # Every group but the last of the run has at least 3 digits, the last at least 2.
            if grouped and j > i and (ge - gs < 2 or groups[j - 1][1] - groups[j - 1][0] < 3):
                break
            digits += text[gs:ge]
            if len(digits) > 19:
                break
            if len(digits) >= 13 and len(digits) > best_len and card_valid(digits):
                if j > i and not _same_separators(text, groups[i : j + 1]):
                    continue
                best, best_len = (groups[i][0], ge), len(digits)
    return best


def _same_separators(text: str, groups: list[Span]) -> bool:
    seps = {text[a[1] : b[0]] for a, b in itertools.pairwise(groups)}
    return len(seps) == 1


def _ssn(text: str) -> Iterator[Span]:
    for m in _SSN.finditer(text):
        yield m.span()
    for m in _SSN_CONTEXT.finditer(text):
        yield m.span(1)


def _ip(text: str) -> Iterator[Span]:
    for m in _IPV4.finditer(text):
        s, e = m.span()
        if ipv4_valid(text[s:e]) and not _looks_like_version(text, s):
            yield s, e
    if ":" in text:
        for m in _IPV6.finditer(text):
            s, e = m.span()
            value = text[s:e]
            if value.count(":") >= 2 and any(c not in ":" for c in value) and ipv6_valid(value):
                yield s, e


def _looks_like_version(text: str, start: int) -> bool:
    window = text[max(0, start - 40) : start]
    last_version = max((m.end() for m in _VERSION_WORDS.finditer(window)), default=-1)
    if last_version < 0:
        return False
    last_network = max((m.end() for m in _NETWORK_WORDS.finditer(window)), default=-1)
    return last_version > last_network


def _phone(text: str) -> Iterator[Span]:
    for m in _PHONE_INTL.finditer(text):
        s, e = m.span()
        n = _count_digits(text, s, e) - (1 if "(0)" in text[s:e] else 0) - (2 if text[s] == "0" else 0)
        if not 8 <= n <= 15:
            continue
        if text[s] == "+" or not (
            _DIGIT_BEFORE.search(text, max(0, s - 2), s) or _NOT_PHONE_BEFORE.search(text, max(0, s - 30), s)
        ):
            yield s, e
    for pattern, low, high in ((_PHONE_NANP, 10, 11), (_PHONE_NATIONAL, 9, 12), (_PHONE_COMPACT, 10, 11)):
        for m in pattern.finditer(text):
            s, e = m.span()
            if not low <= _count_digits(text, s, e) <= high or _SSN_SHAPE.fullmatch(text, s, e):
                continue
            if _DIGIT_BEFORE.search(text, max(0, s - 2), s) or _DIGIT_AFTER.match(text, e):
                continue
            if not _NOT_PHONE_BEFORE.search(text, max(0, s - 30), s):
                yield s, e
    for m in _PHONE_CONTEXT.finditer(text):
        s, e = m.span(1)
        if 7 <= _count_digits(text, s, e) <= 15 and not _NOT_PHONE_BEFORE.search(text, max(0, s - 30), s):
            yield s, e


def _count_digits(text: str, start: int, end: int) -> int:
    return sum(ch.isdigit() for ch in text[start:end])


# Each detector, and whether it needs a character to be present to be worth running.
_DETECTORS: dict[str, tuple[Callable[[str], Iterator[Span]], str | None]] = {
    "URL_CREDENTIALS": (_url_credentials, "://"),
    "EMAIL": (_email, "@"),
    "IBAN": (_iban, None),
    "CARD": (_card, None),
    "SSN": (_ssn, None),
    "IP": (_ip, None),
    "PHONE": (_phone, None),
}


def _select(kinds: Collection[str] | None) -> tuple[str, ...]:
    if kinds is None:
        return KINDS
    if isinstance(kinds, str):
        kinds = [kinds]
    wanted = {str(k).upper() for k in kinds}
    unknown = sorted(wanted - set(KINDS))
    if unknown:
        raise Invalid(
            f"unknown PII kind(s) {', '.join(unknown)}: pass kinds from {', '.join(KINDS)} (or None for all)"
        )
    return tuple(k for k in KINDS if k in wanted)


def _resolve(spans: list[tuple[int, int, str]]) -> list[Finding]:
    """Keep non-overlapping spans: the longest first, then by kind priority, then leftmost."""
    spans.sort(key=lambda t: (t[0] - t[1], _PRIORITY[t[2]], t[0]))
    starts: list[int] = []
    kept: list[Finding] = []
    for s, e, kind in spans:
        if e <= s:
            continue
        i = bisect.bisect_left(starts, s)
        if i > 0 and kept[i - 1].end > s:
            continue
        if i < len(kept) and kept[i].start < e:
            continue
        starts.insert(i, s)
        kept.insert(i, Finding(kind, s, e))
    return kept


def find(text: str, kinds: Collection[str] | None = None) -> tuple[Finding, ...]:
    """The findings in ``text`` (in text order) without rewriting it."""
    if not isinstance(text, str):
        raise Invalid(f"scrub takes text (str), not {type(text).__name__}: convert the value first")
    selected = _select(kinds)
    has_digit = _DIGIT.search(text) is not None
    spans: list[tuple[int, int, str]] = []
    for kind in selected:
        detect, needs = _DETECTORS[kind]
        if needs is not None and needs not in text:
            continue
        if needs is None and not has_digit and not (kind == "IP" and ":" in text):
            continue
        spans.extend((s, e, kind) for s, e in detect(text))
    return tuple(_resolve(spans))


def scrub(text: str, kinds: Collection[str] | None = None) -> Scrubbed:
    """Replace emails, phone numbers, card numbers, IBANs, IP addresses, US SSNs and URLs with
    credentials by ``[EMAIL]``, ``[PHONE]``, ... ; ``kinds`` limits the kinds looked for."""
    findings = find(text, kinds)
    if not findings:
        return Scrubbed(text, ())
    parts: list[str] = []
    pos = 0
    for f in findings:
        parts.append(text[pos : f.start])
        parts.append(PLACEHOLDERS[f.kind])
        pos = f.end
    parts.append(text[pos:])
    return Scrubbed("".join(parts), findings)


def scrub_payload(
    payload: Mapping[str, Any], fields: Sequence[str], kinds: Collection[str] | None = None
) -> tuple[dict[str, Any], list[FieldFinding]]:
    """A copy of ``payload`` with the string fields named by dotted paths (``"text"``,
    ``"meta.note"``) scrubbed, and the findings per field. The input is not modified."""
    if not isinstance(payload, Mapping):
        raise Invalid(f"payload must be a mapping, not {type(payload).__name__}")
    if isinstance(fields, str):
        fields = [fields]
    _select(kinds)
    out = _copy(payload)
    errors: list[tuple[str, str]] = []
    targets: list[tuple[str, dict[str, Any], str]] = []
    for field in dict.fromkeys(fields):  # a field named twice is scrubbed once
        parts = field.split(".") if isinstance(field, str) else []
        if not parts or any(not p for p in parts):
            errors.append((str(field), "is not a dotted path like 'text' or 'meta.note'"))
            continue
        node: Any = out
        for depth, part in enumerate(parts):
            if not isinstance(node, dict) or part not in node:
                where = ".".join(parts[:depth]) or "the payload"
                errors.append((field, f"is missing ({where} has no '{part}'): fix the path or the payload"))
                break
            if depth == len(parts) - 1:
                if not isinstance(node[part], str):
                    errors.append(
                        (field, f"is {type(node[part]).__name__}, not text: name only string fields")
                    )
                else:
                    targets.append((field, node, part))
            else:
                node = node[part]
    if errors:
        raise Invalid("cannot scrub the payload: fields to scrub are missing or not text", errors)
    found: list[FieldFinding] = []
    for field, parent, key in targets:
        result = scrub(parent[key], kinds)
        parent[key] = result.text
        found.extend(FieldFinding(field, f.kind, f.start, f.end) for f in result.findings)
    return out, found


def _copy(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value
