"""Rate quotas per namespace (SPEC §5, §7): 429 ``rate_limited`` with an honest
``Retry-After``, one budget across the server's processes, other namespaces untouched."""

from __future__ import annotations

import threading
import time

import httpx
import pytest

from tests.contract.conftest import Api


def _hammer(url: str, seconds: float, threads: int = 4) -> list[httpx.Response]:
    out: list[httpx.Response] = []
    lock = threading.Lock()
    stop = time.monotonic() + seconds

    def run() -> None:
        while time.monotonic() < stop:
            with httpx.Client(timeout=10) as c:  # new connections: every process
                for _ in range(20):
                    r = c.get(url)
                    with lock:
                        out.append(r)

    workers = [threading.Thread(target=run) for _ in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return out


def test_reads_past_the_quota_get_429_and_the_rest_is_admitted_at_the_quota(
    api: Api, ns: str
) -> None:
    quota = 40
    api.put(f"/v1/namespaces/{ns}", json={"quotas": {"read_qps": quota}})
    t = api.put_table(ns, "t")
    t.put("p", "s", "v")
    url = f"{api.url}{t.path}/rows/p?sk=s"
    started = time.monotonic()
    answers = _hammer(url, 3.0)
    elapsed = time.monotonic() - started
    ok = [r for r in answers if r.status_code == 200]
    limited = [r for r in answers if r.status_code == 429]
    assert len(ok) + len(limited) == len(answers)
    assert limited, "nothing was refused"
    # a full bucket (one second of quota) plus the refill while it ran
    expected = quota + quota * elapsed
    assert 0.85 * expected <= len(ok) <= 1.1 * expected, (len(ok), expected)
    r = limited[0]
    assert r.json()["error"]["code"] == "rate_limited"
    assert int(r.headers["retry-after"]) >= 1


def _paced(url: str, rate: float, seconds: float, threads: int = 4) -> list[tuple[float, int]]:
    """GET ``url`` at ``rate`` requests per second in all for ``seconds``: each of
    ``threads`` threads sends on its own schedule (offset so that together they are
    evenly spaced) and opens a new connection every 10 requests, so the requests land
    on every server process. Returns (send time, status) of every request."""
    out: list[tuple[float, int]] = []
    lock = threading.Lock()
    start = time.monotonic() + 0.2
    per_thread = int(rate * seconds / threads)

    def run(k: int) -> None:
        with httpx.Client(timeout=10) as client:
            for i in range(per_thread):
                due = start + (i * threads + k) / rate
                delay = due - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                sent = time.monotonic()
                # every 10th request closes its connection: the next one may land on
                # another server process
                close = {"connection": "close"} if i % 10 == 9 else {}
                status = client.get(url, headers=close).status_code
                with lock:
                    out.append((sent - start, status))

    workers = [threading.Thread(target=run, args=(k,)) for k in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return sorted(out)


def test_a_namespace_driven_at_twice_its_quota_is_admitted_at_its_quota(api: Api, ns: str) -> None:
    """Issue 6: driven at 2x its read quota, a namespace gets 429 for the excess and is
    admitted within +-10% of its quota. The bucket starts full (one second of quota,
    quotas.py), so over the whole run the admitted count should be quota x (1 + elapsed);
    from the first refusal on (the burst spent) admissions track the quota alone."""
    quota, rate, seconds = 50, 100.0, 4.0
    paces = []
    for attempt in range(3):  # a fresh namespace (a full bucket) for each attempt
        name = ns if attempt == 0 else f"{ns}-{attempt}"[:63]
        api.put(f"/v1/namespaces/{name}", json={"quotas": {"read_qps": quota}})
        t = api.put_table(name, "t")
        t.put("p", "s", "v")
        answers = _paced(f"{api.url}{t.path}/rows/p?sk=s", rate, seconds, threads=8)
        assert {status for _, status in answers} == {200, 429}, answers
        elapsed = answers[-1][0] - answers[0][0]
        paces.append(len(answers) / elapsed)
        if paces[-1] >= 0.9 * rate:  # the client kept up: it really drove 2x the quota
            break
    else:  # (an overloaded machine: the experiment did not happen, the claim is untested)
        pytest.fail(f"the client could not drive {rate:g} requests/s: only {paces}")
    admitted = sum(1 for _, status in answers if status == 200)
    expected = quota * (1 + elapsed)
    assert 0.9 * expected <= admitted <= 1.1 * expected, (admitted, expected)
    # steady state: from the first refusal on the bucket is empty and refills at the
    # quota, so admissions follow the quota alone, burst or no burst
    first_refusal = next(sent for sent, status in answers if status == 429)
    steady = sum(1 for sent, status in answers if sent > first_refusal and status == 200)
    expected_steady = quota * (answers[-1][0] - first_refusal)
    assert 0.9 * expected_steady <= steady <= 1.1 * expected_steady, (steady, expected_steady)


def test_another_namespace_is_not_held_back(api: Api, ns: str) -> None:
    api.put(f"/v1/namespaces/{ns}", json={"quotas": {"read_qps": 5}})
    busy = api.put_table(ns, "t")
    busy.put("p", "s", "v")
    free_ns = f"{ns}-free"[:63]
    api.put(f"/v1/namespaces/{free_ns}", json={})
    free = api.put_table(free_ns, "t")
    free.put("p", "s", "v")
    done = threading.Event()

    def flood() -> None:
        while not done.is_set():
            _hammer(f"{api.url}{busy.path}/rows/p?sk=s", 0.3, threads=2)

    flooder = threading.Thread(target=flood)
    flooder.start()
    try:
        answers = _hammer(f"{api.url}{free.path}/rows/p?sk=s", 1.0, threads=2)
    finally:
        done.set()
        flooder.join()
    assert answers and all(r.status_code == 200 for r in answers)


def test_write_quota(api: Api, ns: str) -> None:
    api.put(f"/v1/namespaces/{ns}", json={"quotas": {"write_qps": 3}})
    t = api.put_table(ns, "t")
    codes = [t.write({"pk": f"k{i}", "value": "v"}).status_code for i in range(12)]
    assert codes.count(200) >= 3 and 429 in codes
    # /metrics counts them, in every process, per namespace and kind
    text = api.get("/metrics").text
    line = f'mussel_throttled_requests_total{{namespace="{ns}",kind="write"}} {codes.count(429)}'
    assert line in text.splitlines(), [ln for ln in text.splitlines() if "throttled" in ln]
    assert f'mussel_namespace_quota_writes_per_second{{namespace="{ns}"}} 3' in text
