"""Example DAGs of the Mussel provider for Airflow 3 (``pip install 'mussel-kv[airflow]'``).

Both load a Parquet file, directory or glob into a Mussel table after making sure the
namespace and the table exist. They read the ``mussel_default`` connection, e.g.::

    export AIRFLOW_CONN_MUSSEL_DEFAULT='{"conn_type": "mussel", "host": "127.0.0.1",
                                         "port": 7070, "schema": "http"}'

and take their inputs as DAG params (``airflow dags trigger mussel_bulk_load -c
'{"source": "s3://bucket/users/2026-12-06/"}'``); ``source`` is a URL the *Mussel
server* can read.

- ``mussel_bulk_load``: ``MusselBulkLoadOperator`` submits the load and, deferred,
  waits for it in the triggerer (run ``airflow triggerer``), then fails with the job's
  error if the job failed.
- ``mussel_bulk_load_with_sensor``: the operator only submits
  (``wait_for_completion=False``); ``MusselJobSensor`` waits for the job id the
  operator returned, in ``reschedule`` mode so no worker slot is held meanwhile.
"""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG, Param, task

from mussel.errors import NamespaceNotFoundError, TableNotFoundError
from mussel.integrations.airflow.hooks import MusselHook
from mussel.integrations.airflow.operators import MusselBulkLoadOperator
from mussel.integrations.airflow.sensors import MusselJobSensor

PARAMS = {
    "namespace": Param("shop", type="string"),
    "table": Param("users", type="string"),
    "source": Param("s3://my-bucket/users/latest/", type="string"),
    "mode": Param("replace", enum=["merge", "replace", "insert_ignore"]),
}


@task
def ensure_table(namespace: str, table: str) -> None:
    """Create the namespace and the table if they do not exist (an existing table keeps
    its options); the hook gives a ``mussel.Client``."""
    with MusselHook().get_conn() as client:
        try:
            client.table(namespace, table)
        except NamespaceNotFoundError:
            client.put_namespace(namespace)
            client.put_table(namespace, table, max_versions=1)
        except TableNotFoundError:
            client.put_table(namespace, table, max_versions=1)


with DAG(
    dag_id="mussel_bulk_load",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    params=PARAMS,
    tags=["mussel"],
) as bulk_load_dag:
    load = MusselBulkLoadOperator(
        task_id="load",
        namespace="{{ params.namespace }}",
        table="{{ params.table }}",
        source="{{ params.source }}",
        mode="{{ params.mode }}",
        deferrable=True,
        poll_interval=2.0,
        timeout=3600,
    )
    ensure_table("{{ params.namespace }}", "{{ params.table }}") >> load


with DAG(
    dag_id="mussel_bulk_load_with_sensor",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    params=PARAMS,
    tags=["mussel"],
) as bulk_load_with_sensor_dag:
    submit = MusselBulkLoadOperator(
        task_id="submit",
        namespace="{{ params.namespace }}",
        table="{{ params.table }}",
        source="{{ params.source }}",
        mode="{{ params.mode }}",
        wait_for_completion=False,
    )
    wait = MusselJobSensor(
        task_id="wait",
        job_id=submit.output,
        mode="reschedule",
        poke_interval=2,
        timeout=3600,
    )
    ensure_table("{{ params.namespace }}", "{{ params.table }}") >> submit >> wait
