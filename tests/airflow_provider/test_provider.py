"""The Airflow provider against real Apache Airflow 3 (``dag.test()``) and a real
``mussel serve``: the example DAGs and the tests' DAGs, loading good and broken files.

All DAG runs of the module happen in one Airflow process (``outcomes``), started once;
each test reads its own run's outcome and checks the server's side with the client.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mussel import Client
from tests.airflow_provider.conftest import DagRunOutcome, mussel_connection, runner_for
from tests.conftest import ServerProcess

pytestmark = pytest.mark.slow

EXAMPLE = "mussel_bulk_load_dag.py"
TESTS = "mussel_test_dags.py"


@dataclass
class Files:
    good: Path  # a, x = 1; b, y = 2
    bad_row: Path  # Parquet whose row 1 has an empty pk: the job fails
    not_parquet: Path  # the server refuses it at submission
    wide: Path  # user_id, email, name: the wide layout


@dataclass
class World:
    providers: dict[str, Any]
    outcomes: dict[str, DagRunOutcome]
    files: Files
    client: Client


PREMADE_VERSIONS = 3

# name: (DAG file, DAG id, which file, mode)
RUNS: dict[str, tuple[str, str, str, str]] = {
    "deferred_ok": (EXAMPLE, "mussel_bulk_load", "good", "replace"),
    "deferred_bad_row": (EXAMPLE, "mussel_bulk_load", "bad_row", "replace"),
    "deferred_not_parquet": (EXAMPLE, "mussel_bulk_load", "not_parquet", "replace"),
    "sensor_ok": (EXAMPLE, "mussel_bulk_load_with_sensor", "good", "merge"),
    "sensor_bad_row": (EXAMPLE, "mussel_bulk_load_with_sensor", "bad_row", "merge"),
    "poll_ok": (TESTS, "mussel_poll_load", "good", "insert_ignore"),
    "poll_bad_row": (TESTS, "mussel_poll_load", "bad_row", "merge"),
    "poll_bad_mode": (TESTS, "mussel_poll_load", "good", "upsert"),
    "wide_ok": (TESTS, "mussel_wide_load", "wide", "merge"),
    "sensor_unknown_job": (TESTS, "mussel_sensor_unknown_job", "good", "merge"),
    "deferred_sensor_ok": (TESTS, "mussel_deferred_sensor", "good", "merge"),
    "deferred_sensor_bad_row": (TESTS, "mussel_deferred_sensor", "bad_row", "merge"),
}


@pytest.fixture(scope="module")
def world(
    shared_server: ServerProcess,
    airflow_env: dict[str, str],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[World]:
    tmp = tmp_path_factory.mktemp("airflow-files")
    files = Files(
        tmp / "good.parquet", tmp / "bad_row.parquet", tmp / "not_parquet.parquet", tmp / "w.pq"
    )
    pq.write_table(
        pa.table({"user_id": ["u1", "u2"], "email": ["a@x", "b@x"], "name": ["Ada", "Bo"]}),
        files.wide,
    )
    pq.write_table(pa.table({"pk": ["a", "b"], "sk": ["x", "y"], "value": ["1", "2"]}), files.good)
    pq.write_table(
        pa.table({"pk": ["a", ""], "sk": ["x", "y"], "value": ["1", "2"]}), files.bad_row
    )
    files.not_parquet.write_text("pk,sk,value\na,x,1\n")
    runner = runner_for(airflow_env, shared_server.url)
    runner.test_connections = {
        "mussel_ok": mussel_connection(shared_server.url),
        "mussel_refused": mussel_connection("http://127.0.0.1:1"),
        "mussel_ftp": {**mussel_connection(shared_server.url), "schema": "ftp"},
    }
    dags = runner.dags_folder
    with Client(shared_server.url) as client:
        runs = []
        for name, (dag_file, dag_id, which, mode) in RUNS.items():
            conf = {"namespace": name, "table": "t", "source": str(getattr(files, which))}
            conf["mode"] = mode
            conf["pk_column"] = "user_id"
            conf["job_id"] = "no-such-job"
            runs.append(
                {"name": name, "file": str(dags / dag_file), "dag_id": dag_id, "conf": conf}
            )
            if name == "deferred_not_parquet":
                continue  # the example DAG's first task makes the namespace and the table
            # Every other run has its own namespace, made here with cells that predate
            # it (the example DAG's first task leaves an existing table as it is).
            client.put_namespace(name)
            client.put_table(name, "t", max_versions=PREMADE_VERSIONS)
            client.put(name, "t", "a", "x", b"before")
            client.put(name, "t", "old", "", b"before")
        providers, outcomes = runner.run(runs)
        yield World(providers, outcomes, files, client)


def outcome(world: World, name: str) -> DagRunOutcome:
    got = world.outcomes.get(name)
    assert got is not None, f"no outcome for {name}: {sorted(world.outcomes)}"
    assert got.state != "crashed", got.raw.get("traceback")
    return got


def values(client: Client, ns: str) -> dict[tuple[bytes, bytes], bytes]:
    return {(c.pk, c.sk): c.value for c in client.scan(ns, "t").cells}


def assert_failed_with_job_error(world: World, name: str, task: str, submit: str) -> None:
    """The run failed at ``task``; the job ``submit`` pushed is failed on the server and
    its error message is in the task's log; the table is untouched."""
    run = outcome(world, name)
    assert run.state == "failed", run.log[-3000:]
    assert run.tasks[task] == "failed"
    job = world.client.job(run.xcom[f"{submit}.job_id"])
    assert job.state == "failed"
    assert job.error is not None and job.error.code == "invalid_request"
    assert "row 1: the pk is empty" in job.error.message
    assert job.error.message in run.log
    assert f"mussel job {job.id} failed (invalid_request)" in run.log
    assert values(world.client, name) == {(b"a", b"x"): b"before", (b"old", b""): b"before"}


