"""Run DAGs with ``dag.test()`` in this process and print what happened.

``python run_dags.py PLAN.json``, where the plan is ``{"connections": {conn_id:
fields}, "test_connections": {conn_id: fields}, "runs": [{"name", "file", "dag_id",
"conf"}, ...]}``. It stores the connections in Airflow's database, then prints
``PROVIDERS {json}`` (what Airflow's ``ProvidersManager`` found of the ``mussel-kv``
provider), ``CONNECTION-TESTS {json}`` (what testing each of ``test_connections``
answers, as the connection form's "Test" button does), then for each run
``::run-begin NAME``, Airflow's own log of the run (task logs included), and
``::run-end NAME {json}`` with the run's state, each task's state and each task's XComs.

The environment names Airflow's home, database and DAG folder (``conftest.py``). The
tests run this in a subprocess so that Airflow's settings and logging never touch the
pytest process, and all runs in one process so that Airflow starts once.
"""

from __future__ import annotations

import importlib.util
import json
import sys
import traceback
from typing import Any


def providers() -> dict[str, Any]:
    from airflow.providers_manager import ProvidersManager

    pm = ProvidersManager()
    info = pm.providers.get("mussel-kv")
    hook = pm.hooks.get("mussel")
    return {
        "provider": None if info is None else {"version": info.version, **info.data},
        "hook": None if hook is None else hook._asdict(),
        "field_behaviour": pm.field_behaviours.get("mussel"),
        "triggers": [t.trigger_class_name for t in pm.trigger if t.package_name == "mussel-kv"],
    }


def run(path: str, dag_id: str, conf: dict[str, Any]) -> dict[str, Any]:
    from airflow.models.xcom import XComModel
    from airflow.sdk import DAG
    from airflow.utils.session import create_session

    spec = importlib.util.spec_from_file_location(f"dag_{dag_id}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    [dag] = [d for d in vars(module).values() if isinstance(d, DAG) and d.dag_id == dag_id]
    dag_run = dag.test(run_conf=conf)
    with create_session() as session:
        tis = dag_run.get_task_instances(session=session)
        xcoms = session.query(XComModel).filter(XComModel.run_id == dag_run.run_id).all()
        return {
            "state": str(dag_run.state),
            "tasks": {ti.task_id: str(ti.state) for ti in tis},
            "xcom": {f"{x.task_id}.{x.key}": XComModel.deserialize_value(x) for x in xcoms},
        }


def test_connections(connections: dict[str, dict[str, Any]]) -> dict[str, list[Any]]:
    """What the connection form's "Test" button answers for each connection: the API
    server puts it in an ``AIRFLOW_CONN_*`` variable as a URI and calls
    ``Connection.test_connection()`` (which calls ``MusselHook.test_connection``)."""
    import os

    from airflow.models import Connection

    answers = {}
    for conn_id, fields in connections.items():
        conn = Connection(conn_id=conn_id, **fields)
        os.environ[f"AIRFLOW_CONN_{conn_id.upper()}"] = conn.get_uri()
        answers[conn_id] = list(conn.test_connection())
    return answers


def add_connections(connections: dict[str, dict[str, Any]]) -> None:
    """Store connections in Airflow's database, as the UI or the CLI would."""
    from airflow.models import Connection
    from airflow.utils.session import create_session

    with create_session() as session:
        for conn_id, fields in connections.items():
            session.query(Connection).filter(Connection.conn_id == conn_id).delete()
            session.add(Connection(conn_id=conn_id, **fields))


def main(plan_path: str) -> None:
    with open(plan_path) as f:
        plan = json.load(f)
    add_connections(plan.get("connections", {}))
    print("PROVIDERS " + json.dumps(providers(), default=str), flush=True)
    tested = test_connections(plan.get("test_connections", {}))
    print("CONNECTION-TESTS " + json.dumps(tested), flush=True)
    for item in plan["runs"]:
        print(f"::run-begin {item['name']}", flush=True)
        try:
            result = run(item["file"], item["dag_id"], item["conf"])
        except Exception:
            result = {"state": "crashed", "traceback": traceback.format_exc()}
        print(f"::run-end {item['name']} " + json.dumps(result, default=str), flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
