"""Every benchmark under bench/ stays a script anyone can run: each is run here at a tiny size
(the figures it prints are not judged here; the full-size runs print them, `make bench`)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

SMALL_RUNS = {
    "acd_routing.py": ["--agents", "50", "--rates", "50", "--seconds", "0.5"],
    "agent_state.py": [],
    "ami_ingest.py": ["--calls", "40", "--wave", "20", "--repeat", "1"],
    "bus.py": ["--events", "300"],
    "gateway.py": ["--requests", "300", "--latency-requests", "50", "--rounds", "1", "--concurrency", "4"],
    "patient_lookup.py": ["--patients", "2000", "--lookups", "50"],
}
SMALL_ENV = {"BENCH_AGENTS": "20", "BENCH_SECONDS": "1", "BENCH_PACED_SECONDS": "1", "BENCH_CONCURRENCY": "4"}


def test_every_bench_script_is_covered_here() -> None:
    assert sorted(p.name for p in (ROOT / "bench").glob("*.py")) == sorted(SMALL_RUNS)


@pytest.mark.parametrize("script", sorted(SMALL_RUNS))
def test_bench_script_runs_and_prints_figures(script: str) -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "bench" / script), *SMALL_RUNS[script]],
        cwd=ROOT,
        env={**os.environ, **SMALL_ENV},
        capture_output=True,
        text=True,
        timeout=110,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    assert any(ch.isdigit() for ch in result.stdout), result.stdout
