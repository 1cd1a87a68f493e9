"""Fixtures of the Airflow provider's tests: Airflow 3 with a fresh SQLite database in a
temporary ``AIRFLOW_HOME``, and a runner of DAGs (``run_dags.py``) in a subprocess.

Airflow is never imported by the pytest process: ``run_dags.py`` runs in a child with
the environment ``airflow_env`` makes, and the tests read what it prints.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).parent
REPO = HERE.parents[1]
EXAMPLE = REPO / "examples" / "airflow" / "mussel_bulk_load_dag.py"
TEST_DAGS = HERE / "dags" / "mussel_test_dags.py"


@dataclass
class DagRunOutcome:
    """One ``dag.test()``: the run's state, its tasks' states, its XComs
    (``"task_id.key": value``) and everything Airflow printed meanwhile."""

    state: str
    tasks: dict[str, str] = field(default_factory=dict)
    xcom: dict[str, Any] = field(default_factory=dict)
    log: str = ""
    raw: dict[str, Any] = field(default_factory=dict)


@dataclass
class AirflowRunner:
    """Runs plans of DAG runs with ``run_dags.py`` in this environment."""

    env: dict[str, str]
    dags_folder: Path
    connections: dict[str, dict[str, Any]] = field(default_factory=dict)
    test_connections: dict[str, dict[str, Any]] = field(default_factory=dict)

    def run(
        self, runs: list[dict[str, Any]], timeout: float = 240.0
    ) -> tuple[dict[str, Any], dict[str, DagRunOutcome]]:
        """Runs ``runs`` (``name``, ``file``, ``dag_id``, ``conf``) in one process;
        returns what ``ProvidersManager`` found (with ``connection_tests``: what testing
        each of ``test_connections`` answered) and each run's outcome by name."""
        plan = self.dags_folder.parent / "plan.json"
        plan.write_text(
            json.dumps(
                {
                    "connections": self.connections,
                    "test_connections": self.test_connections,
                    "runs": runs,
                }
            )
        )
        proc = subprocess.run(
            [sys.executable, str(HERE / "run_dags.py"), str(plan)],
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            timeout=timeout,
            check=False,
            text=True,
        )
        return parse(proc.stdout, proc.returncode)


def parse(out: str, code: int) -> tuple[dict[str, Any], dict[str, DagRunOutcome]]:
    providers: dict[str, Any] | None = None
    outcomes: dict[str, DagRunOutcome] = {}
    name, lines = None, []
    for line in out.splitlines():
        if line.startswith("PROVIDERS "):
            providers = json.loads(line.removeprefix("PROVIDERS "))
        elif line.startswith("CONNECTION-TESTS ") and providers is not None:
            providers["connection_tests"] = json.loads(line.removeprefix("CONNECTION-TESTS "))
        elif line.startswith("::run-begin "):
            name, lines = line.removeprefix("::run-begin "), []
        elif line.startswith("::run-end "):
            ended, _, payload = line.removeprefix("::run-end ").partition(" ")
            raw = json.loads(payload)
            outcomes[ended] = DagRunOutcome(
                raw["state"], raw.get("tasks", {}), raw.get("xcom", {}), "\n".join(lines), raw
            )
            name = None
        elif name is not None:
            lines.append(line)
    if providers is None or code != 0:
        raise AssertionError(f"run_dags.py exited {code}:\n{out[-20000:]}")
    return providers, outcomes


def _clean_env() -> dict[str, str]:
    return {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AIRFLOW__", "AIRFLOW_CONN_", "AIRFLOW_VAR_", "AIRFLOW_HOME"))
    }


@pytest.fixture(scope="session")
def airflow_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """An environment for Airflow: its home and SQLite database in a temporary directory
    (migrated once per session), no example DAGs, a DAG folder holding the example DAG
    and the tests' DAGs, and ``mussel-kv`` importable."""
    if importlib.util.find_spec("airflow") is None:
        pytest.fail("Apache Airflow is not installed: pip install -e '.[test]' (or '.[airflow]')")
    home = tmp_path_factory.mktemp("airflow")
    dags = home / "dags"
    dags.mkdir()
    shutil.copy(EXAMPLE, dags)
    shutil.copy(TEST_DAGS, dags)
    env = _clean_env()
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
            "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
            "AIRFLOW__LOGGING__COLORED_CONSOLE_LOG": "False",
            "PYTHONUNBUFFERED": "1",
            "PYTHONPATH": os.pathsep.join(
                p for p in (str(REPO / "src"), os.environ.get("PYTHONPATH", "")) if p
            ),
        }
    )
    proc = subprocess.run(
        [sys.executable, "-m", "airflow", "db", "migrate"],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    if proc.returncode != 0:
        raise AssertionError(f"airflow db migrate failed:\n{proc.stdout}\n{proc.stderr}")
    return env


def mussel_connection(url: str, token: str | None = None) -> dict[str, Any]:
    """The fields of a ``mussel`` connection to ``url`` (``http://host:port``)."""
    scheme, _, rest = url.partition("://")
    host, _, port = rest.partition(":")
    conn: dict[str, Any] = {"conn_type": "mussel", "host": host, "port": int(port)}
    conn["schema"] = scheme
    if token is not None:
        conn["password"] = token
    return conn


def runner_for(env: Mapping[str, str], url: str) -> AirflowRunner:
    """A runner with two connections to the server at ``url``: ``mussel_default``
    stored in Airflow's database, ``mussel_env`` in an environment variable."""
    env = dict(env)
    env["AIRFLOW_CONN_MUSSEL_ENV"] = json.dumps(mussel_connection(url))
    return AirflowRunner(
        env,
        Path(env["AIRFLOW__CORE__DAGS_FOLDER"]),
        {"mussel_default": mussel_connection(url)},
    )
