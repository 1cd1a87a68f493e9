"""DAGs of the provider's tests for what the example DAGs do not use: the operator
waiting in its worker slot (not deferred), through a connection in an environment
variable (``mussel_env``), and the sensor deferred to the triggerer."""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG

from mussel.integrations.airflow.operators import MusselBulkLoadOperator
from mussel.integrations.airflow.sensors import MusselJobSensor

with DAG(dag_id="mussel_poll_load", schedule=None, start_date=datetime(2026, 1, 1)) as poll_load:
    MusselBulkLoadOperator(
        task_id="load",
        namespace="{{ params.namespace }}",
        table="{{ params.table }}",
        source="{{ params.source }}",
        mode="{{ params.mode }}",
        mussel_conn_id="mussel_env",
        poll_interval=0.1,
        timeout=60,
    )

with DAG(
    dag_id="mussel_deferred_sensor", schedule=None, start_date=datetime(2026, 1, 1)
) as deferred_sensor:
    submit = MusselBulkLoadOperator(
        task_id="submit",
        namespace="{{ params.namespace }}",
        table="{{ params.table }}",
        source="{{ params.source }}",
        mode="{{ params.mode }}",
        wait_for_completion=False,
    )
    submit >> MusselJobSensor(
        task_id="wait", job_id=submit.output, deferrable=True, poke_interval=0.2, timeout=60
    )

with DAG(dag_id="mussel_wide_load", schedule=None, start_date=datetime(2026, 1, 1)) as wide_load:
    MusselBulkLoadOperator(
        task_id="load",
        namespace="{{ params.namespace }}",
        table="{{ params.table }}",
        source="{{ params.source }}",
        mode="{{ params.mode }}",
        layout="wide",
        columns={"pk": "{{ params.pk_column }}"},  # templated inside the mapping
        ts=1_700_000_000_000_000,
        poll_interval=0.1,
    )

with DAG(
    dag_id="mussel_sensor_unknown_job", schedule=None, start_date=datetime(2026, 1, 1)
) as sensor_unknown_job:
    MusselJobSensor(task_id="poke", job_id="{{ params.job_id }}", poke_interval=0.2, timeout=30)
    MusselJobSensor(
        task_id="deferred",
        job_id="{{ params.job_id }}",
        deferrable=True,
        poke_interval=0.2,
        timeout=30,
    )
