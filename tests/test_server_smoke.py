from __future__ import annotations

import json
import signal
import urllib.request

from tests.conftest import ServerProcess


def test_server_answers_and_stops_cleanly_on_sigterm(server: ServerProcess) -> None:
    with urllib.request.urlopen(server.url + "/healthz") as resp:
        assert resp.status == 200
        assert json.loads(resp.read()) == {"status": "ok"}
    assert server.stop(signal.SIGTERM) == 0
