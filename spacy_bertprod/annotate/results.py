"""From a processed Doc to what the writer stores, and the gathering of
results into shards. Both engines go through here, so they write the same
bytes for the same documents."""

import json
from typing import Dict, Iterable, Optional

from spacy.language import Language
from spacy.tokens import Doc, DocBin

from ..errors import Errors
from ..pipeline.annotations import doc_annotations
from .outputs import ShardWriter
from .records import DocOutput, InputDoc, Reject, ShardBuffer, ShardSpec


def doc_output(nlp: Language, item: InputDoc, shard: int, doc: Doc, *, docbin: bool) -> DocOutput:
    """The output line of `item` (its id, source, line, text, carried
    fields and `doc_annotations`), and with `docbin` the Doc's bytes."""
    line = json.dumps({**item.head(), "annotations": doc_annotations(nlp, doc)}, ensure_ascii=False, default=str)
    blob = DocBin(store_user_data=True, docs=[doc]).to_bytes() if docbin else None
    return DocOutput(item.index, shard, line, len(doc), blob)


class Collector:
    """Gathers documents and rejects, in any order, into their shards and
    commits each shard once all its records are in. `finish` checks that
    none is left half-gathered: a record that went missing is a bug, not a
    shorter shard."""

    def __init__(self, writer: ShardWriter, pending: Iterable[ShardSpec], *, strict: bool) -> None:
        self.writer = writer
        self.strict = strict
        self.buffers: Dict[int, ShardBuffer] = {spec.shard: ShardBuffer(spec) for spec in pending}

    def add(self, output: DocOutput) -> None:
        buffer = self.buffers[output.shard]
        buffer.outputs.append(output)
        self._commit_if_complete(buffer)

    def add_reject(self, shard: int, reject: Reject) -> None:
        if self.strict:
            raise ValueError(Errors.E141.format(line=reject.line, source=reject.source, error=reject.error))
        buffer = self.buffers[shard]
        buffer.rejects.append(reject)
        self._commit_if_complete(buffer)

    def _commit_if_complete(self, buffer: ShardBuffer) -> None:
        if buffer.complete:
            self.writer.commit(buffer)
            del self.buffers[buffer.spec.shard]

    def finish(self) -> None:
        missing: Optional[ShardBuffer] = next(iter(self.buffers.values()), None)
        if missing is not None:
            got = len(missing.outputs) + len(missing.rejects)
            raise RuntimeError(f"shard {missing.spec.shard} got {got} of its {missing.spec.end - missing.spec.start} records: the engine lost some")
