"""Micro-batching: concurrent requests to one model, arriving within a few milliseconds, are scored together.

One collector task per model takes the first waiting request, gathers whatever else arrives within `max_wait_ms`
(up to `max_batch` texts), and scores the lot in one call on a worker thread, so the event loop keeps accepting
requests meanwhile. While a batch is being scored, new requests queue and form the next batch: the busier the
server, the fuller the batches, so throughput grows with load.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True)
class BatchConfig:
    max_batch: int = 64  # texts per model call: past this a batch only adds latency on a CPU
    max_wait_ms: float = 5.0  # how long the first request of a batch waits for company
    workers: int = 1  # batches scored at once, each on its own thread (see serving_workers)


def serving_workers(threads_per_call: int) -> int:
    """Batches to score at once: enough to keep every core busy when each model call uses `threads_per_call`
    intra-op threads (2 on the 2-core team box with one thread per call), at most 4."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, min(4, cores // max(1, threads_per_call)))


@dataclass
class BatchStats:
    """What the batcher did, for /v1/runs and the tests: sizes of the most recent batches and totals."""

    batches: int = 0
    texts: int = 0
    largest: int = 0
    recent: deque[int] = field(default_factory=lambda: deque(maxlen=1000))

    def add(self, size: int) -> None:
        self.batches, self.texts, self.largest = self.batches + 1, self.texts + size, max(self.largest, size)
        self.recent.append(size)

    def as_dict(self) -> dict[str, Any]:
        return {"batches": self.batches, "texts": self.texts, "largest": self.largest,
                "mean": round(self.texts / self.batches, 2) if self.batches else None}


@dataclass
class _Request:
    texts: list[str]
    future: asyncio.Future[tuple[np.ndarray, list[bool]]]


class MicroBatcher:
    """Batches `score(texts) -> (probabilities (n, labels), truncated flags)` calls across requests."""

    def __init__(self, score: Callable[[Sequence[str]], tuple[np.ndarray, list[bool]]],
                 cfg: BatchConfig = BatchConfig()) -> None:
        self.score, self.cfg, self.stats = score, cfg, BatchStats()
        # A few threads per model (cfg.workers): inference only reads the weights, so calls may overlap; each
        # runs its own intra-op threads. While all are busy, requests queue and the next batch grows.
        self._executor = ThreadPoolExecutor(max_workers=max(1, cfg.workers), thread_name_prefix="protolab-model")
        self._slots: asyncio.Semaphore | None = None
        self._queue: asyncio.Queue[_Request] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._lock = threading.Lock()

    @property
    def waiting(self) -> int:
        """Requests queued for the next batch (not counting the batch being scored)."""
        return self._queue.qsize() if self._queue is not None else 0

    async def submit(self, texts: list[str]) -> tuple[np.ndarray, list[bool]]:
        """Score `texts` in whichever batch they land in; results come back in their order."""
        queue = self._ensure_started()
        future: asyncio.Future[tuple[np.ndarray, list[bool]]] = asyncio.get_running_loop().create_future()
        await queue.put(_Request(list(texts), future))
        return await future

    def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
        self._executor.shutdown(wait=False, cancel_futures=True)

    def _ensure_started(self) -> asyncio.Queue[_Request]:
        loop = asyncio.get_running_loop()
        with self._lock:
            # A new event loop (a test client, a restarted server) gets its own queue and collector.
            if self._loop is not loop or self._task is None or self._task.done():
                self._loop, self._queue = loop, asyncio.Queue()
                self._slots = asyncio.Semaphore(max(1, self.cfg.workers))
                self._task = loop.create_task(self._collect(self._queue))
            assert self._queue is not None
            return self._queue

    async def _collect(self, queue: asyncio.Queue[_Request]) -> None:
        loop = asyncio.get_running_loop()
        assert self._slots is not None
        slots, carry = self._slots, None
        running: set[asyncio.Task[None]] = set()
        while True:
            await slots.acquire()  # a free worker first: while none is, requests pile up into a fuller batch
            batch = [carry or await queue.get()]
            carry = None
            if queue.empty():
                # Alone so far: wait a moment for company. (When requests queued up behind the previous
                # batch they are batched at once, without waiting.) A plain sleep, not wait_for(queue.get()):
                # cancelling a get() on a timeout can lose an item on Python 3.11.
                await asyncio.sleep(self.cfg.max_wait_ms / 1000)
            size = len(batch[0].texts)
            while size < self.cfg.max_batch and not queue.empty():
                nxt = queue.get_nowait()
                if size + len(nxt.texts) > self.cfg.max_batch:
                    carry = nxt  # too big to join: it opens the next batch (a request is never split)
                    break
                batch.append(nxt)
                size += len(nxt.texts)
            task = loop.create_task(self._run(loop, batch, slots))
            running.add(task)  # a reference, so the task is not collected mid-flight
            task.add_done_callback(running.discard)

    async def _run(self, loop: asyncio.AbstractEventLoop, batch: list[_Request], slots: asyncio.Semaphore) -> None:
        texts = [t for r in batch for t in r.texts]
        self.stats.add(len(texts))
        try:
            proba, cut = await loop.run_in_executor(self._executor, self.score, texts)
        except Exception as exc:  # every request of the batch hears about it; the collector goes on
            for r in batch:
                if not r.future.done():
                    r.future.set_exception(exc)
            return
        finally:
            slots.release()
        start = 0
        for r in batch:
            end = start + len(r.texts)
            if not r.future.done():  # a client that hung up has its future cancelled
                r.future.set_result((proba[start:end], list(cut[start:end])))
            start = end
