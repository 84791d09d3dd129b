"""MixMonitor and RECORD FILE: real WAV files (8 kHz, 16-bit, mono) of the call's length."""

from __future__ import annotations

import math
import struct
import wave
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

SAMPLE_RATE = 8000
_CHUNK_FRAMES = SAMPLE_RATE * 10


@dataclass
class Recording:
    """One MixMonitor on one channel. `bridged_only` is MixMonitor option b."""

    requested: str  # the File the client asked for, as Asterisk reports it in MIXMONITOR_FILENAME
    path: Path  # where the simulator writes it
    started: float
    bridged_only: bool
    bridged_at: float | None = None
    stopped: float | None = None

    def seconds(self) -> float:
        end = self.stopped if self.stopped is not None else self.started
        begin = self.started
        if self.bridged_only:
            if self.bridged_at is None:
                return 0.0
            begin = max(begin, self.bridged_at)
        return max(0.0, end - begin)


def resolve_path(requested: str, recordings_dir: Path, monitor_dir: str) -> Path:
    """Relative names and names under Asterisk's monitor directory go to `recordings_dir`,
    other absolute paths are used as they are (Asterisk writes where it is told)."""
    pure = PurePosixPath(requested)
    if not pure.is_absolute():
        return Path(recordings_dir, *pure.parts)
    try:
        return Path(recordings_dir, *pure.relative_to(monitor_dir).parts)
    except ValueError:
        return Path(requested)


def write_wav(path: Path, seconds: float, tone_hz: float = 0.0) -> None:
    """Silence, or a tone at -12 dBFS, of the given length."""
    path.parent.mkdir(parents=True, exist_ok=True)
    frames = round(seconds * SAMPLE_RATE)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(SAMPLE_RATE)
        chunk = _tone_chunk(tone_hz) if tone_hz > 0 else bytes(2 * _CHUNK_FRAMES)
        while frames > 0:
            n = min(frames, _CHUNK_FRAMES)
            w.writeframes(chunk[: 2 * n])
            frames -= n


def _tone_chunk(tone_hz: float) -> bytes:
    amplitude = 8191
    samples = (int(amplitude * math.sin(2 * math.pi * tone_hz * i / SAMPLE_RATE)) for i in range(_CHUNK_FRAMES))
    return struct.pack(f"<{_CHUNK_FRAMES}h", *samples)
