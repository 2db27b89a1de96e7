"""Dynamic batching: the texts of concurrent requests go through the
pipeline together, in one `nlp.pipe` call, on one worker thread.

The event loop only queues texts and awaits their results, so the server
keeps accepting while the pipeline runs (torch and ONNX Runtime release the
GIL in their kernels). The worker takes texts from the front of the queue
until the batch holds `max_batch_texts` texts or `max_batch_wordpieces`
wordpieces, or until the oldest text has waited `max_wait_ms`: an idle
worker waits a little for company. After a batch it also waits, at most
`max_regroup_ms`, until as many texts as it just answered have joined the
queue: clients that send their next request when answered come back
together, so their requests fill one batch instead of alternating in two
half-full ones. A request's texts may span batches; its answer is complete
when all are done.
"""

import asyncio
import logging
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable, Deque, List, Optional, Sequence

from ..errors import Errors
from ..memory import release_memory
from .settings import ServeSettings

logger = logging.getLogger("spacy_bertprod.serve")


@dataclass(frozen=True)
class Item:
    """One text to process and, for bertprod_qa, its questions."""

    text: str
    questions: Sequence[str] = ()
    wordpieces: int = 0


class QueueFull(Exception):
    """The queue cannot take the request's texts now (503)."""


class Closed(Exception):
    """The batcher is shutting down and takes nothing new (503)."""


class BatchFailed(Exception):
    """The pipeline raised on a batch holding the request's texts (500)."""


