"""The agent-state service."""
