"""The recording service."""
