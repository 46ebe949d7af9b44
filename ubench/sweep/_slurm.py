"""The Slurm job of a sweep (imported only with ``--on slurm``: it needs submitit).

A :class:`submitit.helpers.Checkpointable`: when Slurm pre-empts the job or its time limit
nears, submitit requeues the same call, which resumes the run from its last checkpoint.
"""

from __future__ import annotations

from typing import Any

import submitit


class SlurmRun(submitit.helpers.Checkpointable):
    """Calls the single-run function on one job (given as a dict) and returns its outcome."""

    def __call__(self, job: dict[str, Any]) -> dict[str, Any]:
        from ubench.sweep.worker import Job

        return Job.from_dict(job).run().to_dict()
