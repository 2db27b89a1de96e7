"""`create_app(nlp, settings)`: the FastAPI app of a loaded pipeline.

Routes: POST /v1/process (texts -> `doc_annotations` per text, through the
dynamic batcher), GET /health (the process answers), GET /ready (the
pipeline is loaded and has run once: a load balancer sends traffic only
then), GET /metrics (Prometheus). The lifespan pins glibc's mmap threshold
(`mmap_threshold`, unless 0), starts the batcher's thread and, at shutdown,
finishes what is queued.
"""

import asyncio
import time
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator, Callable, Dict, List, Optional, Union

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST
from spacy.language import Language
from spacy.tokens import Doc
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..errors import Errors
from ..memory import pin_mmap_threshold
from ..pipeline.annotations import doc_annotations
from ..threads import set_threads
from .batcher import BatchFailed, Closed, DynamicBatcher, Item, QueueFull
from .metrics import ServeMetrics
from .schema import ErrorResponse, ProcessRequest, ProcessResponse
from .settings import ServeSettings
from .wordpieces import wordpiece_counter

PROCESS_PATH = "/v1/process"
WARMUP_TEXT = "Angela Merkel visited the Siemens plant in Munich."


def annotator(nlp: Language) -> Callable[[List[Item]], List[Dict[str, Any]]]:
    """What the batcher runs: one `nlp.pipe` call over the batch, each Doc
    as `doc_annotations` JSON, in the items' order."""

    def process(items: List[Item]) -> List[Dict[str, Any]]:
        docs = []
        for item in items:
            doc = nlp.make_doc(item.text)
            if item.questions:
                doc._.questions = list(item.questions)
            docs.append(doc)
        return [doc_annotations(nlp, doc) for doc in nlp.pipe(docs, batch_size=max(len(docs), 1))]

    return process


def has_qa(nlp: Language) -> bool:
    return any(nlp.get_pipe_meta(name).factory == "bertprod_qa" for name in nlp.pipe_names) and Doc.has_extension("questions")


def error(status: int, message: str, headers: Optional[Dict[str, str]] = None) -> JSONResponse:
    return JSONResponse({"detail": message}, status_code=status, headers=headers)


