"""The patient service."""
