"""The dispatcher: HTTP API v1 (SPEC §4-§5) over the engine."""
