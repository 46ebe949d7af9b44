"""Failpoints: places where the fault suite kills the process on purpose (``kill -9``).

``UBENCH_FAILPOINT=<name>`` makes the process send itself SIGKILL when it reaches the point of
that name, exactly as a power cut or an OOM kill would stop it there; nothing else changes. Used
only by ``tests/integration/test_faults.py`` to prove that a run killed at any of these points
resumes to the same record. The points: ``step:<n>`` (after unlearning step n and its
checkpoint, if any), ``evaluate`` (when evaluation starts), ``record`` (while ``record.json`` is
written: after its temporary file, before the rename).
"""

from __future__ import annotations

import os
import signal


def failpoint(name: str) -> None:
    """Kill this process with SIGKILL if ``$UBENCH_FAILPOINT`` names this point."""
    if os.environ.get("UBENCH_FAILPOINT") == name:
        os.kill(os.getpid(), signal.SIGKILL)
