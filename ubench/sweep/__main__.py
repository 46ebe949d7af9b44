"""``python -m ubench.sweep JOB_JSON [PARENT_PID]``: one run of a sweep in a worker process
(what the local executor starts); see :func:`ubench.sweep.worker.main`."""

import sys

from ubench.sweep.worker import main

sys.exit(main())
