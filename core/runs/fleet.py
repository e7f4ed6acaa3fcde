"""The worker daemon of team mode (`protolab worker`): registers a machine's devices, claims queued runs that fit
and runs each in a child process (`python -m core.runs.worker RUN_ID`, or torchrun) exactly as on one machine.

The database is the queue: a claim is one transaction that locks queued rows with FOR UPDATE SKIP LOCKED and
inserts a (run, node) claim row, unique per node. A daemon beats every few seconds; one that stops beating is
presumed lost and its runs are requeued (core.runs.jobs.reap_dead_runs, run by every daemon and page). On SIGTERM
the daemon stops claiming, asks its children to finish their step and checkpoint, and they hand their runs back.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core import __version__, settings
from core.errors import ProtolabError
from core.names import check_name
from core.runs import jobs, queue, scheduling
from core.runs.device import describe_compute
from core.runs.files import RunFiles
from core.settings import load_settings, redact_url
from db import session_scope, with_retry
from db import workers as worker_queries
from db.enums import RunStatus
from db.models import Run, utcnow

log = logging.getLogger(__name__)

REAP_EVERY_S = 3.0


@dataclass(frozen=True)
class WorkerOptions:
    name: str
    devices: tuple[str, ...]
    max_parallel: int
    address: str  # how the other machines reach this one (the rendezvous host of a multi-node run)


def default_devices() -> tuple[str, ...]:
    compute = describe_compute()
    if compute.kind == "cuda":
        return tuple(f"cuda:{i}" for i in range(len(compute.gpus)))
    return (compute.kind,)


def parse_devices(text: str | None) -> tuple[str, ...]:
    """`cuda:0,cuda:1`, `cpu` or `mps` (None: every GPU of this machine, else the CPU); ProtolabError if wrong."""
    if not text:
        return default_devices()
    devices = tuple(d.strip().lower() for d in text.split(",") if d.strip())
    gpus = len(describe_compute().gpus)
    for device in devices:
        if device in ("cpu", "mps"):
            continue
        index = device.removeprefix("cuda:")
        if not device.startswith("cuda:") or not index.isdigit():
            raise ProtolabError(f"--devices: {device!r} is not a device; use cpu, mps or cuda:N (e.g. cuda:0,cuda:1)")
        if int(index) >= gpus:
            raise ProtolabError(f"--devices: {device} is not on this machine (it has {gpus} CUDA GPU(s))")
    if not devices or len(set(devices)) != len(devices):
        raise ProtolabError(f"--devices: give each device once, comma-separated (got {text!r})")
    return devices


def build_options(name: str | None, devices: str | None, max_parallel: int | None) -> WorkerOptions:
    offered = parse_devices(devices)
    if max_parallel is not None and max_parallel < 1:
        raise ProtolabError(f"--max-parallel must be at least 1 (got {max_parallel})")
    host = socket.gethostname()
    return WorkerOptions(name=check_name(name, "a worker", max_chars=120) if name else host.strip()[:120],
                         devices=offered,
                         max_parallel=max_parallel or len(offered),
                         address=settings.WORKER_ADDRESS.get() or _default_address(host))


def _default_address(host: str) -> str:
    try:
        return socket.gethostbyname(socket.getfqdn())
    except OSError:
        return host


@dataclass
class Child:
    """A worker process this daemon started for one node of one run."""

    proc: subprocess.Popen
    run_id: int
    claim_id: int
    node_rank: int
    nodes: int
    devices: list[str]
    started: float = field(default_factory=time.monotonic)
    short: bool = False  # estimated short (core.runs.scheduling): it may hold the CPU's express place


class FleetWorker:
    """One daemon: `serve()` until `stop` is set, then hand the runs back and leave."""

    def __init__(self, options: WorkerOptions) -> None:
        self.options = options
        self.host = socket.gethostname()
        self.worker_id: int | None = None
        self.children: dict[int, Child] = {}  # by claim id
        self._short_claims: set[int] = set()  # runs the last claim took as short
        self.draining = threading.Event()
        self._beat_stop = threading.Event()

    # --- registration and heartbeat --------------------------------------------------------------------
    def register(self) -> int:
        """Add (or take over) this daemon's row; refuses a name that a live daemon elsewhere still uses."""
        gpu_memory = {f"cuda:{i}": round(g.memory_gib * 1024) for i, g in enumerate(describe_compute().gpus)}
        values = dict(host=self.host, address=self.options.address, pid=os.getpid(),
                      devices=list(self.options.devices), gpu_memory_mb=gpu_memory,
                      max_parallel=self.options.max_parallel, version=__version__, state="online",
                      started_at=utcnow(), heartbeat_at=utcnow())
        with session_scope() as s:
            worker = worker_queries.get_worker_by_name(s, self.options.name)
            live = {w.id for w in worker_queries.live_workers(s, settings.WORKER_STALE_AFTER_S.get())}
            restarted = worker is not None and worker.host == self.host and not _pid_alive(worker.pid)
            if (worker is not None and worker.id in live and not restarted
                    and (worker.host, worker.pid) != (self.host, os.getpid())):
                raise ProtolabError(f"a worker named {self.options.name!r} is already running on {worker.host} "
                                    f"(pid {worker.pid}); give this one another --name")
            if worker is None:
                worker = worker_queries.add_worker(s, name=self.options.name, **values)
            else:
                # An earlier life of this daemon died: whatever it still held goes back to the queue first.
                for claim in worker_queries.claims_of_worker(s, worker.id):
                    run = s.get(Run, claim.run_id, with_for_update=True)
                    if run is not None and run.status.is_active:
                        queue.requeue_run(s, run, f"worker {worker.name} restarted", lost=True)
                for key, value in values.items():
                    setattr(worker, key, value)
            self.worker_id = worker.id
        threading.Thread(target=self._beat, name="protolab-fleet-heartbeat", daemon=True).start()
        return self.worker_id

    def _beat(self) -> None:
        while not self._beat_stop.wait(queue.WORKER_HEARTBEAT_S):
            state = "draining" if self.draining.is_set() else "online"
            # A missed beat is retried; a database away for long loses us.
            _survive("send a heartbeat", lambda state=state: self._touch(state))

    def _touch(self, state: str) -> None:
        children = list(self.children.values())
        with session_scope() as s:
            worker_queries.touch_worker(s, self.worker_id, state)
            # A claimed run is still "queued" until its worker process flips it to running, which for a multi-node
            # run waits for the other nodes to join the rendezvous: meanwhile this daemon vouches for it.
            worker_queries.touch_queued_runs(s, [child.run_id for child in children])
            withdrawn = [c for c in children if not worker_queries.claim_exists(s, c.claim_id)]
        if not self.draining.is_set():
            for child in withdrawn:
                self._stop_withdrawn(child)

    def _stop_withdrawn(self, child: Child) -> None:
        """The run went back to the queue without this child (a lost node of a multi-node run, or this daemon
        presumed dead): stop what is left of it, or torchrun holds this slot waiting for the lost peer."""
        if child.proc.poll() is None:
            log.warning("run %d: its claim here was withdrawn (the run went back to the queue); stopping node %d "
                        "(pid %d)", child.run_id, child.node_rank + 1, child.proc.pid)
            with contextlib.suppress(ProcessLookupError):
                child.proc.kill()

    # --- the loop ----------------------------------------------------------------------------------------
    def serve(self, stop: threading.Event) -> None:
        """Claim and run until `stop` is set; then drain (hand runs back) and mark this daemon stopped."""
        if self.worker_id is None:
            self.register()
        last_reap = 0.0
        try:
            while not stop.is_set():
                self._poll_children()
                if time.monotonic() - last_reap > REAP_EVERY_S:
                    last_reap = time.monotonic()
                    _survive("look for dead runs", jobs.reap_dead_runs)
                # A claim that lost a race or a briefly absent database: tried again next poll.
                _survive("claim queued runs", self._claim_and_launch)
                stop.wait(settings.WORKER_POLL_S.get())
        finally:
            self.drain()

    def free_slots(self) -> int:
        return self.options.max_parallel - len(self.children)

    def busy_devices(self) -> list[str]:
        return [d for child in self.children.values() for d in child.devices]

    def _claim_and_launch(self) -> None:
        for run_id, claim_id, node_rank, nodes, devices, endpoint in self._claim():
            self._launch(run_id, claim_id, node_rank, nodes, devices, endpoint)
            if claim_id in self.children:  # not when its process could not start
                self.children[claim_id].short = run_id in self._short_claims

    def _claim(self) -> list[tuple[int, int, int, int, list[str], str | None]]:
        """One transaction: lock claimable queued runs, take those that fit, record the claims.

        A run estimated short may take the CPU's express place beyond --max-parallel (core.runs.scheduling)."""
        express = scheduling.express_slots("cpu") if "cpu" in self.options.devices else 0
        running = [child.short for child in self.children.values()]
        if scheduling.free_slots(running, True, self.options.max_parallel, express) <= 0 or self.draining.is_set():
            return []
        taken: list[tuple[int, int, int, int, list[str], str | None]] = []
        busy, self._short_claims = self.busy_devices(), set()
        with session_scope() as s:
            for run in worker_queries.lock_claimable_runs(s):
                needs = queue.needs_of(run.config or {})
                claims = worker_queries.claims_of_run(s, run.id)
                if len(claims) >= needs.nodes or any(c.worker_id == self.worker_id for c in claims):
                    continue
                short = scheduling.is_short(run.events)
                slots = scheduling.free_slots(running, short, self.options.max_parallel, express)
                devices = queue.assign_devices(needs, self.options.devices, busy, slots)
                # The express place is the CPU's alone: a GPU run beyond --max-parallel waits.
                if devices is None or (devices != ["cpu"] and len(running) >= self.options.max_parallel):
                    continue
                node_rank = len(claims)
                # Node 0 hosts the rendezvous of a multi-node run; the others read where from its claim.
                endpoint = (f"{self.options.address}:{_free_port()}" if node_rank == 0
                            else claims[0].endpoint) if needs.nodes > 1 else None
                claim = worker_queries.add_claim(s, run_id=run.id, worker_id=self.worker_id, node_rank=node_rank,
                                                 devices=devices, endpoint=endpoint)
                run.heartbeat_at, run.host = utcnow(), self.host
                where = f"{self.options.name} ({', '.join(devices)})"
                run.status_text = (f"claimed by {where}" if needs.nodes == 1
                                   else f"node {node_rank + 1} of {needs.nodes} on {where}")
                run.events = [*(run.events or []), {"event": "claimed", "worker": self.options.name,
                                                    "node": node_rank, "devices": devices,
                                                    "at": utcnow().isoformat()}]
                taken.append((run.id, claim.id, node_rank, needs.nodes, devices, endpoint))
                busy, running = busy + devices, [*running, short]
                if short:
                    self._short_claims.add(run.id)
                if scheduling.free_slots(running, True, self.options.max_parallel, express) <= 0:
                    break
        return taken

    def _launch(self, run_id: int, claim_id: int, node_rank: int, nodes: int, devices: list[str],
                endpoint: str | None) -> None:
        files = RunFiles.of(run_id)
        env = jobs.worker_env()
        env[settings.CLAIM_ID.name] = str(claim_id)
        env[settings.WORKER_NAME.name] = self.options.name
        gpus = [d.removeprefix("cuda:") for d in devices if d.startswith("cuda:")]
        if gpus:
            env["CUDA_VISIBLE_DEVICES"] = ",".join(gpus)
        with session_scope() as s:
            run = s.get(Run, run_id)
            processes = queue.needs_of(run.config or {}).processes
        command = (node_command(run_id, nodes, processes, node_rank, endpoint, self.options.address) if nodes > 1
                   else jobs.worker_command(run_id, processes))
        log_path = files.worker_log if node_rank == 0 else files.root / f"worker.node{node_rank}.log"
        try:
            files.root.mkdir(parents=True, exist_ok=True)
            with open(log_path, "ab") as out:
                proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                        env=env, cwd=jobs.PROJECT_ROOT, start_new_session=True,
                                        preexec_fn=_die_with_parent)
        except OSError as exc:
            self._fail_claim(run_id, claim_id, f"worker {self.options.name} could not start the run: "
                                               f"{jobs.disk_error_text(exc, files.root)}")
            return
        self.children[claim_id] = Child(proc, run_id, claim_id, node_rank, nodes, devices)
        log.info("run %d: node %d of %d started on %s (pid %d)", run_id, node_rank + 1, nodes, ", ".join(devices),
                 proc.pid)

    def _fail_claim(self, run_id: int, claim_id: int, message: str) -> None:
        with session_scope() as s:
            run = s.get(Run, run_id, with_for_update=True)
            if run is not None and run.status.is_active and worker_queries.claim_exists(s, claim_id):
                run.status, run.finished_at, run.error = RunStatus.FAILED, utcnow(), message
                run.status_text = "failed: worker not started"

    def _poll_children(self) -> None:
        for claim_id, child in list(self.children.items()):
            code = child.proc.poll()
            if code is None:
                continue
            del self.children[claim_id]
            if child.nodes > 1:
                continue  # rank 0 (on whichever node) reports the run; a node that vanishes stops its heartbeat
            _survive(f"record how the worker of run {child.run_id} ended",
                     lambda child=child, code=code: self._after_exit(child, code))

    def _after_exit(self, child: Child, code: int) -> None:
        """A child that exited while its run is still ours and active died without reporting: as on one machine,
        the run fails with the reason (during a drain it is requeued instead)."""

        with session_scope() as s:
            run = s.get(Run, child.run_id, with_for_update=True)
            if run is None or not run.status.is_active or not worker_queries.claim_exists(s, child.claim_id):
                return
            how = f"was killed by signal {-code}" if code < 0 else f"exited with code {code}"
            reason = f"the worker process (pid {child.proc.pid}) {how} without reporting"
            if self.draining.is_set():
                log.info("run %d back to the queue: %s", child.run_id, reason)
                queue.requeue_run(s, run, reason, lost=False)
                return
            log.warning("run %d marked failed: %s", child.run_id, reason)
            tail = jobs.log_tail(child.run_id)
            run.status, run.finished_at, run.status_text = RunStatus.FAILED, utcnow(), "failed: worker died"
            run.error = f"{reason}: killed or crashed" + (f"\n\nLast lines of the worker log:\n{tail}" if tail else "")

    # --- stopping ----------------------------------------------------------------------------------------
    def drain(self) -> None:
        """Stop claiming, ask every child to checkpoint and hand its run back, wait, then mark this daemon
        stopped."""
        self.draining.set()
        for child in self.children.values():
            with contextlib.suppress(ProcessLookupError):
                child.proc.send_signal(signal.SIGTERM)
        # Then the runs that did not reach a step and hand themselves back are killed.
        deadline = time.monotonic() + settings.DRAIN_TIMEOUT_S.get()
        while self.children and time.monotonic() < deadline:
            self._poll_children()
            time.sleep(0.2)
        for child in list(self.children.values()):  # past the deadline: stop them, their runs are requeued
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(child.proc.pid, signal.SIGKILL)
            child.proc.wait()
        self._poll_children()
        self._beat_stop.set()
        if self.worker_id is not None:
            _survive("mark this worker stopped", lambda: self._touch("stopped"))


