"""``MusselJobTrigger``: waits, in Airflow's triggerer, for a Mussel job to end.

It polls ``GET /v1/jobs/{id}`` with ``mussel.AsyncClient`` every ``poll_interval``
seconds and fires one event, a dict made by ``job_event`` (see ``_jobs.py``):
``{"job_id", "state", "error"}`` where ``state`` is ``committed``, ``failed``,
``cancelled``, ``timeout`` (still running after ``timeout`` seconds) or ``error`` (the
server could not be asked: unreachable, unknown job, bad token, no such connection;
``error`` says why).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from airflow.sdk.exceptions import AirflowNotFoundException
from airflow.triggers.base import BaseTrigger, TriggerEvent

from mussel.errors import MusselError
from mussel.integrations.airflow._connection import DEFAULT_CONN_ID
from mussel.integrations.airflow._jobs import job_event
from mussel.integrations.airflow.hooks import MusselHook


class MusselJobTrigger(BaseTrigger):
    """Fires when job ``job_id`` is final, or ``timeout`` seconds (None: never) passed."""

    def __init__(
        self,
        job_id: str,
        mussel_conn_id: str = DEFAULT_CONN_ID,
        poll_interval: float = 5.0,
        timeout: float | None = None,
    ) -> None:
        super().__init__()
        self.job_id = job_id
        self.mussel_conn_id = mussel_conn_id
        self.poll_interval = poll_interval
        self.timeout = timeout

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "job_id": self.job_id,
                "mussel_conn_id": self.mussel_conn_id,
                "poll_interval": self.poll_interval,
                "timeout": self.timeout,
            },
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        hook = MusselHook(self.mussel_conn_id)
        try:
            async with await hook.aget_conn() as client:
                job = await client.wait_job(self.job_id, self.timeout, poll_s=self.poll_interval)
        except TimeoutError:
            yield TriggerEvent(
                {
                    "job_id": self.job_id,
                    "state": "timeout",
                    "error": f"job {self.job_id} did not end within {self.timeout:g}s",
                }
            )
            return
        except (MusselError, ValueError, AirflowNotFoundException) as e:
            yield TriggerEvent({"job_id": self.job_id, "state": "error", "error": str(e)})
            return
        yield TriggerEvent(job_event(job))
