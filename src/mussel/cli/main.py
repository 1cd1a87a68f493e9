"""Entry point of the ``mussel`` command."""

from __future__ import annotations

import sys

import mussel


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args[:1] in (["version"], ["--version"]):
        print(f"mussel {mussel.__version__}")
        return 0
    if args[:1] == ["serve"]:
        print(
            "mussel: the HTTP server is not built yet (see README: it comes with the "
            "dispatcher); use the embedded API, mussel.Store.open(path)",
            file=sys.stderr,
        )
        return 2
    print("usage: mussel version", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