class RequestMetrics:
    """Counts every answer of /v1/process by status with its latency,
    including those FastAPI gives before the route runs (413 on the body
    size, 422 on the JSON)."""

    def __init__(self, app: ASGIApp, metrics: ServeMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != PROCESS_PATH:
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            self.metrics.observe_request(status, time.perf_counter() - start)


class ProcessBody:
    """Reads a /v1/process body before FastAPI does, at most max_bytes of
    it: a larger body (by its Content-Length, or as its chunks arrive) gets
    a coded 413 and is not read further. The body is then handed on as JSON
    whatever its content type says (`curl -d '{...}'` sends a form type,
    which FastAPI would not parse as JSON)."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != PROCESS_PATH:
            await self.app(scope, receive, send)
            return
        too_large = error(413, Errors.E133.format(limit=self.max_bytes))
        length = dict(scope["headers"]).get(b"content-length", b"")
        if length.isdigit() and int(length) > self.max_bytes:
            await too_large(scope, receive, send)
            return
        chunks: List[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > self.max_bytes:
                await too_large(scope, receive, send)
                return
            if not message.get("more_body", False):
                break
        body: Optional[bytes] = b"".join(chunks)

        async def replay() -> Message:
            nonlocal body
            if body is None:
                return await receive()
            message: Message = {"type": "http.request", "body": body, "more_body": False}
            body = None
            return message

        headers = [(k, v) for k, v in scope["headers"] if k != b"content-type"]
        await self.app({**scope, "headers": [*headers, (b"content-type", b"application/json")]}, replay, send)


def create_app(nlp: Language, settings: Optional[ServeSettings] = None) -> FastAPI:
    """A FastAPI app serving `nlp`; one app serves one server's lifetime
    (its batcher thread is not restarted)."""
    settings = settings or ServeSettings()
    metrics = ServeMetrics()
    process = annotator(nlp)
    count = wordpiece_counter(nlp)
    answers_questions = has_qa(nlp)

    def warmup() -> None:
        questions = ["Who visited Munich?"] if answers_questions else []
        process([Item(WARMUP_TEXT, questions)])
        metrics.ready.set(1)

    batcher = DynamicBatcher(process, settings, warmup=warmup, on_batch=metrics.observe_batch)
    metrics.watch_queue(lambda: batcher.queued_texts)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if settings.mmap_threshold:
            pin_mmap_threshold(settings.mmap_threshold)
        set_threads(settings.threads)
        batcher.start()
        yield
        # uvicorn has answered the requests in flight; finish what is queued
        await run_in_threadpool(batcher.close)

    app = FastAPI(
        title="spacy-bertprod",
        summary="A spaCy pipeline with bertprod components over HTTP, with dynamic batching",
        lifespan=lifespan,
    )
    app.add_middleware(ProcessBody, max_bytes=settings.max_body_bytes)
    app.add_middleware(RequestMetrics, metrics=metrics)
    app.state.batcher = batcher
    app.state.metrics = metrics
    app.state.settings = settings
    app.state.nlp = nlp

    errors: Dict[Union[int, str], Dict[str, Any]] = {
        code: {"model": ErrorResponse, "description": what}
        for code, what in [
            (413, "Body larger than max_body_bytes, a text longer than max_text_chars, or more texts than max_queue"),
            (500, "The pipeline failed on the batch holding this request"),
            (503, "Queue full (see Retry-After) or shutting down"),
            (504, "Not answered within request_timeout_s; the texts not started were dropped"),
        ]
    }

    @app.post(PROCESS_PATH, response_model=ProcessResponse, responses=errors)
    async def process_texts(body: ProcessRequest) -> Response:
        """Process the texts with the pipeline, batched with other requests:
        per text, what each component produced."""
        questions = body.questions or [[] for _ in body.texts]
        if body.questions is not None and any(questions) and not answers_questions:
            raise RequestValidationError([{"type": "value_error", "loc": ("body", "questions"), "msg": Errors.E123.format(pipes=nlp.pipe_names), "input": None}])
        for index, text in enumerate(body.texts):
            if len(text) > settings.max_text_chars:
                return error(413, Errors.E125.format(index=index, length=len(text), limit=settings.max_text_chars))
        if len(body.texts) > settings.max_queue:
            return error(413, Errors.E129.format(n_texts=len(body.texts), limit=settings.max_queue))
        items = [Item(text, tuple(qs), count(text, qs)) for text, qs in zip(body.texts, questions)]
        try:
            ticket = batcher.submit(items)
        except (QueueFull, Closed) as err:
            return error(503, str(err), {"Retry-After": str(settings.retry_after_s)})
        try:
            results = await asyncio.wait_for(asyncio.shield(ticket.future), settings.request_timeout_s)
        except asyncio.TimeoutError:
            batcher.drop(ticket)
            return error(504, Errors.E127.format(timeout=settings.request_timeout_s))
        except asyncio.CancelledError:  # the client went away
            batcher.drop(ticket)
            raise
        except BatchFailed as err:
            return error(500, str(err))
        return JSONResponse({"results": results})

    @app.get("/health")
    async def health() -> Dict[str, str]:
        """Liveness: the process answers."""
        return {"status": "ok"}

    @app.get("/ready", responses={503: {"model": ErrorResponse, "description": "Still warming up"}})
    async def ready() -> Response:
        """Readiness: the pipeline is loaded and has processed a text."""
        if batcher.ready.is_set():
            return JSONResponse({"status": "ready", "pipeline": nlp.pipe_names})
        return error(503, Errors.E134)

    @app.get("/metrics", response_class=PlainTextResponse)
    async def prometheus() -> Response:
        """Prometheus text format."""
        return Response(metrics.render(), media_type=CONTENT_TYPE_LATEST)

    return app
