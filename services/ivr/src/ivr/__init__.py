"""The ivr service."""
