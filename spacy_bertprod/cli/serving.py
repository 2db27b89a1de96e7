"""`bertprod serve`: a pipeline as an HTTP service (spacy_bertprod/serve).
fastapi and uvicorn are imported only when the command runs, so the rest of
the CLI works without the `[serve]` extra."""

from spacy.cli._util import Arg, Opt

from ..errors import Errors
from ..serve.settings import ServeSettings
from ._util import bertprod_cli, coded_errors_exit

#: the option defaults are the settings' defaults
DEFAULT = ServeSettings()


@bertprod_cli.command("serve")
def serve_cli(
    pipeline: str = Arg(..., help="Pipeline folder (e.g. training/ner/model-best) or installed package name"),
    host: str = Opt("127.0.0.1", "--host", help="Address to listen on (0.0.0.0: every interface)"),
    port: int = Opt(8080, "--port", "-p", help="Port"),
    workers: int = Opt(1, "--workers", "-w", help="Worker processes, each loading the pipeline once"),
    threads: int = Opt(DEFAULT.threads, "--threads", help="torch threads per worker (0: cores // workers)"),
    max_batch_texts: int = Opt(DEFAULT.max_batch_texts, "--max-batch-texts", help="Texts in one nlp.pipe call (1: no batching)"),
    max_batch_wordpieces: int = Opt(DEFAULT.max_batch_wordpieces, "--max-batch-wordpieces", help="Wordpieces in one nlp.pipe call (counted with the pipeline's tokenizer)"),
    max_wait_ms: float = Opt(DEFAULT.max_wait_ms, "--max-wait-ms", help="How long an idle worker waits for a batch to fill"),
    max_regroup_ms: float = Opt(DEFAULT.max_regroup_ms, "--max-regroup-ms", help="After a batch, how long the worker waits for as many texts as it just answered (0: no wait)"),
    max_queue: int = Opt(DEFAULT.max_queue, "--max-queue", help="Texts waiting at most; beyond, 503 with Retry-After"),
    max_body_bytes: int = Opt(DEFAULT.max_body_bytes, "--max-body-bytes", help="Request body size limit (413)"),
    max_text_chars: int = Opt(DEFAULT.max_text_chars, "--max-text-chars", help="Characters per text limit (413)"),
    request_timeout_s: float = Opt(DEFAULT.request_timeout_s, "--request-timeout", help="Seconds before a request gets 504 (its texts not started are dropped)"),
    release_every: int = Opt(DEFAULT.release_every, "--release-every", help="Return freed heap memory to the OS every N batches (0: never)"),
    mmap_threshold: int = Opt(DEFAULT.mmap_threshold, "--mmap-threshold", help="Bytes from which glibc maps a block on its own, pinned (0: glibc's moving threshold; larger: faster, RSS may climb)"),
    log_level: str = Opt("info", "--log-level", help="uvicorn's log level"),
) -> None:
    """Serve PIPELINE over HTTP with dynamic batching: POST /v1/process,
    GET /health, /ready, /metrics and the OpenAPI page /docs (needs
    `pip install "spacy-bertprod[serve]"`)."""
    with coded_errors_exit():
        try:
            from ..serve.server import run
        except ImportError as err:
            raise RuntimeError(Errors.E122.format(err=err)) from None
        settings = ServeSettings(
            max_batch_texts=max_batch_texts,
            max_batch_wordpieces=max_batch_wordpieces,
            max_wait_ms=max_wait_ms,
            max_regroup_ms=max_regroup_ms,
            max_queue=max_queue,
            max_body_bytes=max_body_bytes,
            max_text_chars=max_text_chars,
            request_timeout_s=request_timeout_s,
            threads=threads,
            release_every=release_every,
            mmap_threshold=mmap_threshold,
        )
        run(pipeline, settings, host=host, port=port, workers=workers, log_level=log_level)
