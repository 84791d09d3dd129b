"""The acd service."""
