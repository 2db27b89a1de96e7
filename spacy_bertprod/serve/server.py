"""Running the app under uvicorn, in one process or in `workers` processes.

With one worker the pipeline is loaded here and the app object handed to
uvicorn. With more, uvicorn imports `app_from_env` in each worker process
(an app factory), which reads the pipeline and the settings from
environment variables that `run` sets, so each process loads the pipeline
once. Each process gets cores // workers torch threads, so N processes do
not oversubscribe the machine.
"""

import dataclasses
import os
import warnings
from pathlib import Path

import spacy
import uvicorn
from fastapi import FastAPI

from ..errors import Errors, Warnings
from ..threads import set_threads
from .app import create_app
from .settings import SETTINGS_ENV, ServeSettings

#: the environment variable naming the pipeline for uvicorn's worker processes
PIPELINE_ENV = "BERTPROD_SERVE_PIPELINE"


def cores() -> int:
    """CPU cores this process may run on (its affinity, e.g. a container's)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def worker_threads(threads: int, workers: int) -> int:
    """`threads`, or with 0 the cores shared out between the workers;
    warns (W020) when the processes ask for more threads than cores."""
    n = threads or max(1, cores() // workers)
    if n * workers > cores():
        warnings.warn(Warnings.W020.format(workers=workers, threads=n, cores=cores()), stacklevel=2)
    return n


def check_pipeline(pipeline: str) -> None:
    """A folder or an installed package (E121), checked before any worker
    starts, so a typo is one message, not N crashing processes."""
    if not Path(pipeline).is_dir() and not spacy.util.is_package(pipeline):
        raise OSError(Errors.E121.format(pipeline=pipeline))


def load_app(pipeline: str, settings: ServeSettings) -> FastAPI:
    """Load the pipeline (with the settings' thread count already set, so
    ONNX Runtime sessions follow it) and build the app."""
    set_threads(settings.threads)
    return create_app(spacy.load(pipeline), settings)


def app_from_env() -> FastAPI:
    """uvicorn's app factory in each worker process of `--workers N`."""
    pipeline = os.environ.get(PIPELINE_ENV, "")
    check_pipeline(pipeline)
    return load_app(pipeline, ServeSettings.from_env())


def run(pipeline: str, settings: ServeSettings, *, host: str = "127.0.0.1", port: int = 8080, workers: int = 1, log_level: str = "info") -> None:
    """Serve `pipeline` (a folder or a package name) until interrupted."""
    if workers < 1:
        raise ValueError(Errors.E120.format(name="workers", value=workers, expected="at least 1"))
    check_pipeline(pipeline)
    settings = dataclasses.replace(settings, threads=worker_threads(settings.threads, workers))
    if workers == 1:
        uvicorn.run(load_app(pipeline, settings), host=host, port=port, log_level=log_level)
        return
    os.environ[PIPELINE_ENV] = pipeline
    os.environ[SETTINGS_ENV] = settings.to_json()
    uvicorn.run(f"{__name__}:app_from_env", factory=True, host=host, port=port, workers=workers, log_level=log_level)
