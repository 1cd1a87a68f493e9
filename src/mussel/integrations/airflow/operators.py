"""``MusselBulkLoadOperator``: one bulk load of Parquet into a Mussel table (SPEC §2).

The task submits the load (``POST .../bulkloads``), pushes the job id to XCom under
``job_id`` at once, then waits for the job to end:

- ``deferrable=False`` (the default unless Airflow's ``[operators]
  default_deferrable`` is true): polls ``GET /v1/jobs/{id}`` every ``poll_interval``
  seconds inside the worker slot (``mussel.Client``'s ``BulkLoad.wait``).
- ``deferrable=True``: frees the worker slot and hands the waiting to
  ``MusselJobTrigger`` in the triggerer (``mussel.AsyncClient``, same polling), then
  resumes in ``execute_complete``. It needs a running triggerer, as every deferrable
  operator does.
- ``wait_for_completion=False``: returns right after submitting (wait with
  ``MusselJobSensor``).

It succeeds with the job ``committed`` and returns the job id (the ``return_value``
XCom). A job that ends ``failed`` or ``cancelled`` fails the task with an
``AirflowException`` carrying the job's error code and message; so does a load the
server refuses outright (e.g. a source that does not exist) and a job still running
after ``timeout`` seconds (it is then left running on the server). A retry submits a new
job unless ``job_id`` is set: a fixed ``job_id`` makes the submission idempotent (the
server answers with the existing job), so a retry after a failed job sees it failed
again.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from airflow.sdk import BaseOperator
from airflow.sdk.configuration import conf
from airflow.sdk.exceptions import AirflowException

from mussel.client import JobDescription
from mussel.errors import MusselError
from mussel.integrations.airflow._connection import DEFAULT_CONN_ID
from mussel.integrations.airflow._jobs import job_failure
from mussel.integrations.airflow.hooks import MusselHook
from mussel.integrations.airflow.triggers import MusselJobTrigger

MODES = ("merge", "replace", "insert_ignore")
LAYOUTS = ("cells", "wide")


class MusselBulkLoadOperator(BaseOperator):
    """Bulk-load the Parquet at ``source`` (a URL the *server* can read: ``file://`` or a
    path on its machine, ``s3://``, any fsspec URL; a file, a directory or a glob) into
    ``namespace``/``table``.

    ``mode`` is ``merge``, ``replace`` or ``insert_ignore``; ``layout`` ``cells`` or
    ``wide``; ``columns`` renames the columns the layout reads (e.g. ``{"pk": "user_id"}``);
    ``ts`` is the job's timestamp in microseconds (default: its creation time);
    ``job_id`` names the job (see the module docstring on retries); ``cancel_on_kill``
    cancels the job when Airflow kills the waiting task. ``namespace``,
    ``table``, ``source``, ``mode``, ``layout``, ``columns``, ``ts`` and ``job_id`` are
    templated. ``timeout`` (seconds, None: no limit) bounds the wait.
    """

    template_fields: Sequence[str] = (
        "namespace",
        "table",
        "source",
        "mode",
        "layout",
        "columns",
        "ts",
        "job_id",
    )
    ui_color = "#7fb3d5"

    def __init__(
        self,
        *,
        namespace: str,
        table: str,
        source: str,
        mode: str = "merge",
        layout: str = "cells",
        columns: Mapping[str, str] | None = None,
        ts: int | str | None = None,
        job_id: str | None = None,
        mussel_conn_id: str = DEFAULT_CONN_ID,
        wait_for_completion: bool = True,
        deferrable: bool | None = None,
        poll_interval: float = 5.0,
        timeout: float | None = None,
        cancel_on_kill: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.namespace = namespace
        self.table = table
        self.source = source
        self.mode = mode
        self.layout = layout
        self.columns = columns
        self.ts = ts
        self.job_id = job_id
        self.mussel_conn_id = mussel_conn_id
        self.wait_for_completion = wait_for_completion
        self.deferrable = (
            conf.getboolean("operators", "default_deferrable", fallback=False)
            if deferrable is None
            else deferrable
        )
        self.poll_interval = poll_interval
        self.timeout = timeout
        self.cancel_on_kill = cancel_on_kill
        self._submitted: str | None = None

    def _check(self) -> int | None:
        """Validate the rendered arguments; returns ``ts`` as an int (or None)."""
        if self.mode not in MODES:
            raise AirflowException(f"mode must be one of {', '.join(MODES)}, not {self.mode!r}")
        if self.layout not in LAYOUTS:
            raise AirflowException(f"layout must be cells or wide, not {self.layout!r}")
        if self.columns is not None and not (
            isinstance(self.columns, Mapping)
            and all(isinstance(k, str) and isinstance(v, str) for k, v in self.columns.items())
        ):
            raise AirflowException(
                f"columns must map roles (pk, sk, value, ts) to column names, not {self.columns!r}"
            )
        if self.ts is None or self.ts == "":
            return None
        try:
            return int(self.ts)
        except (TypeError, ValueError):
            raise AirflowException(
                f"ts must be an integer (microseconds), not {self.ts!r}"
            ) from None

    def execute(self, context: Any) -> str:
        ts = self._check()
        hook = MusselHook(self.mussel_conn_id)
        with hook.get_conn() as client:
            try:
                handle = client.bulk_load(
                    self.namespace,
                    self.table,
                    self.source,
                    mode=self.mode,
                    layout=self.layout,
                    columns=self.columns,
                    ts=ts,
                    job_id=self.job_id,
                )
            except MusselError as e:
                raise AirflowException(f"mussel refused the bulk load: {e}") from e
            job = handle.job
            self._submitted = job.id
            context["ti"].xcom_push(key="job_id", value=job.id)
            self.log.info(
                "Submitted mussel job %s: %s into %s/%s (mode %s)",
                job.id,
                self.source,
                self.namespace,
                self.table,
                self.mode,
            )
            if not self.wait_for_completion:
                return job.id
            if self.deferrable:
                self.defer(
                    trigger=MusselJobTrigger(
                        job_id=job.id,
                        mussel_conn_id=self.mussel_conn_id,
                        poll_interval=self.poll_interval,
                        timeout=self.timeout,
                    ),
                    method_name="execute_complete",
                )
            try:
                job = handle.wait(self.timeout, poll_s=self.poll_interval, on_progress=self._log)
            except TimeoutError as e:
                raise AirflowException(str(e)) from e
            except MusselError as e:
                raise AirflowException(f"could not follow mussel job {job.id}: {e}") from e
        return self._finish(job)

    def on_kill(self) -> None:
        """Airflow kills the task (marked failed by hand, ``execution_timeout``) while it
        waits in its worker slot: cancel the job, unless ``cancel_on_kill=False``. A
        deferred wait is not covered: Airflow does not call ``on_kill`` for triggers."""
        if not self.cancel_on_kill or self._submitted is None:
            return
        try:
            with MusselHook(self.mussel_conn_id).get_conn() as client:
                job = client.cancel_job(self._submitted)
        except MusselError as e:
            self.log.warning("Could not cancel mussel job %s: %s", self._submitted, e)
            return
        self.log.info("Asked mussel to cancel job %s (now %s)", job.id, job.state)

    def execute_complete(self, context: Any, event: dict[str, Any]) -> str:
        """Resumes a deferred task with ``MusselJobTrigger``'s event."""
        if event["state"] != "committed":
            raise AirflowException(event["error"])
        self.log.info("Mussel job %s committed (%s rows)", event["job_id"], event.get("rows"))
        return str(event["job_id"])

    def _finish(self, job: JobDescription) -> str:
        if job.state != "committed":
            raise AirflowException(job_failure(job))
        self.log.info("Mussel job %s committed (%s rows)", job.id, job.progress.rows)
        return job.id

    def _log(self, job: JobDescription) -> None:
        p = job.progress
        self.log.info(
            "Mussel job %s: %s, %s %d rows (%.0f%%)",
            job.id,
            job.state,
            p.phase or "-",
            p.rows,
            100 * p.fraction,
        )
