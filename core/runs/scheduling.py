"""Which waiting runs may start now on a device: in queue order, with an express lane on the CPU so that a short
run never waits behind a long one (a 4-second EASE run once sat 6.5 minutes behind a 17-minute data audit).

A run is *short* when the estimate recorded as it was queued (core.runs.jobs.start_run: the Train page's, the
audit's) is at most SHORT_RUN_S; a run with no estimate counts as long, as every run did before. A device takes
`slots` runs at once (PROTOLAB_MAX_RUNS_PER_DEVICE on one machine, a daemon's --max-parallel in the fleet) and a
CPU PROTOLAB_EXPRESS_SLOTS more, for short runs only: a long run never takes the room a short one is promised, so
at most `slots` long runs ever share the cores, and the short run beside them shares the cores through the thread
governor (core.runs.device.CpuThreadGovernor). A GPU has no express lane: two runs on one card compete for its
memory, not only its time. The same rule decides for every worker process of one machine (each reads the same rows)
and for each fleet daemon (its own children), so it holds with several workers.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from core import settings

SHORT_RUN_S = 60.0  # an estimate at most this long may use the express lane
ESTIMATE_EVENT = "estimate"  # the run event that carries its pre-flight estimate


@dataclass(frozen=True)
class Waiting:
    """A queued run as the scheduler sees it."""

    run_id: int
    short: bool


def estimate_event(seconds: float) -> dict[str, Any]:
    """The event a run is queued with when its time was estimated before it started."""
    return {"event": ESTIMATE_EVENT, "seconds": round(float(seconds), 1)}


def estimated_seconds(events: Iterable[Mapping[str, Any]] | None) -> float | None:
    """The last pre-flight estimate among a run's events, or None when nobody estimated it."""
    found = [e.get("seconds") for e in events or [] if e.get("event") == ESTIMATE_EVENT]
    return float(found[-1]) if found and found[-1] is not None else None


def is_short(events: Iterable[Mapping[str, Any]] | None) -> bool:
    seconds = estimated_seconds(events)
    return seconds is not None and seconds <= SHORT_RUN_S


def express_slots(device_kind: str) -> int:
    """Extra places for short runs on a device of this kind (only the CPU has them)."""
    return settings.EXPRESS_SLOTS.get() if device_kind == "cpu" else 0


def admitted(running: Sequence[bool], queued: Sequence[Waiting], slots: int, express: int) -> list[int]:
    """The ids of the `queued` runs (oldest first) that may start now, beside the `running` ones (each given as
    whether it is short): first come, first served, except that a long run that must wait does not hold up a short
    one behind it."""
    total, long = len(running), sum(not short for short in running)
    starting = []
    for run in queued:
        if total >= slots + express:
            break
        if run.short or long < slots:
            starting.append(run.run_id)
            total, long = total + 1, long + (not run.short)
    return starting


def free_slots(running: Sequence[bool], short: bool, slots: int, express: int) -> int:
    """How many places a run (short or not) still finds beside the `running` ones."""
    total, long = len(running), sum(not s for s in running)
    room = slots + express - total
    return room if short else min(room, slots - long)


def waiting_text(running: Sequence[bool], device_kind: str, short: bool) -> str:
    """The status line of a run that waits its turn."""
    count = len(running)
    text = f"queued: waiting for {count} run{'s' if count != 1 else ''} on {device_kind}"
    if not short and express_slots(device_kind) > 0:
        text += f" (runs estimated under {SHORT_RUN_S:.0f} s start beside it)"
    return text
