"""Where the runs of a sweep execute: a local pool, Ray, or Slurm (through submitit).

Every executor takes :class:`~ubench.sweep.worker.Job` values and calls the one single-run
function, :func:`ubench.sweep.worker.run_one`, in a process of its own for each run (a fresh
interpreter: a run's peak memory is its own and no state leaks from one run into the next), so a
record is the same wherever it was made. Ray and submitit are optional extras, imported only when
chosen.

Retries are for *dead workers* only (a process killed by a signal, a lost node, a pre-empted or
timed-out Slurm job): such a run starts again, from its last checkpoint, up to ``retries`` times.
A run that fails with an error is not retried; the next sweep skips finished runs and resumes
interrupted ones.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

from ubench.core.errors import ConfigError, MissingExtraError, Terminated
from ubench.store.layout import run_lock, sweep_dir
from ubench.sweep.worker import OUTCOME_MARK, Job, Outcome, metric_values

#: install command of each optional engine
EXTRAS = {"ray": ("ray", "pip install 'ubench[ray]'"),
          "slurm": ("submitit", "pip install 'ubench[slurm]'")}


class Events(Protocol):
    """What an executor reports while it works (called from any thread)."""

    def started(self, job: Job) -> None: ...

    def finished(self, job: Job, outcome: Outcome) -> None: ...


class Executor(Protocol):
    """Runs jobs and returns one outcome per job (in any order)."""

    name: str

    def run(self, jobs: Sequence[Job], events: Events) -> list[Outcome]: ...


def require_extra(on: str) -> Any:
    """Import the engine of ``--on ray|slurm`` or raise one line naming the install command."""
    module, install = EXTRAS[on]
    try:
        return importlib.import_module(module)
    except ImportError:
        raise MissingExtraError(f"--on {on} needs {module}, which is not installed: "
                                f"{install}") from None


def has_extra(on: str) -> bool:
    """Whether the engine of ``--on`` is installed (without importing it)."""
    import importlib.util

    return on not in EXTRAS or importlib.util.find_spec(EXTRAS[on][0]) is not None


def _dead(outcome_error: str, attempts: int) -> str:
    tries = f" ({attempts} attempts)" if attempts > 1 else ""
    return (f"{outcome_error}{tries}; rerun the sweep to resume the run from its last "
            "checkpoint")


# ------------------------------------------------------------------------------------ local
class LocalExecutor:
    """A pool of ``workers`` single-run worker processes on this machine.

    Each run is ``python -m ubench.sweep`` in its own process group (stderr into the run's
    log), so a dead worker fails only its own run. The scheduler prefers runs whose lock no one
    holds and skips runs finished meanwhile, so two sweeps of one plan share the work instead of
    waiting on each other. Ctrl-C or SIGTERM stops the workers (each saves nothing new: its
    checkpoints are on disk) and raises; if the sweep itself is killed, Linux sends each worker
    SIGTERM (``PR_SET_PDEATHSIG``).
    """

    name = "local"

    def __init__(self, workers: int | None = None, retries: int = 1) -> None:
        self.workers = max(1, workers or os.cpu_count() or 1)
        self.retries = retries
        self._procs: set[subprocess.Popen[str]] = set()
        self._guard = threading.Lock()
        self._stop = threading.Event()

    def run(self, jobs: Sequence[Job], events: Events) -> list[Outcome]:
        from ubench.core.locks import busy

        pending = list(jobs)
        outcomes: list[Outcome] = []

        def take() -> Job | None:
            with self._guard:
                if self._stop.is_set() or not pending:
                    return None
                for i, job in enumerate(pending):
                    if not busy(run_lock(Path(job.store), job.run_id)):
                        return pending.pop(i)
                return pending.pop(0)  # all held elsewhere: wait on one (then skip it)

        def slot() -> None:
            while (job := take()) is not None:
                finished = _finished_record(job)
                if finished is not None:
                    out = Outcome(job.run_id, "skipped", record=finished["_path"], log=None,
                                  metrics=metric_values(finished))
                else:
                    events.started(job)
                    out = self._attempts(job)
                with self._guard:
                    outcomes.append(out)
                events.finished(job, out)

        threads = [threading.Thread(target=slot, name=f"ubench-sweep-{i}", daemon=True)
                   for i in range(min(self.workers, len(pending)))]
        for t in threads:
            t.start()
        try:
            while any(t.is_alive() for t in threads):
                for t in threads:
                    t.join(timeout=0.2)
        except KeyboardInterrupt as e:
            self._stop.set()
            self._signal(signal.SIGTERM if isinstance(e, Terminated) else signal.SIGINT)
            for t in threads:
                t.join()
            raise
        return outcomes

    def _signal(self, sig: int) -> None:
        with self._guard:
            procs = list(self._procs)
        for p in procs:
            if p.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    p.send_signal(sig)

    def _attempts(self, job: Job) -> Outcome:
        attempt = 0
        while True:
            attempt += 1
            out, died = self._spawn(job)
            out.attempts = attempt
            if not died or attempt > self.retries or self._stop.is_set():
                if died:
                    out.error = _dead(out.error or "", attempt)
                return out

    def _spawn(self, job: Job) -> tuple[Outcome, bool]:
        """One attempt in a fresh process: (outcome, whether the process died)."""
        log = job.log
        log.parent.mkdir(parents=True, exist_ok=True)
        env = {**os.environ}
        for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
            env.setdefault(var, str(job.threads))
        cmd = [sys.executable, "-m", "ubench.sweep", json.dumps(job.to_dict()),
               str(os.getpid())]
        t0 = time.perf_counter()
        with log.open("a", encoding="utf-8") as err:
            proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, text=True,
                                    env=env, start_new_session=True)
            with self._guard:
                self._procs.add(proc)
            try:
                stdout, _ = proc.communicate()
            finally:
                with self._guard:
                    self._procs.discard(proc)
        for line in reversed(stdout.splitlines()):
            if line.startswith(OUTCOME_MARK):
                return Outcome.from_dict(json.loads(line[len(OUTCOME_MARK):])), False
        rc = proc.returncode
        seconds = time.perf_counter() - t0
        if rc < 0:
            why = f"the worker process was killed by {signal.Signals(-rc).name}"
            return Outcome(job.run_id, "failed", why, seconds, None, str(log)), True
        why = (f"the worker process exited with status {rc} before reporting (see {log})")
        return Outcome(job.run_id, "failed", why, seconds, None, str(log)), False


def _finished_record(job: Job) -> dict[str, Any] | None:
    """The record of ``job`` when it finished meanwhile (another sweep made it), its attacks
    included."""
    from ubench.store.reader import finished_run
    from ubench.sweep.worker import pending_attacks

    root = Path(job.store)
    try:
        rec = finished_run(root, job.task, job.method, job.run_id)
    except Exception:  # a corrupt record: the run itself says so
        return None
    if rec is None or rec["status"] != "ok":
        return None
    return None if pending_attacks(job.attacks, job.attack_sets, root, job.run_id) else rec


# ------------------------------------------------------------------------------------ ray
def _ray_run(job_dict: dict[str, Any]) -> dict[str, Any]:
    """The Ray task: the single-run function on one job (module level, so Ray imports it)."""
    return Job.from_dict(job_dict).run().to_dict()


def check_ray_address(address: str) -> None:
    """Refuse, in seconds and in one line, an ``--address`` Ray cannot connect to: a
    ``ray://`` address without Ray's client installed, a HOST:PORT where nothing listens (Ray
    itself retries for minutes), ``auto`` with no cluster started on this machine."""
    import socket

    def refuse(why: str) -> ConfigError:
        return ConfigError(f"--address {address}: {why}")

    if address.startswith("ray://"):
        try:
            import grpc  # noqa: F401 - Ray's client needs its client extra (grpcio)
        except ImportError:
            raise MissingExtraError(f"--address {address} connects through Ray's client, which "
                                    "is not installed: pip install 'ray[client]==2.60.0' (or "
                                    "run the sweep on the cluster's head node with --address "
                                    "auto)") from None
    if address == "auto":
        if not (os.environ.get("RAY_ADDRESS") or Path("/tmp/ray/ray_current_cluster").is_file()):
            raise refuse("no Ray cluster runs on this machine (none started with `ray start "
                         "--head`); start one, give its address, or drop --address for a "
                         "local one")
        return
    hostport = address.removeprefix("ray://").rsplit("/", 1)[0]
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise refuse("not an address Ray takes: give HOST:PORT, ray://HOST:PORT or auto")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=5).close()
    except OSError as e:
        raise refuse(f"nothing answers at {host}:{port} ({e.strerror or e}); start the cluster "
                     "(`ray start --head`) or fix the address") from None


def _connect(ray: Any, address: str, options: dict[str, Any]) -> None:
    """``ray.init(address=...)`` after :func:`check_ray_address`; one line if it still fails."""
    check_ray_address(address)
    try:
        ray.init(address=address, **options)
    except (ConnectionError, RuntimeError, ValueError, TimeoutError) as e:
        first = next((ln for ln in str(e).splitlines() if ln.strip()), type(e).__name__)
        raise ConfigError(f"--address {address}: Ray could not connect "
                          f"({' '.join(first.split())[:200]})") from None


class RayExecutor:
    """Ray tasks, one per run: ``num_cpus`` = the run's threads, ``num_gpus`` per run,
    ``max_retries`` for dead workers, and a fresh worker process per run (``max_calls=1``).

    ``address`` connects to an existing cluster (``ray://host:10001`` or ``auto``); without it
    a local cluster of ``workers`` x threads CPUs is started here and shut down at the end. At
    most ``workers`` runs are in flight (all of them when None, on an existing cluster).
    """

    name = "ray"

    def __init__(self, address: str | None = None, workers: int | None = None, threads: int = 1,
                 gpus: float = 0, retries: int = 1, object_store_mb: int = 256) -> None:
        self.address = address
        self.workers = workers
        self.threads = threads
        self.gpus = gpus
        self.retries = retries
        self.object_store_mb = object_store_mb

    def run(self, jobs: Sequence[Job], events: Events) -> list[Outcome]:
        ray = require_extra("ray")
        if not jobs:
            return []
        started_here = False
        env = {k: v for k, v in os.environ.items() if k.startswith("UBENCH_")
               or k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_HOME")}
        if not ray.is_initialized():
            common: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False,
                                      "runtime_env": {"env_vars": env},
                                      "logging_level": logging.WARNING if self.address
                                      else logging.ERROR}
            if self.address:
                _connect(ray, self.address, common)
            else:
                cpus = (self.workers or os.cpu_count() or 1) * self.threads
                ray.init(address="local", num_cpus=cpus,
                         object_store_memory=self.object_store_mb * 2**20, **common)
                started_here = True
        try:
            have = ray.cluster_resources().get("GPU", 0)
            if started_here and self.gpus and have < self.gpus:  # (a cluster may scale up)
                raise ConfigError(f"--gpus {self.gpus:g} per run, but this machine's Ray "
                                  f"cluster has {have:g} GPUs: lower --gpus or connect to a "
                                  "cluster with GPUs (--address)")
            task = ray.remote(max_calls=1)(_ray_run).options(
                num_cpus=self.threads, num_gpus=self.gpus, max_retries=self.retries)
            return self._drive(ray, task, list(jobs), events)
        finally:
            if started_here:
                ray.shutdown()

    def _drive(self, ray: Any, task: Any, jobs: list[Job], events: Events) -> list[Outcome]:
        cap = self.workers or len(jobs)
        waiting = list(jobs)
        flying: dict[Any, tuple[Job, float]] = {}
        outcomes: list[Outcome] = []
        try:
            while waiting or flying:
                while waiting and len(flying) < cap:
                    job = waiting.pop(0)
                    flying[task.remote(job.to_dict())] = (job, time.perf_counter())
                    events.started(job)
                done, _ = ray.wait(list(flying), num_returns=1, timeout=0.5)
                for ref in done:
                    job, t0 = flying.pop(ref)
                    try:
                        out = Outcome.from_dict(ray.get(ref))
                    except Exception as e:  # the worker died more than max_retries times
                        name = type(e).__name__
                        first = str(e).strip().splitlines()[0] if str(e).strip() else name
                        out = Outcome(job.run_id, "failed",
                                      _dead(f"the Ray worker died ({name}: {first})",
                                            self.retries + 1),
                                      time.perf_counter() - t0, None, str(job.log))
                    outcomes.append(out)
                    events.finished(job, out)
        except KeyboardInterrupt:
            for ref in flying:
                ray.cancel(ref)  # KeyboardInterrupt in the run: it stops like on Ctrl-C
            for ref in flying:
                with contextlib.suppress(Exception):  # its outcome: the next sweep sees it
                    ray.get(ref, timeout=60)
            raise
        return outcomes


# ------------------------------------------------------------------------------------ slurm
class SlurmExecutor:
    """Slurm jobs through submitit: one array of jobs, one job per run.

    ``folder`` holds submitit's scripts and logs (default ``<store>/.sweep/slurm``); the store
    and ``UBENCH_HOME`` must be on a filesystem the nodes share. ``workers`` caps how many runs
    run at once (``--array=0-N%workers``; all of them when None); each job gets ``threads`` CPUs
    (``--cpus-per-task``), ``gpus`` GPUs (``--gpus-per-node``), ``partition`` and
    ``timeout_min`` minutes (``--time``). Near its time limit (or when pre-empted) a job gets
    ``--signal`` and submitit requeues it, up to ``retries`` times (submitit's
    ``max_num_timeout``, an argument of its executor, not a job parameter); the requeued job
    resumes the run from its last checkpoint. ``extra``: more of submitit's AutoExecutor
    parameters (``mem_gb``, ``slurm_qos``, ``slurm_account``, ...), applied last.

    Results are read from submitit's result files every ``poll_s`` seconds; the jobs' states
    (running, or ended without a result) come from ``sacct``, one call for every job of the
    sweep, at submitit's pace (2 s, 4 s, 8 s, ... after the submission) and at least every
    ``sacct_s`` seconds (submitit alone would wait up to 10 minutes). Ctrl-C (or SIGTERM)
    cancels the jobs not finished with one ``scancel``.

    ``cluster="local"`` runs the jobs as local processes through submitit's own local executor;
    ``None`` means Slurm (``sbatch`` and ``srun`` must be on PATH).
    """

    name = "slurm"

    def __init__(self, folder: str | Path | None = None, partition: str | None = None,
                 gpus: float = 0, timeout_min: int = 240, workers: int | None = None,
                 threads: int = 1, retries: int = 1, cluster: str | None = None,
                 extra: dict[str, Any] | None = None, poll_s: float = 2.0,
                 sacct_s: float = 60.0) -> None:
        if gpus != int(gpus):
            raise ConfigError(f"--gpus {gpus:g}: Slurm gives whole GPUs; pass a whole number")
        if timeout_min < 1:
            raise ConfigError(f"--timeout {timeout_min}: a Slurm job needs at least 1 minute")
        self.folder = folder
        self.partition = partition
        self.gpus = int(gpus)
        self.timeout_min = int(timeout_min)
        self.workers = workers
        self.threads = threads
        self.retries = retries
        self.cluster = cluster
        self.extra = dict(extra or {})
        self.poll_s = poll_s
        self.sacct_s = sacct_s

    def submitit_executor(self, folder: Path, n_jobs: int) -> Any:
        """submitit's executor for ``n_jobs`` runs, configured: what the sweep submits with.

        ``max_num_timeout`` goes to the executor's constructor (submitit refuses it as a
        parameter); a bad key or value in ``extra`` is one :class:`ConfigError` naming it.
        """
        submitit = require_extra("slurm")
        cluster = self.cluster or "slurm"
        if cluster == "slurm":
            missing = [c for c in ("sbatch", "srun") if shutil.which(c) is None]
            if missing:
                raise MissingExtraError(f"--on slurm needs Slurm's {' and '.join(missing)} on "
                                        "PATH: run the sweep on the cluster's login node (or "
                                        "use --on local / --on ray)")
        for key in self.extra:
            if key.removeprefix(f"{cluster}_") in ("max_num_timeout", "array_parallelism"):
                raise ConfigError(f"extra submitit parameter {key!r}: set by the sweep "
                                  "(--retries, --workers); drop it from extra")
        ex = submitit.AutoExecutor(folder=folder / "%j", cluster=cluster,
                                   **{f"{cluster}_max_num_timeout": self.retries})
        params: dict[str, Any] = {"timeout_min": self.timeout_min, "cpus_per_task": self.threads,
                                  "tasks_per_node": 1, "nodes": 1, "name": "ubench-sweep"}
        if self.gpus:
            params["gpus_per_node"] = self.gpus
        if cluster == "slurm":
            # the requeue signal comes this long before the limit (submitit's 90 s would come
            # at once in a job of a minute or two); Slurm may send it up to 60 s earlier still
            params["slurm_signal_delay_s"] = min(90, self.timeout_min * 15)
            params["slurm_array_parallelism"] = self.workers or n_jobs
            if self.partition:
                params["slurm_partition"] = self.partition
        ex.update_parameters(**params)
        for key, value in self.extra.items():  # one by one: the error names the bad one
            try:
                ex.update_parameters(**{key: value})
            except NameError:
                raise ConfigError(f"extra submitit parameter {key!r} is unknown to submitit: use "
                                  "its AutoExecutor's names (mem_gb, timeout_min, ...; Slurm's "
                                  f"own prefixed, e.g. slurm_qos, slurm_account)") from None
            except (ValueError, TypeError, AssertionError) as e:
                first = next((ln for ln in str(e).splitlines() if ln.strip()), type(e).__name__)
                raise ConfigError(f"extra submitit parameter {key!r}={value!r}: submitit "
                                  f"refuses it ({' '.join(first.split())[:200]})") from None
        return ex

    def run(self, jobs: Sequence[Job], events: Events) -> list[Outcome]:
        if not jobs:
            return []
        import io

        from ubench.sweep._slurm import SlurmRun, submission_refused

        folder = Path(self.folder or sweep_dir(Path(jobs[0].store)) / "slurm")
        ex = self.submitit_executor(folder, len(jobs))
        call = SlurmRun(timeout_min=self.timeout_min, retries=self.retries)
        said = io.StringIO()  # submitit prints a refused sbatch's stderr: it goes in the error
        try:
            with contextlib.redirect_stderr(said):
                submitted = ex.map_array(call, [j.to_dict() for j in jobs])
        except Exception as e:
            refused = submission_refused(e, said.getvalue())
            if refused is None:
                raise
            where = f" (--partition {self.partition})" if self.partition else ""
            jobs_ = f"{len(jobs)} job{'s' if len(jobs) > 1 else ''}"
            raise ConfigError(f"sbatch refused the sweep's {jobs_}: {refused}{where}") from None
        pending = dict(zip(submitted, jobs, strict=True))
        slurm = (self.cluster or "slurm") == "slurm"
        running: set[Any] = set()
        outcomes: list[Outcome] = []
        t0 = last_sacct = time.perf_counter()
        try:
            while pending:
                if slurm and time.perf_counter() - last_sacct >= self.sacct_s:
                    submitted[0].get_info(mode="force")  # one sacct for every job of the sweep
                    last_sacct = time.perf_counter()
                for sj, job in list(pending.items()):
                    if sj.done():  # its result file, or sacct says it ended
                        del pending[sj]
                        out = self._outcome(sj, job, time.perf_counter() - t0)
                        outcomes.append(out)
                        if sj not in running:
                            events.started(job)
                        events.finished(job, out)
                    elif sj not in running and self._state(sj) in ("RUNNING", "COMPLETING"):
                        running.add(sj)
                        events.started(job)
                if pending:
                    time.sleep(self.poll_s)
        except KeyboardInterrupt:
            self._cancel(list(pending))
            raise
        return outcomes

    def _cancel(self, submitted: list[Any]) -> None:
        """Cancel the jobs not finished: one ``scancel`` with all their ids (Slurm sends each
        SIGTERM, then SIGKILL; their checkpoints are on disk and the next sweep resumes them)."""
        if not submitted:
            return
        if (self.cluster or "slurm") != "slurm":
            for sj in submitted:
                sj.cancel(check=False)
            return
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            subprocess.run(["scancel", *(sj.job_id for sj in submitted)], check=False,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60)

    def _state(self, sj: Any) -> str:
        """A job's state: what the last ``sacct`` said on Slurm (no new call), else
        submitit's."""
        if (self.cluster or "slurm") == "slurm":
            return str(sj.watcher.get_state(sj.job_id, mode="cache"))
        return str(sj.state)

    def _outcome(self, sj: Any, job: Job, seconds: float) -> Outcome:
        """The run's outcome from its job's result; one line when the job ended without one
        (killed, out of memory, node failure) or failed outside the run."""
        from ubench.sweep._slurm import job_failure

        try:
            return Outcome.from_dict(sj.result())
        except Exception as e:
            state = self._state(sj)
            return Outcome(job.run_id, "failed",
                           _dead(f"Slurm job {sj.job_id} ended {state} without a result "
                                 f"({job_failure(e)}; its log: {sj.paths.stderr})", 1),
                           seconds, None, str(job.log))


# ------------------------------------------------------------------------------------ factory
def make_executor(on: str, *, workers: int | None = None, threads: int = 1, retries: int = 1,
                  **options: Any) -> Executor:
    """The executor ``--on`` names, with its options (``address`` for Ray; ``partition``,
    ``timeout_min``, ``folder``, ``cluster``, ``extra``, ``poll_s``, ``sacct_s`` for Slurm;
    ``gpus`` for both)."""
    allowed = {"local": set(), "ray": {"address", "gpus", "object_store_mb"},
               "slurm": {"partition", "gpus", "timeout_min", "folder", "cluster", "extra",
                         "poll_s", "sacct_s"}}
    if on not in allowed:
        raise ConfigError(f"unknown executor {on!r}: use local, ray or slurm")
    given = {k: v for k, v in options.items() if v is not None}
    wrong = sorted(set(given) - allowed[on])
    if wrong:
        raise ConfigError(f"{', '.join(wrong)} do(es) not apply to --on {on}")
    if on == "local":
        return LocalExecutor(workers, retries)
    if on == "ray":
        return RayExecutor(workers=workers, threads=threads, retries=retries, **given)
    return SlurmExecutor(workers=workers, threads=threads, retries=retries, **given)

