"""`--engine ray`: Ray Data over the pending shards. One read task per
shard reads its records (seeking in the input files, as the local engine
does, so shards and rejects are the same), `map_batches` sends them to a
pool of `--workers` actors that each load the pipeline once (CPU or GPU
actors), and this process gathers the results into shards and writes them.

Ray is imported here only: it is an optional extra (`spacy-bertprod[ray]`).
On a cluster the pipeline (a path or an installed package) and the input
files must be readable at the same paths on every node.
"""

import json
import os
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any, Dict, List

import numpy as np
import spacy
from spacy.language import Language

from ..errors import Errors
from ..threads import set_threads
from .inputs import read_rows
from .records import DocOutput, InputDoc, Reject, Settings, ShardSpec
from .results import Collector, doc_output

#: rows per call into an actor, in units of --batch-size: fewer, larger
#: Arrow batches cost less per document than one call per spaCy batch
BATCHES_PER_CALL = 4


class RayAnnotator:
    """A Ray actor: loads the pipeline once, then annotates batches of rows;
    rejects pass through to the driver unchanged.

    Every torch call (the load and each batch) runs on one thread of the
    actor's own: Ray Data calls the actor from a thread that is not the one
    that ran __init__, and torch's OpenMP keeps a thread team per calling
    thread. With two teams on the actor's cores OpenMP stops spinning
    between parallel regions, and the encoder ran markedly slower on 2
    cores (bench/reported/annotate_before_ray_fixes.json, before this)."""

    def __init__(self, pipeline: str, batch_size: int, docbin: bool, gpu: bool, threads: int) -> None:
        self.batch_size = batch_size
        self.docbin = docbin
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="bertprod-annotator")
        self.nlp: Language = self._thread.submit(self._load, pipeline, gpu, threads).result()

    @staticmethod
    def _load(pipeline: str, gpu: bool, threads: int) -> Language:
        # the encoders run on as many threads as the actor has CPUs, so the
        # actors on a node share its cores instead of each taking all of them
        set_threads(threads)
        if gpu:
            spacy.prefer_gpu()
        return spacy.load(pipeline)

    def __call__(self, batch: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
        return self._thread.submit(self._annotate, batch).result()

    def _annotate(self, batch: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
        n = len(batch["index"])
        lines: List[str] = [str(r) for r in batch["record"]]
        words = np.zeros(n, dtype="int64")
        blobs: List[bytes] = [b""] * n
        docs = [i for i in range(n) if batch["kind"][i] == "doc"]
        items = [InputDoc(**json.loads(lines[i])) for i in docs]
        for i, item, doc in zip(docs, items, self.nlp.pipe((item.text for item in items), batch_size=self.batch_size)):
            output = doc_output(self.nlp, item, int(batch["shard"][i]), doc, docbin=self.docbin)
            lines[i], words[i], blobs[i] = output.line, output.words, output.docbin or b""
        return {"shard": batch["shard"], "index": batch["index"], "kind": batch["kind"], "line": np.array(lines, dtype=object), "words": words, "docbin": np.array(blobs, dtype=object)}


def default_cpus_per_worker(ray: Any, workers: int) -> float:
    """The cluster's CPUs shared out over the actors (torch in each runs on
    that many threads), but no more than the largest node has, or the actor
    would never be placed."""
    total = ray.cluster_resources().get("CPU", 1.0)
    largest = max((node["Resources"].get("CPU", 0.0) for node in ray.nodes() if node.get("Alive")), default=total)
    return float(max(1, min(int(total // workers), int(largest))))


def run_ray(settings: Settings, root: Path, pending: List[ShardSpec], collector: Collector) -> None:
    try:
        import ray
        import ray.data
    except ImportError:
        raise ValueError(Errors.E144) from None
    started = not ray.is_initialized()
    if started and settings.address:
        ray.init(address=settings.address)
    elif started:
        ray.init(num_cpus=os.cpu_count(), include_dashboard=False)
    try:
        if not pending:
            return
        cpus = settings.cpus_per_worker or default_cpus_per_worker(ray, settings.workers)
        items = [{"spec": json.dumps(spec.to_json())} for spec in pending]
        read = partial(read_rows, root=str(root.resolve()), text_key=settings.text_key, id_key=settings.id_key)
        dataset = (
            ray.data.from_items(items, override_num_blocks=len(items))
            # reading is light (milliseconds a shard against seconds of
            # annotation): it takes no CPU from the actors' share, and one
            # task at a time, as each task in flight starts a worker process
            # (a Python start and imports: seconds of the actors' CPU; with
            # no limit, Ray warned of 16 worker processes for 20 shards)
            .flat_map(read, num_cpus=0, compute=ray.data.TaskPoolStrategy(size=1))
            .map_batches(
                RayAnnotator,
                fn_constructor_kwargs={"pipeline": settings.pipeline, "batch_size": settings.batch_size, "docbin": settings.docbin, "gpu": settings.gpus_per_worker > 0, "threads": max(1, int(cpus))},
                compute=ray.data.ActorPoolStrategy(size=settings.workers),
                num_cpus=cpus,
                num_gpus=settings.gpus_per_worker or None,
                batch_size=settings.batch_size * BATCHES_PER_CALL,
                batch_format="numpy",
            )
        )
        for batch in dataset.iter_batches(batch_format="numpy", batch_size=None):
            for index, shard, kind, line, words, blob in zip(batch["index"], batch["shard"], batch["kind"], batch["line"], batch["words"], batch["docbin"]):
                if kind == "reject":
                    collector.add_reject(int(shard), Reject(**json.loads(line)))
                else:
                    collector.add(DocOutput(int(index), int(shard), str(line), int(words), bytes(blob) or None))
    finally:
        if started:
            ray.shutdown()
