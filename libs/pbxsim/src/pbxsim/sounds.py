"""Which prompt files exist and how long they play (STREAM FILE, GET DATA, SAY DIGITS, Playback)."""

from __future__ import annotations

import wave
from pathlib import Path

SAMPLE_RATE = 8000
# Bytes per second of the raw formats Asterisk plays besides WAV.
RAW_RATES = {".ulaw": 8000, ".alaw": 8000, ".sln": 16000, ".gsm": 1650, ".g722": 8000}


class Sounds:
    """With no directory every prompt exists and lasts `default_seconds`; with one, a prompt
    exists when `<dir>/<language>/<name>.<ext>` or `<dir>/<name>.<ext>` does (absolute names are
    taken as they are), as Asterisk looks prompts up in astdatadir/sounds/<lang>."""

    def __init__(self, directory: Path | None, default_seconds: float = 1.0) -> None:
        self.directory = directory
        self.default_seconds = default_seconds
        self._durations: dict[tuple[str, str], float | None] = {}

    def duration(self, name: str, language: str = "en") -> float | None:
        """Seconds the prompt plays, or None when the file does not exist."""
        key = (name, language)
        if key not in self._durations:
            self._durations[key] = self._find(name, language)
        return self._durations[key]

    def _find(self, name: str, language: str) -> float | None:
        if self.directory is None:
            return self.default_seconds
        bases = [Path(name)] if Path(name).is_absolute() else [self.directory / language / name, self.directory / name]
        for base in bases:
            wav = base.with_name(base.name + ".wav")
            if wav.is_file():
                return wav_seconds(wav)
            for ext, rate in RAW_RATES.items():
                raw = base.with_name(base.name + ext)
                if raw.is_file():
                    return raw.stat().st_size / rate
        return None


def wav_seconds(path: Path) -> float:
    try:
        with wave.open(str(path), "rb") as w:
            return w.getnframes() / float(w.getframerate() or SAMPLE_RATE)
    except (wave.Error, EOFError):
        return 0.0
