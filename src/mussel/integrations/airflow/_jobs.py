"""What the operator, the sensor and the trigger share about a job's outcome, without
Airflow: the event a trigger fires and the message of a job that did not commit."""

from __future__ import annotations

from typing import Any

from mussel.client import JobDescription

FINAL_BAD = ("failed", "cancelled")


def job_failure(job: JobDescription) -> str:
    """The message of a job that ended ``failed`` or ``cancelled``: its id, its state and
    the server's error code and message (SPEC §5), e.g. ``mussel job j1 failed
    (invalid_request): not a Parquet file``."""
    text = f"mussel job {job.id} {job.state}"
    if job.error is not None:
        text += f" ({job.error.code}): {job.error.message}"
    return text


def job_event(job: JobDescription) -> dict[str, Any]:
    """The payload of a trigger's event for a job that is final (JSON-safe)."""
    return {
        "job_id": job.id,
        "state": job.state,
        "error": job_failure(job) if job.state in FINAL_BAD else None,
        "rows": job.progress.rows,
    }
