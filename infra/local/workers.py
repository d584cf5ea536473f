"""The pool of function workers: each invocation of a local function runs in a worker
(`infra.local.worker_process`), a process that behaves like a Lambda execution environment.

- Init (importing the handler) runs once, then the worker answers invocations while warm. A
  handled error keeps it; a crash, a timeout or running out of memory resets it (the process
  is killed and the next invocation starts a new one), as Lambda resets an execution
  environment.
- Limits, with the error names Lambda reports: the timeout (`Sandbox.Timedout`: the worker is
  killed at the deadline), `MemorySize` (`Runtime.OutOfMemory`: the worker's peak resident
  memory, polled, went over it), init longer than `INIT_LIMIT_SECONDS` (retried once within
  the invocation's timeout, as Lambda does for on-demand functions), an exit
  (`Runtime.ExitError`), and `EphemeralStorage` (`infra.local.worker_limits`: a private tmpfs
  of that size at /tmp; where the OS refuses, a private directory as TMPDIR, checked after
  each invocation: `Runtime.EphemeralStorageExceeded`).
- Concurrency: several workers per function run at once, up to its reserved concurrency
  (beyond it, Lambda throttles: `TooManyRequestsException`) and a local cap per function
  (beyond it, invocations wait for a worker), and at most `max_workers` in all (idle workers
  of other functions are stopped first).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import threading
import time
from collections.abc import Iterator
from typing import Any

from infra.local.worker_process import Outcome, Worker, WorkerDied, WorkerSpec

log = logging.getLogger("infra.local.workers")

INIT_LIMIT_SECONDS = 10.0
"""Lambda's limit on the init phase of an on-demand function."""
_MEMORY_POLL_SECONDS = 0.01


class ThrottledError(Exception):
    """The function is at its reserved concurrency (Lambda: `TooManyRequestsException`)."""


def error_payload(error_type: str, message: str, stack: list[str] | None = None) -> str:
    """What Lambda answers for a failed invocation."""
    return json.dumps({"errorType": error_type, "errorMessage": message, "stackTrace": stack or []})


# The pool


class _FunctionWorkers:
    def __init__(self, spec: WorkerSpec) -> None:
        self.spec = spec
        self.idle: list[Worker] = []
        self.busy: set[Worker] = set()


