"""Peer systems (PostgreSQL, ...) that benchmarks run side by side with Mussel."""