def test_airflow_lists_the_provider(world: World) -> None:
    found = world.providers
    assert found["provider"] is not None, (
        "ProvidersManager did not find mussel-kv: the entry point is in the installed "
        "package's metadata, so reinstall it after pyproject.toml changed (pip install -e .)"
    )
    assert found["provider"]["package-name"] == "mussel-kv"
    assert found["provider"]["version"] == "0.1.0"
    hook = found["hook"]
    assert hook["hook_class_name"] == "mussel.integrations.airflow.hooks.MusselHook"
    assert hook["connection_id_attribute_name"] == "mussel_conn_id"
    assert hook["hook_name"] == "Mussel" and hook["package_name"] == "mussel-kv"
    assert hook["connection_testable"] is True
    assert set(found["field_behaviour"]["hidden_fields"]) == {"login", "extra"}
    assert found["field_behaviour"]["relabeling"]["password"] == "Token"
    assert found["triggers"] == ["mussel.integrations.airflow.triggers"]


def test_the_connection_forms_test_button(world: World) -> None:
    answers = world.providers["connection_tests"]
    assert answers["mussel_ok"] == [True, f"Mussel at {world.client.base_url} answers: ok"]
    ok, message = answers["mussel_refused"]
    assert not ok and "cannot reach the server" in message
    ok, message = answers["mussel_ftp"]
    assert not ok
    assert message == (
        "connection 'mussel_ftp': the mussel connection's schema must be http or https, not 'ftp'"
    )


def test_deferred_replace_load_succeeds_and_the_data_is_readable(world: World) -> None:
    run = outcome(world, "deferred_ok")
    assert run.state == "success", run.log[-3000:]
    assert run.tasks == {"ensure_table": "success", "load": "success"}
    job_id = run.xcom["load.job_id"]
    assert run.xcom["load.return_value"] == job_id
    assert "running trigger in line" in run.log  # it did defer to MusselJobTrigger
    job = world.client.job(job_id)
    assert job.state == "committed" and job.mode == "replace" and job.progress.rows == 2
    # replace: the table is now exactly the file (the older cells are gone)
    assert values(world.client, "deferred_ok") == {(b"a", b"x"): b"1", (b"b", b"y"): b"2"}
    assert [c.value for c in world.client.get("deferred_ok", "t", "b", "y")] == [b"2"]
    assert world.client.table("deferred_ok", "t").max_versions == PREMADE_VERSIONS


def test_deferred_failed_job_fails_the_task_with_its_error(world: World) -> None:
    assert_failed_with_job_error(world, "deferred_bad_row", "load", "load")
    assert "running trigger in line" in outcome(world, "deferred_bad_row").log


