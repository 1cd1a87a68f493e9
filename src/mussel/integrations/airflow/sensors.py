"""``MusselJobSensor``: waits until a Mussel job (e.g. a bulk load submitted with
``wait_for_completion=False``) is final.

It succeeds when the job is ``committed`` (its XCom ``return_value`` is the job id) and
fails, without retrying (``AirflowFailException``), when the job ended ``failed`` or
``cancelled``, with the job's error code and message. An unknown job id or an
unreachable server fails the poke like any other error (so the task's retries apply).
``poke_interval``, ``timeout`` and ``mode`` (``poke`` or ``reschedule``) are
``BaseSensorOperator``'s. ``deferrable=True`` (the default when Airflow's ``[operators]
default_deferrable`` is true) waits in the triggerer instead
(``MusselJobTrigger``, polling every ``poke_interval`` seconds, for at most ``timeout``)
from the start, without a first poke in the worker.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow.sdk import BaseSensorOperator, PokeReturnValue
from airflow.sdk.configuration import conf
from airflow.sdk.exceptions import AirflowException, AirflowFailException, AirflowSensorTimeout

from mussel.client import JobDescription
from mussel.errors import MusselError
from mussel.integrations.airflow._connection import DEFAULT_CONN_ID
from mussel.integrations.airflow._jobs import FINAL_BAD, job_failure
from mussel.integrations.airflow.hooks import MusselHook
from mussel.integrations.airflow.triggers import MusselJobTrigger


class MusselJobSensor(BaseSensorOperator):
    """Waits for job ``job_id`` (templated) on the ``mussel_conn_id`` server."""

    template_fields: Sequence[str] = ("job_id",)

    def __init__(
        self,
        *,
        job_id: str,
        mussel_conn_id: str = DEFAULT_CONN_ID,
        deferrable: bool | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.job_id = job_id
        self.mussel_conn_id = mussel_conn_id
        self.deferrable = (
            conf.getboolean("operators", "default_deferrable", fallback=False)
            if deferrable is None
            else deferrable
        )

    def execute(self, context: Any) -> Any:
        if not self.deferrable:
            return super().execute(context)
        self.defer(
            trigger=MusselJobTrigger(
                job_id=self.job_id,
                mussel_conn_id=self.mussel_conn_id,
                poll_interval=float(self.poke_interval),
                timeout=float(self.timeout),
            ),
            method_name="execute_complete",
        )

    def poke(self, context: Any) -> bool | PokeReturnValue:
        try:
            with MusselHook(self.mussel_conn_id).get_conn() as client:
                job = client.job(self.job_id)
        except MusselError as e:
            raise AirflowException(f"could not read mussel job {self.job_id}: {e}") from e
        return self._outcome(job)

    def _outcome(self, job: JobDescription) -> bool | PokeReturnValue:
        if job.state in FINAL_BAD:
            raise AirflowFailException(job_failure(job))
        self.log.info("Mussel job %s is %s", job.id, job.state)
        if job.state == "committed":
            return PokeReturnValue(is_done=True, xcom_value=job.id)
        return False

    def execute_complete(self, context: Any, event: dict[str, Any]) -> str:
        """Resumes a deferred sensor with ``MusselJobTrigger``'s event."""
        state = event["state"]
        if state == "committed":
            return str(event["job_id"])
        if state in FINAL_BAD:
            raise AirflowFailException(event["error"])
        if state == "timeout":
            raise AirflowSensorTimeout(event["error"])
        raise AirflowException(event["error"])
