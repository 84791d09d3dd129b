"""Caller number → region (CORE-2.3): mobiles by `phone` (prefix data), landlines by the
`phonenumbers` geocoder (area code). `phone` asserts on anything but 11 bare digits, so every
number is normalized first (THIRD-PARTY.md)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

import phonenumbers
from phone import Phone
from phonenumbers import geocoder

_NON_DIGITS = re.compile(r"\D")
_MOBILE = re.compile(r"1[3-9]\d{9}")


@dataclass(frozen=True, slots=True)
class Region:
    province: str
    city: str

    def names(self) -> tuple[str, ...]:
        """What a region rule may name: the city, or the province."""
        return (self.city, self.province) if self.city != self.province else (self.city,)


def normalize_number(raw: str) -> str:
    """Bare national digits: `+86 138-0013-8000` → `13800138000`, `0086 20 8388 6666` → `02083886666`."""
    digits = _NON_DIGITS.sub("", raw)
    if digits.startswith("0086"):
        digits = "0" + digits[4:] if not _MOBILE.fullmatch(digits[4:]) else digits[4:]
    elif digits.startswith("86") and len(digits) >= 12:
        rest = digits[2:]
        digits = rest if _MOBILE.fullmatch(rest) else "0" + rest
    return digits


def is_mobile(number: str) -> bool:
    return _MOBILE.fullmatch(number) is not None


def _split_place(description: str) -> Region | None:
    """`广东省广州市` → 广东 / 广州; `北京市` → 北京 / 北京; `中国` (no city known) → None."""
    if not description or description == "中国":
        return None
    province, sep, rest = description.partition("省")
    if not sep:
        province, sep, rest = description.partition("自治区")
    if sep:
        city = rest.removesuffix("市") or province
        return Region(province, city)
    city = description.removesuffix("市")
    return Region(city, city)


class RegionLookup:
    """Cached lookups; `phone` loads its data file once, on first use."""

    def __init__(self) -> None:
        self._phone: Phone | None = None

    @lru_cache(maxsize=65_536)  # noqa: B019 - one lookup object per service, for its lifetime
    def region_of(self, raw: str) -> Region | None:
        number = normalize_number(raw)
        if is_mobile(number):
            if self._phone is None:
                self._phone = Phone()
            found = self._phone.find(number)
            if found and found.get("city"):
                return Region(str(found.get("province") or found["city"]), str(found["city"]))
            return None
        if number.startswith("0") and len(number) >= 10:
            try:
                parsed = phonenumbers.parse("+86" + number[1:])
            except phonenumbers.NumberParseException:
                return None
            return _split_place(geocoder.description_for_number(parsed, "zh"))
        return None
