"""Team mode's queue: whether a run goes to the worker fleet, which worker's devices it fits, and requeueing.

A run is always a queued row first. Without a fleet the process that queued it launches its worker after the
commit (as on one machine); with a live fleet, or PROTOLAB_DISPATCH=queue, it stays queued until a
`protolab worker` daemon claims it (core.runs.fleet).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from core import settings
from core.runs.files import RunFiles
from db import read_scope
from db import searches as search_queries
from db import workers as worker_queries
from db.enums import RunStatus
from db.models import Run, Worker, utcnow

# A daemon beats every WORKER_HEARTBEAT_S; one silent for PROTOLAB_WORKER_STALE_AFTER_S (15 s) is presumed dead
# and its runs go back to the queue. Both well inside the 60 s promised for a lost machine.
WORKER_HEARTBEAT_S = 2.0
# A run whose worker was lost this many times is failed instead of requeued: it may be what kills them.
MAX_LOSSES = 3
# Config key: "fail" makes a run without a checkpoint fail when its worker is lost, instead of starting over.
LOST_POLICY_KEY = "if_worker_lost"


def dispatch_mode(database_url: str | None = None) -> str:
    """"queue" when runs wait for the fleet, "local" when the caller launches the worker itself."""
    forced = settings.DISPATCH.get()
    if forced != "auto":
        return forced
    with read_scope(database_url) as s:
        return "queue" if worker_queries.any_live_worker(s, settings.WORKER_STALE_AFTER_S.get()) else "local"


@dataclass(frozen=True)
class Needs:
    """What one node of a run asks of a worker."""

    kind: str  # "cpu" | "cuda" | "mps" | "any" (device "auto")
    processes: int  # processes on this node: GPUs for a CUDA run, gloo processes on a CPU
    nodes: int

    def describe(self) -> str:
        what = {"any": "any device", "cpu": "a CPU", "mps": "an Apple GPU"}.get(self.kind)
        if self.kind == "cuda":
            what = f"{self.processes} free CUDA GPU{'s' if self.processes > 1 else ''}"
        return what + (f" on each of {self.nodes} workers" if self.nodes > 1 else "")


def needs_of(config: dict[str, Any]) -> Needs:
    """The devices a run's config asks for; `gpus` counts the whole run, spread evenly over `nodes`."""
    device = str(config.get("device") or "auto").lower()
    nodes = max(1, int(config.get("nodes") or 1))
    gpus = max(1, int(config.get("gpus") or 1))
    return Needs(kind="any" if device == "auto" else device.split(":")[0], processes=max(1, gpus // nodes),
                 nodes=nodes)


def assign_devices(needs: Needs, offered: Sequence[str], busy: Sequence[str], free_slots: int) -> list[str] | None:
    """The worker's devices this run would get now, or None when it does not fit.

    A GPU holds one run at a time; the CPU is shared by up to the worker's --max-parallel runs.
    """
    if free_slots <= 0:
        return None
    free_gpus = [d for d in offered if d.startswith("cuda") and d not in busy]
    if needs.kind == "cuda" or (needs.kind == "any" and free_gpus):
        return free_gpus[:needs.processes] if len(free_gpus) >= needs.processes else None
    if needs.kind == "any":
        return ["cpu"] if "cpu" in offered else ["mps"] if "mps" in offered and "mps" not in busy else None
    if needs.kind == "mps":
        return ["mps"] if "mps" in offered and "mps" not in busy else None
    return ["cpu"] if needs.kind == "cpu" and "cpu" in offered else None


def could_ever_fit(needs: Needs, worker: Worker) -> bool:
    return assign_devices(needs, worker.devices or [], [], max(1, worker.max_parallel)) is not None


def unservable_reason(config: dict[str, Any], workers: Sequence[Worker]) -> str | None:
    """Why no live worker can take a run with `config` (None when one can): said instead of waiting silently."""
    needs = needs_of(config)
    if not workers:
        return ("no worker is running: start `protolab worker` on a machine that sees this database and the "
                "data folder (see the README, 'Several machines')")
    fitting = [w for w in workers if could_ever_fit(needs, w)]
    if len(fitting) >= needs.nodes:
        return None
    fleet = "; ".join(f"{w.name}: {', '.join(w.devices or []) or 'nothing'}" for w in workers)
    return f"no live worker offers {needs.describe()} (the fleet has {fleet})"


def requeue_run(s: Session, run: Run, reason: str, *, lost: bool) -> RunStatus:
    """Put an active run back in the queue, in the caller's transaction, resuming from its checkpoint if any.

    `lost`: its worker died (counted; after MAX_LOSSES the run fails); otherwise it was handed back on purpose.
    A run that was asked to stop meanwhile is cancelled instead. Returns the run's new status.
    """
    names = sorted({c.worker.name for c in worker_queries.claims_of_run(s, run.id)})
    worker_queries.delete_claims(s, run.id)
    run.pid, run.heartbeat_at = None, None
    if run.cancel_requested:
        run.status, run.finished_at, run.status_text = RunStatus.CANCELLED, utcnow(), "cancelled"
        return run.status
    losses = sum(1 for e in run.events or [] if e.get("event") == "requeued" and e.get("lost")) + int(lost)
    if lost and losses >= MAX_LOSSES:
        run.status, run.finished_at, run.status_text = RunStatus.FAILED, utcnow(), "failed: workers lost"
        run.error = f"{reason}; its worker was lost {losses} times, so it is not requeued again"
        return run.status
    resume = RunFiles.of(run.id).has_checkpoint()
    if lost and not resume and (run.config or {}).get(LOST_POLICY_KEY) == "fail":
        run.status, run.finished_at, run.status_text = RunStatus.FAILED, utcnow(), "failed: worker lost"
        run.error = f"{reason}; it had no checkpoint to resume from and was started with --if-worker-lost fail"
        return run.status
    run.status, run.finished_at, run.error = RunStatus.QUEUED, None, None
    run.status_text = f"queued again ({'resumes from its checkpoint' if resume else 'starts over'}): {reason}"[:500]
    run.config = {**run.config, "resume": resume}
    run.events = [*(run.events or []), {"event": "requeued", "reason": reason, "lost": lost, "workers": names,
                                        "resume": resume, "at": utcnow().isoformat(),
                                        "message": run.status_text}]
    return run.status


def placement(s: Session, run: Run) -> str | None:
    """Where a run runs or waits, in words (team mode only; None for a run that no worker touched)."""
    claims = worker_queries.claims_of_run(s, run.id)
    if claims:
        where = ", ".join(f"{c.worker.name} ({', '.join(c.devices)})" for c in claims)
        return f"on {where}" if run.status.is_active else f"ran on {where}"
    if run.status != RunStatus.QUEUED:
        return None
    ahead = worker_queries.queued_ahead(s, run.id)
    return f"in the queue, {ahead} run{'s' if ahead != 1 else ''} ahead"


@dataclass(frozen=True)
class FleetMember:
    """One daemon as the Home page shows it."""

    name: str
    host: str
    devices: list[str]
    gpu_memory_mb: dict[str, Any]
    state: str  # online | draining | stopped | lost, or "silent" while presumed dead but not yet retired
    heartbeat_at: Any
    runs: list[str]  # "#12 lstm (cuda:0)" for each active run it holds ("· trial 3 of search 2" for a trial)


def fleet_overview(s: Session) -> list[FleetMember]:
    """Every daemon that ever registered, live ones first, with the active runs each holds."""
    live = {w.id for w in worker_queries.live_workers(s, settings.WORKER_STALE_AFTER_S.get())}
    members = []
    for worker in worker_queries.all_workers(s):
        claims = [c for c in worker_queries.claims_of_worker(s, worker.id) if s.get(Run, c.run_id).status.is_active]
        trials = search_queries.trials_of_runs(s, [c.run_id for c in claims])  # a search's trials say so
        runs = [f"#{c.run_id} {s.get(Run, c.run_id).model_kind} ({', '.join(c.devices)})"
                + (f" · trial {trials[c.run_id].number} of search {trials[c.run_id].search_id}"
                   if c.run_id in trials else "") for c in claims]
        state = worker.state if worker.id in live or worker.state not in ("online", "draining") else "silent"
        members.append(FleetMember(worker.name, worker.host, list(worker.devices or []),
                                   dict(worker.gpu_memory_mb or {}), state, worker.heartbeat_at, runs))
    return sorted(members, key=lambda m: (m.state not in ("online", "draining"), m.name))


def run_placement(s: Session, run: Run) -> tuple[str | None, str | None]:
    """(where the run runs or waits, why no worker can take it) for the Train page; (None, None) on one machine."""
    live = worker_queries.live_workers(s, settings.WORKER_STALE_AFTER_S.get())
    claims = worker_queries.claims_of_run(s, run.id)
    waiting = run.status == RunStatus.QUEUED and not claims
    if not claims and not (waiting and (live or settings.DISPATCH.get() == "queue")):
        return None, None  # one machine, no fleet: as before
    return placement(s, run), unservable_reason(run.config or {}, live) if waiting else None