class Ticket:
    """One request's place in the queue and its answer: `future` gets the
    results in the order of the request's texts, or BatchFailed."""

    def __init__(self, n_items: int, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.future: "asyncio.Future[List[Any]]" = loop.create_future()
        self.results: List[Any] = [None] * n_items
        self.remaining = n_items
        self.dropped = False  # timed out or failed: its queued texts are gone

    def _settle(self, result: List[Any], error: Optional[BaseException]) -> None:
        """Answer from the worker thread: the future belongs to the loop."""

        def settle() -> None:
            if not self.future.done():
                if error is None:
                    self.future.set_result(result)
                else:
                    self.future.set_exception(error)

        self.loop.call_soon_threadsafe(settle)


@dataclass
class _Job:
    item: Item
    ticket: Ticket
    index: int
    queued_at: float = field(default_factory=time.monotonic)


#: what the worker calls on a batch: one result per item, in order
Process = Callable[[List[Item]], List[Any]]
#: told after each batch: texts, wordpieces, seconds, whether it succeeded
BatchObserver = Callable[[int, int, float, bool], None]


class DynamicBatcher:
    """A bounded queue of texts and the one thread that processes them."""

    def __init__(self, process: Process, settings: ServeSettings, *, warmup: Optional[Callable[[], None]] = None, on_batch: Optional[BatchObserver] = None) -> None:
        self.process = process
        self.settings = settings
        self.warmup = warmup
        self.on_batch = on_batch
        self.ready = threading.Event()
        self._queue: Deque[_Job] = deque()
        self._queued_wordpieces = 0
        self._cond = threading.Condition()
        self._closed = False
        self._batches = 0
        # after a batch: texts to wait for, and until when (monotonic seconds)
        self._regroup_texts = 0
        self._regroup_until = 0.0
        self._thread: Optional[threading.Thread] = None

    @property
    def queued_texts(self) -> int:
        return len(self._queue)

    def start(self) -> None:
        """Warm up and serve on a new thread (requests queued before the
        warm-up ends wait for it)."""
        self._thread = threading.Thread(target=self._run, name="bertprod-batcher", daemon=True)
        self._thread.start()

    def submit(self, items: Sequence[Item]) -> Ticket:
        """Queue a request's texts (from the event loop); QueueFull if they
        do not fit, Closed after `close`."""
        ticket = Ticket(len(items), asyncio.get_running_loop())
        if not items:
            ticket.future.set_result([])
            return ticket
        with self._cond:
            if self._closed:
                raise Closed(Errors.E130)
            if len(self._queue) + len(items) > self.settings.max_queue:
                raise QueueFull(Errors.E126.format(queued=len(self._queue), limit=self.settings.max_queue))
            for index, item in enumerate(items):
                self._queue.append(_Job(item, ticket, index))
                self._queued_wordpieces += item.wordpieces
            self._cond.notify()
        return ticket

    def drop(self, ticket: Ticket) -> int:
        """Take a request's texts that have not started out of the queue (a
        timed-out request is not processed later for nothing); returns how
        many were dropped."""
        with self._cond:
            ticket.dropped = True
            return self._remove(ticket)

    def close(self) -> None:
        """Take no new requests, finish the queued ones, stop the thread."""
        with self._cond:
            self._closed = True
            self._cond.notify()
        if self._thread is not None:
            self._thread.join()

    def _remove(self, ticket: Ticket) -> int:
        kept = [job for job in self._queue if job.ticket is not ticket]
        dropped = len(self._queue) - len(kept)
        self._queue = deque(kept)
        self._queued_wordpieces = sum(job.item.wordpieces for job in kept)
        return dropped

    def _full(self) -> bool:
        return len(self._queue) >= self.settings.max_batch_texts or self._queued_wordpieces >= self.settings.max_batch_wordpieces

    def _take(self) -> Optional[List[_Job]]:
        """The next batch, or None once closed with nothing left."""
        max_wait = self.settings.max_wait_ms / 1000
        with self._cond:
            while True:
                while not self._queue and not self._closed:
                    self._cond.wait()
                if not self._queue:
                    return None
                # the texts just answered come back: wait for them (see the module docstring)
                regroup = self._regroup_until - time.monotonic()
                if regroup > 0 and len(self._queue) < self._regroup_texts and not self._full() and not self._closed:
                    self._cond.wait(regroup)
                    continue
                # wait for company until the oldest text has waited max_wait
                remaining = self._queue[0].queued_at + max_wait - time.monotonic()
                if remaining <= 0 or self._full() or self._closed:
                    break
                self._cond.wait(remaining)
            batch: List[_Job] = []
            wordpieces = 0
            while self._queue and len(batch) < self.settings.max_batch_texts:
                job = self._queue[0]
                if batch and wordpieces + job.item.wordpieces > self.settings.max_batch_wordpieces:
                    break
                batch.append(self._queue.popleft())
                wordpieces += job.item.wordpieces
            self._queued_wordpieces -= wordpieces
            return batch

    def _run(self) -> None:
        if self.warmup is not None:
            try:
                self.warmup()
            except Exception:
                logger.exception("warm-up failed; the server stays not ready")
            else:
                self.ready.set()
        else:
            self.ready.set()
        while (batch := self._take()) is not None:
            self._run_batch(batch)
            with self._cond:
                self._regroup_texts = min(self.settings.max_batch_texts, len(self._queue) + len(batch))
                self._regroup_until = time.monotonic() + self.settings.max_regroup_ms / 1000

    def _run_batch(self, batch: List[_Job]) -> None:
        start = time.perf_counter()
        wordpieces = sum(job.item.wordpieces for job in batch)
        try:
            results = self.process([job.item for job in batch])
        except Exception as err:
            logger.exception("the pipeline failed on a batch of %d texts", len(batch))
            failure = BatchFailed(Errors.E128.format(err=f"{type(err).__name__}: {err}"))
            tickets = list({id(job.ticket): job.ticket for job in batch}.values())
            with self._cond:
                for ticket in tickets:
                    ticket.dropped = True
                    self._remove(ticket)
            for ticket in tickets:
                ticket._settle([], failure)
            ok = False
        else:
            for job, result in zip(batch, results):
                ticket = job.ticket
                ticket.results[job.index] = result
                ticket.remaining -= 1
                if ticket.remaining == 0 and not ticket.dropped:
                    ticket._settle(ticket.results, None)
            ok = True
        if self.on_batch is not None:
            self.on_batch(len(batch), wordpieces, time.perf_counter() - start, ok)
        self._batches += 1
        if self.settings.release_every and self._batches % self.settings.release_every == 0:
            release_memory()
