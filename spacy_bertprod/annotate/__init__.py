"""Batch annotation of a corpus (`python -m spacy bertprod annotate`):
JSONL, text or Parquet in, JSONL (and DocBin) shards out, on spaCy's own
multiprocessing or on Ray Data, resumable without losing or repeating a
document.

inputs.py      the input files, cut into shards by input index; a Ray read task
records.py     the records passed between reading, the engines and the shards
local_engine   nlp.pipe with n_process workers
ray_engine     Ray Data: read tasks, an actor pool, shards gathered here
results.py     Doc -> output line (doc_annotations), records -> shards
outputs.py     atomic shard files and the manifest
runner.py      one run, from arguments to summary
"""

from typing import Any

from .records import RunSummary, Settings

__all__ = ["RunSummary", "Settings", "annotate"]


def __getattr__(name: str) -> Any:
    # imported on first use: a Ray read task (inputs.read_rows) imports this
    # package, and runner.py imports spaCy (and with it torch)
    if name == "annotate":
        from .runner import annotate

        return annotate
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
