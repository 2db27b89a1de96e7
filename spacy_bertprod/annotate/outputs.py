"""Writing a run's output folder so that it is always consistent.

A shard is written to a temporary file in the same folder, flushed to disk
and renamed over its name (`os.replace` is atomic on one file system), so a
reader sees a whole shard or none. The manifest, written the same way after
the shard, is the record of what is done: a shard file it does not list
(the run was killed between the two writes) is written again, identically,
by the next run. So each document lands in exactly one listed shard.
"""

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Dict, List, Optional, Set

from spacy.tokens import DocBin

from ..errors import Errors
from .records import RunSummary, ShardBuffer, ShardSpec

MANIFEST = "manifest.json"
REJECTS = "rejects.jsonl"
FORMAT = "spacy-bertprod annotate v1"


def atomic_write(path: Path, data: bytes) -> None:
    """Write `data` to `path` through a temporary file in the same folder,
    fsynced before the rename; the temporary file never outlives a failure."""
    temp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with temp.open("wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temp, path)
    finally:
        if temp.exists():
            temp.unlink()
    _fsync_folder(path.parent)


def _fsync_folder(folder: Path) -> None:
    """Make the rename itself durable (where the OS lets a folder be opened)."""
    try:
        handle = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(handle)
    except OSError:
        pass
    finally:
        os.close(handle)


def fingerprint(arguments: Dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(arguments, sort_keys=True).encode("utf8")).hexdigest()


class Manifest:
    """manifest.json: the run's arguments and fingerprint, the shards done
    (document counts, input ranges, rejects) and each run's summary."""

    def __init__(self, folder: Path, arguments: Dict[str, Any], records: int, shards: int) -> None:
        self.path = folder / MANIFEST
        self.arguments = arguments
        self.data: Dict[str, Any] = {"format": FORMAT, "fingerprint": fingerprint(arguments), "arguments": arguments, "input": {"records": records, "shards": shards}, "shards": [], "runs": []}
        if self.path.exists():
            self._resume()

    def _resume(self) -> None:
        """Keep the shards of an earlier run with the same arguments; refuse
        a folder made with others, whose shards would not fit these."""
        try:
            old = json.loads(self.path.read_text(encoding="utf8"))
            old_fingerprint, old_arguments = old["fingerprint"], old["arguments"]
        except (ValueError, KeyError, TypeError) as err:
            raise ValueError(Errors.E146.format(path=self.path, err=err)) from None
        if old_fingerprint != self.data["fingerprint"]:
            keys = sorted(set(old_arguments) | set(self.arguments))
            changed = [f"{key}: {old_arguments.get(key)!r} -> {self.arguments.get(key)!r}" for key in keys if old_arguments.get(key) != self.arguments.get(key)]
            raise ValueError(Errors.E142.format(path=self.path.parent, changed="; ".join(changed)))
        self.data["shards"] = old["shards"]
        self.data["runs"] = old.get("runs", [])

    @property
    def done(self) -> Set[int]:
        return {entry["shard"] for entry in self.data["shards"]}

    def add_shard(self, entry: Dict[str, Any]) -> None:
        self.data["shards"] = sorted(self.data["shards"] + [entry], key=lambda e: e["shard"])

    def totals(self) -> Dict[str, int]:
        shards = self.data["shards"]
        done = {key: sum(e[key] for e in shards) for key in ("docs", "rejected", "words")}
        return {**done, "shards": len(shards), "records": done["docs"] + done["rejected"]}

    def save(self, summary: Optional[RunSummary] = None) -> None:
        """Write the manifest; with `summary`, record it as this run's."""
        if summary is not None:
            self.data["runs"].append(summary.to_json())
        totals = self.totals()
        self.data["totals"] = totals
        self.data["complete"] = totals["shards"] == self.data["input"]["shards"]
        atomic_write(self.path, (json.dumps(self.data, indent=1, ensure_ascii=False) + "\n").encode("utf8"))

    def write_rejects(self) -> None:
        """rejects.jsonl: the rejects of every shard done, in input order
        (rewritten whole, so a resumed run never repeats one)."""
        lines = [json.dumps(reject, ensure_ascii=False) + "\n" for entry in self.data["shards"] for reject in entry["rejects"]]
        atomic_write(self.path.parent / REJECTS, "".join(lines).encode("utf8"))


class ShardWriter:
    """Commits complete shards: the shard files, then the manifest."""

    def __init__(self, folder: Path, manifest: Manifest, summary: RunSummary, *, docbin: bool) -> None:
        self.folder = folder
        self.manifest = manifest
        self.summary = summary
        self.docbin = docbin

    def commit(self, buffer: ShardBuffer) -> None:
        spec = buffer.spec
        outputs = sorted(buffer.outputs, key=lambda o: o.index)
        rejects = sorted(buffer.rejects, key=lambda r: r.index)
        atomic_write(self.folder / f"{spec.name}.jsonl", "".join(o.line + "\n" for o in outputs).encode("utf8"))
        if self.docbin:
            docs = DocBin(store_user_data=True)
            for output in outputs:
                docs.merge(DocBin(store_user_data=True).from_bytes(output.docbin or b""))
            atomic_write(self.folder / f"{spec.name}.spacy", docs.to_bytes())
        words = sum(o.words for o in outputs)
        self.manifest.add_shard(shard_entry(spec, len(outputs), words, [r.to_json() for r in rejects], docbin=self.docbin))
        self.manifest.save()
        self.summary.docs += len(outputs)
        self.summary.words += words
        self.summary.rejected += len(rejects)
        self.summary.shards_written += 1


def shard_entry(spec: ShardSpec, docs: int, words: int, rejects: List[Dict[str, Any]], *, docbin: bool) -> Dict[str, Any]:
    """A shard's manifest entry: its files, its input range (global indices
    and where they sit in the input files) and its counts."""
    return {
        "shard": spec.shard,
        "file": f"{spec.name}.jsonl",
        "docbin": f"{spec.name}.spacy" if docbin else None,
        "start": spec.start,
        "end": spec.end,
        "inputs": [{"source": p.source, "first_line": p.line, "records": p.count} for p in spec.pieces],
        "docs": docs,
        "rejected": len(rejects),
        "words": words,
        "rejects": rejects,
    }
