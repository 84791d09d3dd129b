"""Event contracts, one module per producing service (`contracts.acd`, `contracts.patient` …)."""
