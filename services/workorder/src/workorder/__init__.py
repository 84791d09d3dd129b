"""The workorder service."""
