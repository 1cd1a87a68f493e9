"""An s3:// source against moto's S3 server on loopback, started and stopped here."""

from __future__ import annotations

import io
import socket
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest

from mussel.bulkload import JobManager
from mussel.engine import Store
from mussel.errors import InvalidRequestError
from tests.unit.bulkload.conftest import T0, content, load

moto_server = pytest.importorskip("moto.server")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    port = _free_port()
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture
def bucket(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> pafs.S3FileSystem:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    fs = pafs.S3FileSystem(
        access_key="test",
        secret_key="test",
        endpoint_override=s3_endpoint,
        scheme="http",
        region="us-east-1",
        allow_bucket_creation=True,
    )
    fs.create_dir("exports")
    return fs


def _put(fs: pafs.S3FileSystem, path: str, table: pa.Table) -> None:
    buf = io.BytesIO()
    pq.write_table(table, buf)
    with fs.open_output_stream(path) as out:
        out.write(buf.getvalue())


def test_s3_directory_source(
    store: Store, jobs: JobManager, bucket: pafs.S3FileSystem, s3_endpoint: str
) -> None:
    _put(
        bucket,
        "exports/run1/part-00001.parquet",
        pa.table({"pk": ["b"], "sk": [""], "value": ["2"]}),
    )
    _put(
        bucket,
        "exports/run1/part-00000.parquet",
        pa.table({"pk": ["a"], "sk": [""], "value": ["1"]}),
    )
    with bucket.open_output_stream("exports/run1/_SUCCESS") as out:
        out.write(b"")
    url = f"s3://exports/run1/?endpoint_override={s3_endpoint}&scheme=http&region=us-east-1"
    job = load(jobs, url, mode="replace")
    assert job.state == "committed", job.error
    assert content(store) == [(b"a", b"", T0, b"1"), (b"b", b"", T0, b"2")]


def test_s3_missing_prefix_is_rejected(
    jobs: JobManager, bucket: pafs.S3FileSystem, s3_endpoint: str, tmp_path: Path
) -> None:
    url = f"s3://exports/nothing-here/?endpoint_override={s3_endpoint}&scheme=http"
    with pytest.raises(InvalidRequestError, match=r"does not exist|no data files"):
        jobs.submit("ns", "t", url)
