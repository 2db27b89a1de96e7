"""The same app as a Ray Serve deployment, for replicas across machines
(`pip install "ray[serve]"`; Ray is also the engine of batch annotation).

`serve.ingress` builds the app on each replica (`__serve_build_asgi_app__`),
so the pipeline is loaded once per replica and never pickled, and Ray runs
the app's lifespan (batcher thread, warm-up, graceful finish).
"""

import dataclasses
from typing import Any, Dict, Optional

from fastapi import FastAPI
from ray import serve
from ray.serve import Application

from .server import load_app
from .settings import ServeSettings


@serve.ingress()
class BertprodIngress:
    """One replica: a pipeline and its settings, served by `create_app`."""

    def __init__(self, pipeline: str, settings: Dict[str, Any]) -> None:
        self.pipeline = pipeline
        self.settings = ServeSettings.from_dict(settings)

    def __serve_build_asgi_app__(self) -> FastAPI:
        return load_app(self.pipeline, self.settings)


def deployment(pipeline: str, settings: Optional[ServeSettings] = None, **options: Any) -> Application:
    """A bound Ray Serve application serving `pipeline` (a path every node
    can read, or an installed package name); `options` go to
    `serve.deployment` (num_replicas, ray_actor_options, ...). Ray lets a
    replica hold only `max_ongoing_requests` requests at once (5 by
    default), which would cap its batches: the default here is
    max_batch_texts x 4, so a batch can fill while the previous one runs."""
    settings = settings or ServeSettings()
    options.setdefault("max_ongoing_requests", settings.max_batch_texts * 4)
    options.setdefault("name", "bertprod")
    return serve.deployment(**options)(BertprodIngress).bind(pipeline, dataclasses.asdict(settings))
