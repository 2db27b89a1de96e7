"""Batch annotation of a corpus (`python -m spacy bertprod annotate`):
JSONL, text or Parquet in, JSONL (and DocBin) shards out, on spaCy's own
multiprocessing or on Ray Data, resumable without losing or repeating a
document.

inputs.py      the input files, cut into shards by input index
local_engine   nlp.pipe with n_process workers
ray_engine     Ray Data: read tasks, an actor pool, shards gathered here
results.py     Doc -> output line (doc_annotations), records -> shards
outputs.py     atomic shard files and the manifest
runner.py      one run, from arguments to summary
"""

from .records import RunSummary, Settings
from .runner import annotate

__all__ = ["RunSummary", "Settings", "annotate"]
