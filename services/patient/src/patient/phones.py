"""Phone numbers: one spelling per number, so a mobile is a key."""

from __future__ import annotations

import phonenumbers
from phonenumbers import NumberParseException, PhoneNumberType

_MOBILE_TYPES = {PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE_OR_MOBILE}


def normalize_mobile(raw: str) -> str:
    """11 bare digits for a Chinese mobile, E.164 for a foreign one; ValueError otherwise."""
    number = _parse(raw)
    if phonenumbers.number_type(number) not in _MOBILE_TYPES:
        raise ValueError("not a mobile number")
    return _spell(number)


def normalize_phone(raw: str) -> str:
    """Any valid number: a Chinese mobile as 11 digits, everything else E.164."""
    number = _parse(raw)
    if phonenumbers.number_type(number) in _MOBILE_TYPES:
        return _spell(number)
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def try_normalize_mobile(raw: str) -> str | None:
    try:
        return normalize_mobile(raw)
    except ValueError:
        return None


def _parse(raw: str) -> phonenumbers.PhoneNumber:
    text = raw.strip()
    if text.startswith("00"):
        text = "+" + text[2:]
    try:
        number = phonenumbers.parse(text, "CN")
    except NumberParseException as exc:
        raise ValueError("not a phone number") from exc
    if not phonenumbers.is_valid_number(number):
        raise ValueError("not a valid phone number")
    return number


def _spell(number: phonenumbers.PhoneNumber) -> str:
    if number.country_code == 86:
        return str(number.national_number)
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