def test_unreadable_file_fails_the_task_with_the_server_error(world: World) -> None:
    run = outcome(world, "deferred_not_parquet")
    assert run.state == "failed" and run.tasks["load"] == "failed"
    assert "load.job_id" not in run.xcom  # refused before any job existed
    assert "mussel refused the bulk load" in run.log
    assert f"{world.files.not_parquet} is not a readable Parquet file" in run.log
    assert world.client.jobs("deferred_not_parquet") == []
    # the example DAG's first task made the namespace and the table
    assert world.client.table("deferred_not_parquet", "t").max_versions == 1


def test_submit_then_sensor_succeeds(world: World) -> None:
    run = outcome(world, "sensor_ok")
    assert run.state == "success", run.log[-3000:]
    assert run.tasks == {"ensure_table": "success", "submit": "success", "wait": "success"}
    assert run.xcom["wait.return_value"] == run.xcom["submit.return_value"]
    assert world.client.job(run.xcom["submit.job_id"]).state == "committed"
    # merge: the file's cells win over older ones; the rest stays
    assert values(world.client, "sensor_ok") == {
        (b"a", b"x"): b"1",
        (b"b", b"y"): b"2",
        (b"old", b""): b"before",
    }


def test_sensor_fails_on_a_failed_job(world: World) -> None:
    assert_failed_with_job_error(world, "sensor_bad_row", "wait", "submit")
    assert outcome(world, "sensor_bad_row").tasks["submit"] == "success"


def test_deferred_sensor_succeeds(world: World) -> None:
    run = outcome(world, "deferred_sensor_ok")
    assert run.state == "success", run.log[-3000:]
    assert "running trigger in line" in run.log
    assert run.xcom["wait.return_value"] == run.xcom["submit.job_id"]
    assert world.client.job(run.xcom["submit.job_id"]).state == "committed"


def test_deferred_sensor_fails_on_a_failed_job(world: World) -> None:
    assert_failed_with_job_error(world, "deferred_sensor_bad_row", "wait", "submit")
    assert "running trigger in line" in outcome(world, "deferred_sensor_bad_row").log


def test_polling_insert_ignore_load_succeeds(world: World) -> None:
    run = outcome(world, "poll_ok")
    assert run.state == "success", run.log[-3000:]
    assert "running trigger in line" not in run.log
    # insert_ignore: (a, x) had a value and keeps it; (b, y) is new
    assert values(world.client, "poll_ok") == {
        (b"a", b"x"): b"before",
        (b"b", b"y"): b"2",
        (b"old", b""): b"before",
    }


def test_wide_layout_with_renamed_pk_column_and_fixed_ts(world: World) -> None:
    run = outcome(world, "wide_ok")
    assert run.state == "success", run.log[-3000:]
    job = world.client.job(run.xcom["load.job_id"])
    assert job.layout == "wide" and job.ts == 1_700_000_000_000_000
    assert values(world.client, "wide_ok") == {
        (b"a", b"x"): b"before",
        (b"old", b""): b"before",
        (b"u1", b"email"): b"a@x",
        (b"u1", b"name"): b"Ada",
        (b"u2", b"email"): b"b@x",
        (b"u2", b"name"): b"Bo",
    }
    assert world.client.get("wide_ok", "t", "u2", "name")[0].ts == 1_700_000_000_000_000


def test_polling_failed_job_fails_the_task_with_its_error(world: World) -> None:
    assert_failed_with_job_error(world, "poll_bad_row", "load", "load")


def test_a_bad_mode_fails_the_task_before_submitting(world: World) -> None:
    run = outcome(world, "poll_bad_mode")
    assert run.state == "failed"
    assert "mode must be one of merge, replace, insert_ignore, not 'upsert'" in run.log
    assert world.client.jobs("poll_bad_mode") == []


def test_sensors_fail_on_an_unknown_job(world: World) -> None:
    run = outcome(world, "sensor_unknown_job")
    assert run.state == "failed"
    assert run.tasks == {"poke": "failed", "deferred": "failed"}
    missing = "job 'no-such-job' does not exist"
    # the poke fails with the server's error...
    assert f"could not read mussel job no-such-job: {missing}" in run.log
    # ...and so does the deferred sensor, from its trigger's event
    assert "running trigger in line" in run.log
    assert f"AirflowException: {missing}" in run.log
