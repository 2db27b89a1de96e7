"""An HTTP service for any bertprod pipeline (`pip install
"spacy-bertprod[serve]"`): FastAPI + uvicorn with dynamic batching,
health and readiness, Prometheus metrics and overload control.

`create_app(nlp, settings)` gives the app for a user's own ASGI stack;
`python -m spacy bertprod serve PIPELINE` runs it (server.py). One concern a
module: settings (limits), schema (JSON), batcher (queue and worker thread),
wordpieces (counting for the batcher), metrics, app (routes), server
(uvicorn and its worker processes). `create_app` is imported on first use,
so the CLI can read the settings' defaults without fastapi installed.
"""

from typing import Any

from .settings import ServeSettings

__all__ = ["create_app", "ServeSettings"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from .app import create_app

        return create_app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
