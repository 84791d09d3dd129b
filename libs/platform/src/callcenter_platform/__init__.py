"""Runners of the whole platform: `embedded` (make run) and `fullstack` (make up)."""
