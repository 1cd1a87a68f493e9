"""Bulk load (SPEC §2): Parquet from any fsspec URL into live tables.

``JobManager(store).submit(namespace, table, url, mode=..., layout=...)`` starts a
job; see ``jobs.py`` for states and recovery, ``loader.py`` for the pipeline and
docs/bulkload.md for the design (epochs, commit, crash behaviour, formats).
"""

from mussel.bulkload.jobs import JobError, JobInfo, JobManager, JobProgress, JobSpec
from mussel.bulkload.layouts import LAYOUTS
from mussel.bulkload.modes import MODES

__all__ = ["LAYOUTS", "MODES", "JobError", "JobInfo", "JobManager", "JobProgress", "JobSpec"]