def node_command(run_id: int, nodes: int, processes: int, node_rank: int, endpoint: str | None,
                 address: str) -> list[str]:
    """torchrun for one node of a multi-node run: c10d rendezvous at node 0's endpoint, which node 0 hosts (the
    database said who: node 0 is the first claim); `address` is how the other nodes reach this one."""
    return [sys.executable, "-m", "torch.distributed.run", f"--nnodes={int(nodes)}", f"--local_addr={address}",
            f"--nproc_per_node={int(processes)}", "--rdzv_backend=c10d", f"--rdzv_endpoint={endpoint}",
            f"--rdzv_id=protolab-run-{int(run_id)}", f"--rdzv_conf=is_host={1 if node_rank == 0 else 0}",
            "--max_restarts=0", "-m", "core.runs.worker", str(int(run_id))]


def _pid_alive(pid: int) -> bool:
    import psutil

    return psutil.pid_exists(pid)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("", 0))
        return sock.getsockname()[1]


def _die_with_parent() -> None:
    # Runs in the child between fork and exec, so it only calls into libc (loaded beforehand, no import here):
    # SIGKILL the child when this daemon dies (kill -9, machine trouble), so a lost daemon's run cannot go on
    # unseen while the fleet requeues it elsewhere. torchrun's own workers do the same (core.runs.worker).
    if _LIBC is not None:
        _LIBC.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


PR_SET_PDEATHSIG = 1
try:
    import ctypes

    _LIBC = ctypes.CDLL("libc.so.6", use_errno=True) if sys.platform.startswith("linux") else None
except OSError:
    _LIBC = None


def _survive(what: str, call: Callable[[], Any]) -> None:
    """Run a step of the daemon's loop with the database's retries; a failure is logged and the loop goes on."""
    try:
        with_retry(call)
    except Exception as exc:
        log.warning("could not %s (tried again shortly): %s: %s", what, type(exc).__name__, exc)


def run_daemon(options: WorkerOptions) -> int:
    """`protolab worker`: serve until SIGTERM or Ctrl-C, then drain. The exit code."""

    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda _sig, _frame: stop.set())
    daemon = FleetWorker(options)
    daemon.register()
    settings = load_settings()
    log.info("worker %s on %s (%s): %s, up to %d run(s) at once; database %s, data folder %s", options.name,
             daemon.host, options.address, ", ".join(options.devices), options.max_parallel,
             redact_url(settings.database_url), settings.home)
    if not Path(settings.home).is_dir():
        log.warning("the data folder %s does not exist here; runs will fail until it is shared", settings.home)
    daemon.serve(stop)
    log.info("worker %s stopped", options.name)
    return 0
