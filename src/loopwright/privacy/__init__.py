"""Privacy: scrub personal data (emails, phones, cards, IBANs, IPs, SSNs, credentials in URLs)
from text before annotators see it."""

from loopwright.privacy.scrubber import (
    KINDS,
    PLACEHOLDERS,
    FieldFinding,
    Finding,
    Scrubbed,
    find,
    scrub,
    scrub_payload,
)
from loopwright.privacy.validators import card_valid, iban_valid, luhn_valid

__all__ = [
    "KINDS",
    "PLACEHOLDERS",
    "FieldFinding",
    "Finding",
    "Scrubbed",
    "card_valid",
    "find",
    "iban_valid",
    "luhn_valid",
    "scrub",
    "scrub_payload",
]
