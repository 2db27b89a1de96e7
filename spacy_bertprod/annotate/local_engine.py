"""`--engine local`: the pending shards through one `nlp.pipe` call, with
spaCy's own multiprocessing (`n_process = --workers`), so each worker loads
the pipeline once for the whole run, not once a shard."""

import sys
from pathlib import Path
from typing import Iterator, List, Tuple

import spacy
from tqdm import tqdm

from .inputs import read_shard
from .records import InputDoc, Reject, Settings, ShardSpec
from .results import Collector, doc_output


def run_local(settings: Settings, root: Path, pending: List[ShardSpec], collector: Collector) -> None:
    nlp = spacy.load(settings.pipeline)
    show = settings.progress if settings.progress is not None else sys.stderr.isatty()
    bar = tqdm(total=sum(s.end - s.start for s in pending), unit="doc", unit_scale=True, disable=not show, dynamic_ncols=True)

    def texts() -> Iterator[Tuple[str, Tuple[int, InputDoc]]]:
        # runs in this process, also with n_process > 1 (spaCy feeds its
        # workers from here), so rejects go straight to the collector
        for spec in pending:
            for record in read_shard(root, spec, settings.text_key, settings.id_key):
                if isinstance(record, Reject):
                    collector.add_reject(spec.shard, record)
                    bar.update(1)
                else:
                    yield record.text, (spec.shard, record)

    try:
        for doc, (shard, item) in nlp.pipe(texts(), as_tuples=True, batch_size=settings.batch_size, n_process=settings.workers):
            collector.add(doc_output(nlp, item, shard, doc, docbin=settings.docbin))
            bar.update(1)
    finally:
        bar.close()