class WorkerPool:
    """Every function's workers, with the limits and the bookkeeping (invocation intervals,
    for tests and benchmarks)."""

    def __init__(self) -> None:
        self._lock = threading.Condition()
        self._functions: dict[str, _FunctionWorkers] = {}
        self._busy_memory: dict[Worker, int] = {}
        """Workers whose memory is watched (in init or in an invocation) -> their limit."""
        self._invoking: set[Worker] = set()
        self._monitor: threading.Thread | None = None
        self._stopped = threading.Event()
        self.endpoint: str | None = None
        self.per_function = max(2, os.cpu_count() or 2)
        """Workers of one function at once when it has no reserved concurrency."""
        self.max_workers = 16
        """Live workers in all; idle ones of other functions are stopped to make room."""
        self.echo_output = True
        self.intervals: list[tuple[str, float, float]] = []
        """(function name, start, end) of every invocation, in `time.monotonic()` seconds."""

    # lifecycle

    def reset(self) -> None:
        """Stop every worker (a new local cloud starts)."""
        with self._lock:
            workers = [w for fw in self._functions.values() for w in (*fw.idle, *fw.busy)]
            self._functions.clear()
            self.intervals = []
            self._lock.notify_all()
        for worker in workers:
            worker.kill("the local cloud stopped")

    def prewarm(self, specs: list[WorkerSpec]) -> None:
        """Start one worker per function ahead of its first invocation, as Lambda may
        (proactive initialization), at most as many at once as this machine has cores; each
        waits idle, initialized or initializing, for an invocation to take it."""
        gate = threading.Semaphore(os.cpu_count() or 2)

        def start(spec: WorkerSpec) -> None:
            with gate:
                with self._lock:
                    entry = self._functions.get(spec.function_name)
                    if entry is None or entry.spec != spec:
                        entry = self._functions[spec.function_name] = _FunctionWorkers(spec)
                    if entry.idle or entry.busy or not self._make_room():
                        return
                    worker = self._new_worker(spec)
                    worker.prewarmed = True
                    entry.idle.append(worker)
                    self._busy_memory[worker] = spec.memory_mb  # its init counts too
                    self._lock.notify_all()
                self._ensure_monitor()
                worker.wait_ready(INIT_LIMIT_SECONDS)
                with self._lock:
                    if worker.invocations == 0 and worker not in self._invoking:
                        self._busy_memory.pop(worker, None)

        for spec in specs:
            threading.Thread(target=start, args=(spec,), daemon=True, name="prewarm").start()

    def workers_of(self, function_name: str) -> list[Worker]:
        with self._lock:
            entry = self._functions.get(function_name)
            return [*entry.idle, *entry.busy] if entry else []

    # invocation

    def invoke(self, spec: WorkerSpec, request_id: str, event: str) -> Outcome:
        """Run one invocation in a warm worker of `spec`, or a new one. Raises
        ThrottledError at the function's reserved concurrency."""
        self._ensure_monitor()
        worker, cold = self._acquire(spec)
        started = time.monotonic()
        reusable = False
        with self._lock:
            self._invoking.add(worker)
            self._busy_memory[worker] = spec.memory_mb
        try:
            outcome, reusable, worker = self._run(worker, cold, request_id, event)
            return outcome
        finally:
            ended = time.monotonic()
            with self._lock:
                self.intervals.append((spec.function_name, started, ended))
                self._invoking.discard(worker)
                self._busy_memory.pop(worker, None)
            self._release(worker, reusable)

    def _run(
        self, worker: Worker, cold: bool, request_id: str, event: str
    ) -> tuple[Outcome, bool, Worker]:
        """The invocation's outcome, whether its worker may be reused, and the worker (a new
        one when init over its limit was retried)."""
        spec = worker.spec
        deadline = time.monotonic() + spec.timeout_seconds
        init_ms: float | None = None
        if cold:
            # A worker initialized ahead (`prewarm`) may still be in its init: wait for it.
            proactive = worker.prewarmed and worker.initialized
            remaining = INIT_LIMIT_SECONDS - (time.monotonic() - worker.started)
            ready = worker.wait_ready(max(0.0, remaining))
            if ready is None:
                # Lambda retries an init over its limit once, within the invocation's timeout.
                log.warning(
                    "function %s: init over %.0f s: retried within the timeout",
                    spec.function_name,
                    INIT_LIMIT_SECONDS,
                )
                worker.kill("init timed out")
                worker = self._replace(worker)
                deadline = time.monotonic() + spec.timeout_seconds
                ready = worker.wait_ready(spec.timeout_seconds)
                if ready is None:
                    return self._timed_out(worker, request_id, deadline), False, worker
            if ready["type"] != "ready":
                return self._init_failed(worker, ready), False, worker
            # An init done before the invocation came is not part of it.
            init_ms = None if proactive else worker.init_ms
        worker.invocations += 1
        begin = time.monotonic()
        try:
            worker.send(
                {
                    "type": "invoke",
                    "request_id": request_id,
                    "event": event,
                    "deadline_ms": int((time.time() + (deadline - begin)) * 1000),
                    "invoked_function_arn": spec.arn,
                }
            )
            message = worker.result(deadline - time.monotonic())
        except WorkerDied as exc:
            return self._died(worker, request_id, str(exc), begin), False, worker
        if message is None:
            return self._timed_out(worker, request_id, deadline), False, worker
        outcome = Outcome(
            payload=str(message["payload"]),
            errored=bool(message["errored"]),
            logs=worker.take_log(request_id),
            duration_ms=(time.monotonic() - begin) * 1000,
            init_ms=init_ms,
            max_memory_mb=round(worker.peak_memory_mb()),
        )
        over = worker.tmp_usage_mb() - spec.ephemeral_storage_mb
        if over > 0:
            worker.kill("ephemeral storage")
            outcome = Outcome(
                error_payload(
                    "Runtime.EphemeralStorageExceeded",
                    f"RequestId: {request_id} Error: /tmp holds {over:.0f} MB more than the "
                    f"function's {spec.ephemeral_storage_mb} MB of ephemeral storage",
                ),
                True,
                outcome.logs,
                outcome.duration_ms,
                init_ms,
                outcome.max_memory_mb,
                "Runtime.EphemeralStorageExceeded",
            )
            return outcome, False, worker
        return outcome, True, worker

    def _init_failed(self, worker: Worker, ready: dict[str, Any]) -> Outcome:
        if worker.killed_for == "out of memory":
            logs = worker.take_log()
            worker.kill("init out of memory")
            message = "Runtime exited with error: signal: killed"
            payload = error_payload("Runtime.OutOfMemory", message)
            return Outcome(
                payload, True, logs, 0.0, None, worker.spec.memory_mb, "Runtime.OutOfMemory"
            )
        if ready["type"] == "exited":
            message = f"Runtime exited with error: exit status {ready['code']}"
            payload = error_payload("Runtime.ExitError", message)
            error_type = "Runtime.ExitError"
        else:
            error = ready["error"]
            payload = json.dumps(error)
            error_type = str(error.get("errorType"))
        logs = worker.take_log()
        worker.kill("init failed")
        log.warning("function %s: init failed: %s", worker.spec.function_name, payload[:300])
        return Outcome(payload, True, logs, 0.0, worker.init_ms, 0, error_type)

    def _timed_out(self, worker: Worker, request_id: str, deadline: float) -> Outcome:
        spec = worker.spec
        worker.kill("timed out")
        message = (
            f"RequestId: {request_id} Error: Task timed out after {spec.timeout_seconds:.2f} "
            "seconds"
        )
        log.warning("function %s: %s", spec.function_name, message)
        return Outcome(
            error_payload("Sandbox.Timedout", message),
            True,
            worker.take_log(),
            spec.timeout_seconds * 1000,
            None,
            0,
            "Sandbox.Timedout",
        )

    def _died(self, worker: Worker, request_id: str, detail: str, begin: float) -> Outcome:
        spec = worker.spec
        worker.kill("died")
        if worker.killed_for == "out of memory":
            error_type = "Runtime.OutOfMemory"
            message = f"RequestId: {request_id} Error: Runtime exited with error: signal: killed"
        else:
            error_type = "Runtime.ExitError"
            message = f"RequestId: {request_id} Error: Runtime exited with error: {detail}"
        log.warning("function %s: %s: %s", spec.function_name, error_type, message)
        return Outcome(
            error_payload(error_type, message),
            True,
            worker.take_log(),
            (time.monotonic() - begin) * 1000,
            None,
            spec.memory_mb if error_type == "Runtime.OutOfMemory" else 0,
            error_type,
        )

    # acquiring workers

    def _new_worker(self, spec: WorkerSpec) -> Worker:
        return Worker(spec, self.endpoint, lambda: self.echo_output)

    def _acquire(self, spec: WorkerSpec) -> tuple[Worker, bool]:
        with self._lock:
            entry = self._functions.get(spec.function_name)
            if entry is None or entry.spec != spec:
                if entry is not None:
                    self._retire(entry)
                entry = self._functions[spec.function_name] = _FunctionWorkers(spec)
            limit = self.per_function
            if spec.reserved_concurrency is not None:
                if len(entry.busy) >= spec.reserved_concurrency:
                    raise ThrottledError(
                        f"Rate Exceeded: {spec.function_name} is at its reserved concurrency "
                        f"({spec.reserved_concurrency})"
                    )
                limit = min(limit, spec.reserved_concurrency)
            while True:
                while entry.idle:
                    worker = entry.idle.pop()
                    if worker.alive:
                        entry.busy.add(worker)
                        # A prewarmed worker's init may still run, or have failed.
                        return worker, worker.invocations == 0
                if len(entry.busy) < limit and self._make_room():
                    break
                self._lock.wait(timeout=1.0)
                if self._functions.get(spec.function_name) is not entry:
                    entry = self._functions.setdefault(spec.function_name, _FunctionWorkers(spec))
            worker = self._new_worker(spec)
            entry.busy.add(worker)
            return worker, True

    def _make_room(self) -> bool:
        """True if one more worker fits under `max_workers`, stopping the least recently used
        idle worker if needed (called with the lock held)."""
        live = sum(len(e.idle) + len(e.busy) for e in self._functions.values())
        if live < self.max_workers:
            return True
        idle = [w for e in self._functions.values() for w in e.idle]
        if not idle:
            return False
        oldest = min(idle, key=lambda w: w.last_used)
        for entry in self._functions.values():
            if oldest in entry.idle:
                entry.idle.remove(oldest)
        threading.Thread(target=oldest.kill, args=("evicted",), daemon=True).start()
        return True

    def _replace(self, worker: Worker) -> Worker:
        with self._lock:
            entry = self._functions[worker.spec.function_name]
            entry.busy.discard(worker)
            self._invoking.discard(worker)
            self._busy_memory.pop(worker, None)
            fresh = self._new_worker(worker.spec)
            entry.busy.add(fresh)
            self._invoking.add(fresh)
            self._busy_memory[fresh] = fresh.spec.memory_mb
            return fresh

    def _release(self, worker: Worker, reusable: bool) -> None:
        with self._lock:
            worker.last_used = time.monotonic()
            entry = self._functions.get(worker.spec.function_name)
            if entry is not None:
                entry.busy.discard(worker)
            keep = reusable and worker.alive and entry is not None and entry.spec == worker.spec
            if keep and entry is not None:
                entry.idle.append(worker)
            self._lock.notify_all()
        if not keep:
            worker.kill(worker.killed_for or "retired")

    def _retire(self, entry: _FunctionWorkers) -> None:
        for worker in entry.idle:
            threading.Thread(target=worker.kill, args=("updated",), daemon=True).start()
        entry.idle.clear()

    # memory

    def _ensure_monitor(self) -> None:
        with self._lock:
            if self._monitor is None or not self._monitor.is_alive():
                self._monitor = threading.Thread(
                    target=self._watch_memory, daemon=True, name="worker-memory"
                )
                self._monitor.start()

    def _watch_memory(self) -> None:
        while not self._stopped.wait(_MEMORY_POLL_SECONDS):
            with self._lock:
                busy = list(self._busy_memory.items())
            for worker, limit_mb in busy:
                if worker.alive and worker.peak_memory_mb() > limit_mb:
                    log.warning(
                        "function %s: memory over its %d MB: the worker is killed",
                        worker.spec.function_name,
                        limit_mb,
                    )
                    worker.killed_for = "out of memory"
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.killpg(worker.pid, signal.SIGKILL)


WORKERS = WorkerPool()


@contextlib.contextmanager
def concurrency(per_function: int) -> Iterator[None]:
    """While open, at most `per_function` workers of a function run at once."""
    saved = WORKERS.per_function
    WORKERS.per_function = per_function
    try:
        yield
    finally:
        WORKERS.per_function = saved
