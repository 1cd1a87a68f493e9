"""How ``mussel`` fails: one line on stderr, exit status 1 (2 for usage), no traceback."""

from __future__ import annotations

import time
from typing import Any

import pytest

from mussel.cli import _session
from mussel.cli import namespaces as cli_namespaces
from tests.cli.conftest import Mussel, dead_url


@pytest.mark.parametrize(
    "args",
    [
        ("ns", "list"),
        ("ns", "create", "shop"),
        ("table", "describe", "shop/users"),
        ("put", "shop/users", "pk", "sk", "v"),
        ("get", "shop/users", "pk"),
        ("scan", "shop/users"),
    ],
)
def test_a_server_that_is_down_exits_1_saying_so(args: tuple[str, ...]) -> None:
    url = dead_url()
    started = time.monotonic()
    err = Mussel(url).fails(*args)
    assert err.startswith(f"mussel: cannot reach the server at {url}: ")
    assert err.endswith("(unavailable)\n")
    assert err.count("\n") == 1
    assert time.monotonic() - started < 5


def test_url_option_wins_over_the_environment(mussel: Mussel) -> None:
    down = Mussel(dead_url())
    assert "namespaces" in down.json("ns", "list", "--url", mussel.url)


def test_a_url_without_http_is_a_usage_error(mussel: Mussel) -> None:
    result = mussel("ns", "list", "--url", "localhost:7070")
    assert result.exit_code == 2
    assert "http://" in result.stderr
    result = Mussel("ftp://example.com")("ns", "list")
    assert result.exit_code == 2


def test_token_is_given_to_the_client(mussel: Mussel, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[Any] = []
    real = _session.Client

    def spy(url: str, **kwargs: Any) -> Any:
        seen.append(kwargs.get("token"))
        return real(url, **kwargs)

    monkeypatch.setattr(_session, "Client", spy)
    mussel.ok("ns", "list", "--token", "s3cret")
    Mussel(mussel.url, env={"MUSSEL_TOKEN": "from-env"}).ok("ns", "list")
    mussel.ok("ns", "list")
    assert seen == ["s3cret", "from-env", None]


def test_an_unexpected_error_is_one_line_not_a_traceback(
    mussel: Mussel, ns: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    def boom(*args: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(cli_namespaces, "namespace_json", boom)
    monkeypatch.delenv("MUSSEL_DEBUG", raising=False)
    err = mussel.fails("ns", "describe", ns)
    assert err.startswith("mussel: internal error: RuntimeError: boom")
    assert err.endswith("(internal)\n")
    assert "Traceback" not in err


def test_unknown_command_and_missing_arguments_are_usage_errors(mussel: Mussel) -> None:
    for args in (("nope",), ("get",), ("ns", "create"), ("get", "a/b", "pk", "--limit", "-1")):
        result = mussel(*args)
        assert result.exit_code == 2, args
        assert "Usage:" in result.stderr
