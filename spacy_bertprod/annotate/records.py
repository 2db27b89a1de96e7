"""What flows between the readers, the engines and the writer of a batch
annotation run. Everything here is plain data (picklable, JSON-able), so the
same objects go to spaCy's worker processes and to Ray actors."""

from dataclasses import asdict, dataclass, field
from typing import Any, Dict, List, Optional, Tuple


@dataclass(frozen=True)
class InputDoc:
    """One input document: its global index (its position among all records
    of all input files, the sole key of shard boundaries), where it came
    from, and what the output carries through."""

    index: int
    source: str  # file, relative to the input folder
    line: int  # 1-based line (JSONL, text) or row (Parquet)
    text: str
    id: Any
    fields: Dict[str, Any]

    def head(self) -> Dict[str, Any]:
        """The output record without its annotations."""
        return {"id": self.id, "source": self.source, "line": self.line, "text": self.text, "fields": self.fields}


@dataclass(frozen=True)
class Reject:
    """An input record that is not a document (invalid JSON, no text field,
    a text that is not a string): counted and reported, never annotated."""

    index: int
    source: str
    line: int
    error: str

    def to_json(self) -> Dict[str, Any]:
        return {"source": self.source, "line": self.line, "error": self.error}


@dataclass(frozen=True)
class Piece:
    """Part of a shard inside one input file: `count` records from byte
    `offset` (JSONL, text) or row `offset` (Parquet), the first on `line`,
    so a reader seeks straight to it."""

    source: str
    fmt: str  # "jsonl", "text" or "parquet"
    offset: int
    line: int
    count: int


@dataclass(frozen=True)
class ShardSpec:
    """Records [start, end) of the input, from one or more files. Shards are
    cut by input index alone, so every engine and every resumed run cuts the
    same ones."""

    shard: int
    start: int
    end: int
    pieces: Tuple[Piece, ...]

    @property
    def name(self) -> str:
        return f"shard-{self.shard:06d}"

    def to_json(self) -> Dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Dict[str, Any]) -> "ShardSpec":
        return cls(data["shard"], data["start"], data["end"], tuple(Piece(**p) for p in data["pieces"]))


@dataclass(frozen=True)
class DocOutput:
    """One annotated document as the writer needs it: its JSON line, its
    token count, and (with --docbin) the Doc as DocBin bytes."""

    index: int
    shard: int
    line: str
    words: int
    docbin: Optional[bytes] = None


@dataclass(frozen=True)
class Settings:
    """The arguments of a run. `fingerprint_arguments` are those that decide
    the output; the others (engine, workers, ...) only decide how fast it is
    made, so a run may resume on another engine."""

    pipeline: str
    input_path: str
    output_dir: str
    text_key: str = "text"
    id_key: str = "id"
    engine: str = "local"
    workers: int = 1
    batch_size: int = 32
    shard_size: int = 1000
    docbin: bool = False
    strict: bool = False
    address: Optional[str] = None
    gpus_per_worker: float = 0.0
    cpus_per_worker: float = 0.0  # 0: the local Ray's CPUs shared out, 1 on a cluster
    progress: Optional[bool] = None  # None: a bar when stderr is a terminal

    def fingerprint_arguments(self) -> Dict[str, Any]:
        return {"text_key": self.text_key, "id_key": self.id_key, "shard_size": self.shard_size, "docbin": self.docbin}


@dataclass
class RunSummary:
    """What one run did (this run only; the manifest also keeps the totals)."""

    engine: str
    workers: int
    docs: int = 0
    words: int = 0
    rejected: int = 0
    shards_written: int = 0
    shards_skipped: int = 0
    seconds: float = 0.0
    totals: Dict[str, int] = field(default_factory=dict)

    @property
    def docs_per_second(self) -> float:
        return self.docs / self.seconds if self.seconds > 0 else 0.0

    def to_json(self) -> Dict[str, Any]:
        return {**asdict(self), "docs_per_second": round(self.docs_per_second, 2), "seconds": round(self.seconds, 3)}


@dataclass
class ShardBuffer:
    """A shard's results while they come in."""

    spec: ShardSpec
    outputs: List[DocOutput] = field(default_factory=list)
    rejects: List[Reject] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return len(self.outputs) + len(self.rejects) == self.spec.end - self.spec.start
