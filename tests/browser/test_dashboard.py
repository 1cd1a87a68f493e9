"""The web dashboard in a real headless Chromium (Debian's ``chromium``, driven by
Playwright) against a real ``mussel serve --auth token`` of two processes.

The test signs in with the admin token, then watches the page while a bulk load runs:
the namespace is listed, the job's progress moves between two observations, and the
page logs no console error. A screenshot is kept as an artifact (its path is
printed). Outside CI the test is skipped when ``/usr/bin/chromium`` is missing; in CI
(``CI`` set) it fails instead.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.conftest import ServerProcess, start_server

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
ADMIN = "browser-admin-token-0123456789"
NS = "shop"
FILES = 24
ROWS_PER_FILE = 50_000
"""A source big enough that the job runs for several seconds (24 files of 50,000
rows), long enough to see its progress move between two polls of the page."""

if not CHROMIUM.exists() and not os.environ.get("CI"):
    pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium)", allow_module_level=True)

from playwright.sync_api import ConsoleMessage, Page, sync_playwright  # noqa: E402


@pytest.fixture
def auth_server(tmp_path: Path) -> Iterator[ServerProcess]:
    os.environ["MUSSEL_ADMIN_TOKEN"] = ADMIN
    try:
        srv = start_server(tmp_path / "data", "--auth", "token")
    finally:
        del os.environ["MUSSEL_ADMIN_TOKEN"]
    yield srv
    if srv.proc.poll() is None:
        srv.stop()
    if srv.proc.stderr:
        srv.proc.stderr.close()


def _source(root: Path) -> Path:
    root.mkdir()
    for f in range(FILES):
        pks = [f"user-{f:02d}-{i:07d}" for i in range(ROWS_PER_FILE)]
        table = pa.table(
            {
                "pk": pks,
                "sk": ["profile"] * ROWS_PER_FILE,
                "value": [f"v{i}" for i in range(ROWS_PER_FILE)],
            }
        )
        pq.write_table(table, root / f"part-{f:03d}.parquet", row_group_size=10_000)
    return root


def _fraction(page: Page, job_id: str) -> float:
    value = page.locator(f'tr[data-job="{job_id}"] progress').get_attribute("value")
    assert value is not None
    return float(value)


def test_dashboard_shows_namespaces_and_live_job_progress(
    auth_server: ServerProcess, tmp_path: Path
) -> None:
    if not CHROMIUM.exists():
        pytest.fail(f"CI must have {CHROMIUM}: apt-get install chromium (see .ci/run)")
    api = httpx.Client(
        base_url=auth_server.url, headers={"authorization": f"Bearer {ADMIN}"}, timeout=30
    )
    assert (
        api.put(f"/v1/namespaces/{NS}", json={"quotas": {"storage_bytes": 1 << 30}}).status_code
        == 200
    )
    table = f"/v1/namespaces/{NS}/tables/users"
    assert api.put(table, json={"ttl_seconds": 86_400}).status_code == 200
    records = [{"pk": f"k{i % 5}", "sk": str(i), "value": "x" * 50} for i in range(200)]
    assert api.post(f"{table}/write", json={"records": records}).status_code == 200
    source = _source(tmp_path / "source")

    errors: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1600})
            # sign in: the page asks for the token (401), the form sets the cookie
            refused: list[tuple[int, str]] = []
            page.on(
                "response", lambda r: refused.append((r.status, r.url)) if r.status >= 400 else None
            )
            page.goto(f"{auth_server.url}/dashboard")
            assert page.locator("input[name=token]").count() == 1
            # the form's page loads nothing that needs a sign-in: its own 401 only
            assert refused == [(401, f"{auth_server.url}/dashboard")], refused
            page.fill("input[name=token]", ADMIN)
            page.click("button[type=submit]")
            page.wait_for_url(f"{auth_server.url}/dashboard")

            def on_console(msg: ConsoleMessage) -> None:
                if msg.type == "error":
                    errors.append(f"console: {msg.text}")

            page.on("console", on_console)
            page.on("pageerror", lambda exc: errors.append(f"pageerror: {exc}"))
            page.goto(f"{auth_server.url}/dashboard?refresh=0.5")  # poll every 0.5 s
            page.wait_for_selector(f'#namespaces tr[data-namespace="{NS}"]', timeout=15_000)
            for i in range(30):  # hot keys are those of the last seconds: read now
                assert api.get(f"{table}/rows/k{i % 3}").status_code == 200
            page.wait_for_selector('#hotkeys tbody tr:has-text("shop/users")', timeout=15_000)

            resp = api.post(f"{table}/bulkloads", json={"source": str(source), "mode": "merge"})
            assert resp.status_code == 202, resp.text
            job_id = resp.json()["job"]["id"]
            row = page.locator(f'tr[data-job="{job_id}"]')
            row.wait_for(timeout=15_000)
            page.wait_for_selector(f'tr[data-job="{job_id}"][data-state="running"]', timeout=30_000)
            first = _fraction(page, job_id)
            page.wait_for_function(
                "([id, before]) => {"
                " const p = document.querySelector(`tr[data-job='${id}'] progress`);"
                " return p !== null && Number(p.getAttribute('value')) !== before; }",
                arg=[job_id, first],
                timeout=30_000,
            )
            second = _fraction(page, job_id)
            assert second != first, (first, second)
            assert 0.0 <= first < second <= 1.0, (first, second)

            page.wait_for_selector(
                f'tr[data-job="{job_id}"][data-state="committed"]', timeout=120_000
            )
            assert page.locator(f'tr[data-job="{job_id}"] .fraction').inner_text() == "100.0%"
            ns_row = page.locator(f'#namespaces tr[data-namespace="{NS}"]').inner_text()
            assert NS in ns_row
            page.wait_for_selector('#tables tr[data-table="shop/users"]')
            assert "24.0 h" in page.locator('#tables tr[data-table="shop/users"]').inner_text()
            assert page.locator("#chart-rates svg").count() == 1
            shot = tmp_path / "dashboard.png"
            page.screenshot(path=str(shot), full_page=True)
        finally:
            browser.close()
    ARTIFACTS.mkdir(exist_ok=True)
    kept = ARTIFACTS / "dashboard.png"
    shutil.copyfile(shot, kept)
    print(f"dashboard screenshot: {kept}")
    assert not errors, errors
    api.close()
