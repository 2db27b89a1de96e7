"""One annotation run: check the arguments, plan the shards, open (or
resume) the output folder, let the engine fill the pending shards, and
record the summary."""

import json
import time
import warnings
from pathlib import Path
from typing import Any, Dict

from spacy.util import get_package_path, is_package

from ..errors import Errors, Warnings
from .inputs import input_files, plan_shards
from .outputs import Manifest, ShardWriter
from .records import RunSummary, Settings
from .results import Collector

ENGINES = ("local", "ray")


def check_settings(settings: Settings) -> None:
    if settings.engine not in ENGINES:
        raise ValueError(Errors.E143.format(engine=settings.engine, engines=", ".join(ENGINES)))
    for name in ("workers", "batch_size", "shard_size"):
        if getattr(settings, name) < 1:
            raise ValueError(Errors.E145.format(option="--" + name.replace("_", "-"), value=getattr(settings, name)))
    if settings.engine == "local":
        ignored = [f"--{opt}" for opt, value in (("address", settings.address), ("gpus-per-worker", settings.gpus_per_worker), ("cpus-per-worker", settings.cpus_per_worker)) if value]
        if ignored:
            warnings.warn(Warnings.W030.format(options=", ".join(ignored)), stacklevel=2)


def pipeline_identity(pipeline: str) -> Dict[str, Any]:
    """What names the pipeline in the fingerprint: its folder (resolved) or
    package name, and its meta's name, version and components, so a resume
    with another pipeline is refused."""
    path = Path(pipeline)
    if path.exists():
        where, meta_path = str(path.resolve()), path / "meta.json"
    elif is_package(pipeline):
        where, meta_path = pipeline, get_package_path(pipeline) / "meta.json"
    else:
        return {"pipeline": pipeline}
    meta = json.loads(meta_path.read_text(encoding="utf8")) if meta_path.exists() else {}
    return {"pipeline": where, "meta": {key: meta.get(key) for key in ("lang", "name", "version", "pipeline")}}


def annotate(settings: Settings) -> RunSummary:
    """Annotate the input into `settings.output_dir`, skipping the shards an
    earlier run with the same arguments already wrote."""
    check_settings(settings)
    root, folder = Path(settings.input_path), Path(settings.output_dir)
    files = input_files(root)
    shards = plan_shards(files, settings.shard_size)
    arguments = {**pipeline_identity(settings.pipeline), **settings.fingerprint_arguments(), "inputs": [[source, path.stat().st_size] for source, path, _ in files]}
    folder.mkdir(parents=True, exist_ok=True)
    manifest = Manifest(folder, arguments, records=shards[-1].end if shards else 0, shards=len(shards))
    pending = [spec for spec in shards if spec.shard not in manifest.done]
    summary = RunSummary(engine=settings.engine, workers=settings.workers, shards_skipped=len(shards) - len(pending))
    collector = Collector(ShardWriter(folder, manifest, summary, docbin=settings.docbin), pending, strict=settings.strict)
    start = time.perf_counter()
    try:
        if settings.engine == "ray":
            from .ray_engine import run_ray

            run_ray(settings, root, pending, collector)
        else:
            from .local_engine import run_local

            run_local(settings, root, pending, collector)
        collector.finish()
    finally:
        summary.seconds = time.perf_counter() - start
        summary.totals = manifest.totals()
        manifest.save(summary)
        manifest.write_rejects()
    return summary
