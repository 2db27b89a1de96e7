"""The same app as a Ray Serve deployment, for replicas across machines
(`pip install "ray[serve]"`; Ray is also the engine of batch annotation).

`serve.ingress` is given a builder function, which Ray calls on each
replica as it starts (its documented form for an app built at replica
init): the pipeline is loaded once per replica and never pickled (only its
path and the settings travel), and Ray runs the app's lifespan (batcher
thread, warm-up, graceful finish) as it does for any ingress app.
"""

import dataclasses
from typing import Any, Optional

from fastapi import FastAPI
from ray import serve
from ray.serve import Application

from .server import load_app
from .settings import ServeSettings


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
    # plain data in the closure: Ray pickles the builder, not a pipeline
    settings_data = dataclasses.asdict(settings)

    def build_app() -> FastAPI:
        """Runs on each replica as it starts."""
        return load_app(pipeline, ServeSettings.from_dict(settings_data))

    ingress = serve.ingress(build_app)()
    return serve.deployment(**options)(ingress).bind()
