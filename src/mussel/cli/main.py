"""Entry point of the ``mussel`` command."""

from __future__ import annotations

import sys

import mussel


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args[:1] in (["version"], ["--version"]):
        print(f"mussel {mussel.__version__}")
        return 0
    print("usage: mussel version", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
