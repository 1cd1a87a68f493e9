"""``Client.bulk_load``: a job handle with ``wait()`` and progress, against a real server."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mussel import AsyncClient, Client
from mussel.client import JobDescription
from mussel.errors import InvalidRequestError, JobNotFoundError
from tests.conftest import ServerProcess


def test_bulk_load_and_wait(client: Client, ns: str, tmp_path: Path) -> None:
    src = tmp_path / "in.parquet"
    pq.write_table(pa.table({"pk": ["a", "b"], "sk": ["x", "y"], "value": ["1", "2"]}), src)
    seen: list[JobDescription] = []
    handle = client.bulk_load(ns, "t", str(src), mode="replace", ts=99, job_id=f"{ns}-j")
    job = handle.wait(60, poll_s=0.02, on_progress=seen.append)
    assert job.state == "committed" and job.done
    assert job.progress.rows == 2 and job.progress.fraction == 1.0
    assert seen and seen[-1] == job
    assert [c.value for c in client.get(ns, "t", "a", "x")] == [b"1"]
    assert client.get(ns, "t", "b", "y")[0].ts == 99
    assert client.job(f"{ns}-j").state == "committed"
    assert f"{ns}-j" in [j.id for j in client.jobs(ns)]
    again = client.bulk_load(ns, "t", str(src), mode="replace", ts=99, job_id=f"{ns}-j")
    assert again.job.state == "committed"


def test_bulk_load_errors(client: Client, ns: str, tmp_path: Path) -> None:
    with pytest.raises(InvalidRequestError, match="does not exist"):
        client.bulk_load(ns, "t", str(tmp_path / "missing.parquet"))
    with pytest.raises(JobNotFoundError):
        client.job("nope")


def test_async_bulk_load(shared_server: ServerProcess, tmp_path: Path) -> None:
    src = tmp_path / "in.parquet"
    pq.write_table(pa.table({"pk": ["a"], "sk": [""], "value": ["1"]}), src)

    async def go() -> None:
        async with AsyncClient(shared_server.url) as c:
            await c.put_namespace("asyncbulk")
            await c.put_table("asyncbulk", "t")
            job = await c.bulk_load("asyncbulk", "t", str(src), mode="merge")
            job = await c.wait_job(job.id, 60, poll_s=0.02)
            assert job.state == "committed"
            assert [j.id for j in await c.jobs("asyncbulk")] == [job.id]
            assert (await c.cancel_job(job.id)).state == "committed"
            assert [x.value for x in await c.get("asyncbulk", "t", "a")] == [b"1"]

    asyncio.run(go())
