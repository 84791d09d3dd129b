"""ID-card numbers: AES-256-GCM at rest, masked in responses, validated on input."""

from __future__ import annotations

import base64
import binascii
import os
import re
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from callcenter_common.settings import PLACEHOLDER_SECRETS
from patient.config import PatientSettings

_VERSION = b"\x01"
_AAD = b"patient.id_number"
_ID_NUMBER = re.compile(r"^\d{17}[\dX]$")
_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_CHECK_CHARS = "10X98765432"


class IdNumberCipher:
    def __init__(self, key: bytes) -> None:
        if len(key) != 32:
            raise ValueError("the ID-number key must be 32 bytes (AES-256)")
        self._aead = AESGCM(key)

    def encrypt(self, plain: str) -> bytes:
        nonce = os.urandom(12)
        return _VERSION + nonce + self._aead.encrypt(nonce, plain.encode(), _AAD)

    def decrypt(self, blob: bytes) -> str:
        if blob[:1] != _VERSION:
            raise ValueError("unknown ID-number ciphertext version")
        return self._aead.decrypt(blob[1:13], blob[13:], _AAD).decode()


def load_id_number_key(settings: PatientSettings) -> bytes:
    """The key from settings or its file; in dev, made once under var/ if none is set."""
    raw = settings.id_number_key.strip()
    if not raw and settings.id_number_key_file is not None and settings.id_number_key_file.exists():
        raw = settings.id_number_key_file.read_text().strip()
    if not raw or raw.lower() in PLACEHOLDER_SECRETS:
        if settings.platform.env != "dev":
            raise ValueError("PATIENT_ID_NUMBER_KEY is empty or a placeholder; set a real key outside dev")
        return _dev_key(settings.platform.var_dir / "patient" / "id_number.key")
    try:
        key = base64.b64decode(raw, validate=True)
    except binascii.Error as exc:
        raise ValueError("PATIENT_ID_NUMBER_KEY must be base64 of 32 bytes") from exc
    if len(key) != 32:
        raise ValueError("PATIENT_ID_NUMBER_KEY must be base64 of 32 bytes")
    return key


def _dev_key(file: Path) -> bytes:
    if file.exists():
        return base64.b64decode(file.read_text().strip())
    file.parent.mkdir(parents=True, exist_ok=True)
    key = AESGCM.generate_key(bit_length=256)
    fd = os.open(file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(base64.b64encode(key).decode())
    return key


def normalize_id_number(value: str) -> str:
    """An 18-character resident ID (GB 11643) with a valid check character, upper-case X."""
    number = value.strip().upper()
    if not _ID_NUMBER.match(number):
        raise ValueError("an ID-card number has 17 digits and a check digit or X")
    total = sum(int(d) * w for d, w in zip(number[:17], _WEIGHTS, strict=True))
    if _CHECK_CHARS[total % 11] != number[17]:
        raise ValueError("the ID-card number's check character is wrong")
    return number


def mask_id_number(number: str) -> str:
    """4401**********1234: the region prefix and the last four stay visible."""
    if len(number) <= 8:
        return "*" * len(number)
    return number[:4] + "*" * (len(number) - 8) + number[-4:]
