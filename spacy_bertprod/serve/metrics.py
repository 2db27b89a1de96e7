"""Prometheus metrics of one app, in the app's own registry: several apps in
one process (tests, a user's ASGI stack) do not clash over metric names, and
`/metrics` shows only this app's figures."""

from typing import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

#: request latencies from 1 ms to a minute
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
BATCH_TEXT_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
BATCH_WORDPIECE_BUCKETS = (64, 256, 1024, 4096, 16384, 65536)


class ServeMetrics:
    """Requests by status, batch sizes, queue depth and latencies."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter("bertprod_requests", "Requests to /v1/process, by HTTP status", ["status"], registry=r)
        self.request_seconds = Histogram("bertprod_request_seconds", "Time from a request's arrival to its answer", buckets=LATENCY_BUCKETS, registry=r)
        self.batch_texts = Histogram("bertprod_batch_texts", "Texts in one nlp.pipe call", buckets=BATCH_TEXT_BUCKETS, registry=r)
        self.batch_wordpieces = Histogram("bertprod_batch_wordpieces", "Wordpieces in one nlp.pipe call", buckets=BATCH_WORDPIECE_BUCKETS, registry=r)
        self.batch_seconds = Histogram("bertprod_batch_seconds", "Time of one nlp.pipe call with its JSON", buckets=LATENCY_BUCKETS, registry=r)
        self.failed_batches = Counter("bertprod_failed_batches", "nlp.pipe calls that raised", registry=r)
        self.queue_texts = Gauge("bertprod_queue_texts", "Texts waiting for a batch", registry=r)
        self.ready = Gauge("bertprod_ready", "1 once the pipeline is loaded and warmed up", registry=r)

    def watch_queue(self, depth: Callable[[], float]) -> None:
        """Read the queue depth when scraped, not on every change."""
        self.queue_texts.set_function(depth)

    def observe_batch(self, texts: int, wordpieces: int, seconds: float, ok: bool) -> None:
        self.batch_texts.observe(texts)
        self.batch_wordpieces.observe(wordpieces)
        self.batch_seconds.observe(seconds)
        if not ok:
            self.failed_batches.inc()

    def observe_request(self, status: int, seconds: float) -> None:
        self.requests.labels(status=str(status)).inc()
        self.request_seconds.observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)
