"""Shared building blocks of the call-center services (settings, db, bus, events, auth, errors)."""
