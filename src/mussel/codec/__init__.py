"""Byte-level encodings: ordered storage keys and opaque pagination cursors."""
