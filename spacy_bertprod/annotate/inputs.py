"""Reading a corpus: which files, cut into which shards, and the records of
one shard.

Every record (a document or a reject) has a global index, its position among
the records of all input files in sorted order; blank JSONL lines are not
records, blank text lines are (an empty document). `plan_shards` cuts the
index range into shards of `shard_size` records with one pass that only
counts lines, and remembers where each shard starts in its files, so a shard
is read on its own (by the driver, a spaCy worker or a Ray task) by seeking
there: the shards, and so resume and the comparison of engines, do not
depend on the engine.
"""

import json
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Tuple, Union

from ..errors import Errors
from .records import InputDoc, Piece, Reject, ShardSpec

#: file suffix -> format; a single input file with another suffix is text
FORMATS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".txt": "text", ".parquet": "parquet"}

InputFile = Tuple[str, Path, str]  # source name, path, format
Record = Union[InputDoc, Reject]


def input_files(path: Path) -> List[InputFile]:
    """The input file, or a folder's files of a known format, sorted by
    their path inside it (hidden files left out) for a deterministic order."""
    if path.is_file():
        return [(path.name, path, FORMATS.get(path.suffix.lower(), "text"))]
    files = []
    for file in sorted(path.rglob("*"), key=lambda p: p.relative_to(path).as_posix()):
        relative = file.relative_to(path).as_posix()
        if file.is_file() and file.suffix.lower() in FORMATS and not any(part.startswith(".") for part in relative.split("/")):
            files.append((relative, file, FORMATS[file.suffix.lower()]))
    if not files:
        raise ValueError(Errors.E140.format(path=path, suffixes=", ".join(FORMATS)))
    return files


def _parquet_file(path: Path) -> Any:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise ValueError(Errors.E147.format(path=path)) from None
    return pq.ParquetFile(path)


def record_positions(path: Path, fmt: str) -> Iterator[Tuple[int, int]]:
    """(offset, line) of each record: its byte offset and 1-based line, or
    for Parquet its row and row + 1."""
    if fmt == "parquet":
        for row in range(_parquet_file(path).metadata.num_rows):
            yield row, row + 1
        return
    offset = 0
    with path.open("rb") as file:
        for line, raw in enumerate(file, 1):
            if fmt == "text" or raw.strip():
                yield offset, line
            offset += len(raw)


def plan_shards(files: List[InputFile], shard_size: int) -> List[ShardSpec]:
    """Cut the records of `files` into shards of `shard_size` (the last may
    be smaller); a shard may span files."""
    shards: List[ShardSpec] = []
    pieces: List[Piece] = []
    current: Optional[Piece] = None
    start = index = 0
    for source, path, fmt in files:
        for offset, line in record_positions(path, fmt):
            if current is None or current.source != source:
                if current is not None:
                    pieces.append(current)
                current = Piece(source, fmt, offset, line, 0)
            current = Piece(current.source, fmt, current.offset, current.line, current.count + 1)
            index += 1
            if index - start == shard_size:
                shards.append(ShardSpec(len(shards), start, index, tuple(pieces + [current])))
                pieces, current, start = [], None, index
    if current is not None:
        shards.append(ShardSpec(len(shards), start, index, tuple(pieces + [current])))
    return shards


def to_record(obj: Any, index: int, source: str, line: int, text_key: str, id_key: str) -> Record:
    """An input object (a parsed JSONL line, a Parquet row) as a document, or
    a reject saying what is wrong with it."""
    if not isinstance(obj, dict):
        return Reject(index, source, line, f"not a JSON object but {type(obj).__name__}")
    if text_key not in obj:
        return Reject(index, source, line, f"no {text_key!r} field")
    text = obj[text_key]
    if not isinstance(text, str):
        return Reject(index, source, line, f"the {text_key!r} field is {type(text).__name__}, not a string")
    doc_id = obj.get(id_key, f"{source}:{line}")
    fields = {key: value for key, value in obj.items() if key not in (text_key, id_key)}
    return InputDoc(index, source, line, text, doc_id, fields)


def _line_record(raw: bytes, fmt: str, index: int, source: str, line: int, text_key: str, id_key: str) -> Record:
    if fmt == "text":
        try:
            text = raw.decode("utf8").rstrip("\r\n")
        except UnicodeDecodeError as err:
            return Reject(index, source, line, f"not UTF-8: {err}")
        return InputDoc(index, source, line, text, f"{source}:{line}", {})
    try:
        obj = json.loads(raw)
    except ValueError as err:  # JSONDecodeError and UnicodeDecodeError
        return Reject(index, source, line, f"not valid JSON: {err}")
    return to_record(obj, index, source, line, text_key, id_key)


def read_piece(path: Path, piece: Piece, first_index: int, text_key: str, id_key: str) -> Iterator[Record]:
    """The records of one piece of a shard, numbered from `first_index`."""
    index = first_index
    if piece.fmt == "parquet":
        parquet = _parquet_file(path)
        row = 0
        for group in range(parquet.num_row_groups):
            size = parquet.metadata.row_group(group).num_rows
            if row + size > piece.offset and index < first_index + piece.count:
                table = parquet.read_row_group(group)
                skip = max(piece.offset - row, 0)
                for k, obj in enumerate(table.slice(skip, first_index + piece.count - index).to_pylist()):
                    yield to_record(obj, index, piece.source, row + skip + k + 1, text_key, id_key)
                    index += 1
            row += size
        return
    with path.open("rb") as file:
        file.seek(piece.offset)
        line = piece.line
        while index < first_index + piece.count:
            raw = file.readline()
            if piece.fmt == "text" or raw.strip():
                yield _line_record(raw, piece.fmt, index, piece.source, line, text_key, id_key)
                index += 1
            line += 1


def read_shard(root: Path, spec: ShardSpec, text_key: str, id_key: str) -> List[Record]:
    """All records of a shard, in index order. `root` is the input file or
    folder the shard was planned on."""
    records: List[Record] = []
    for piece in spec.pieces:
        path = root if root.is_file() else root / piece.source
        records.extend(read_piece(path, piece, spec.start + len(records), text_key, id_key))
    return records


def read_rows(item: Dict[str, Any], *, root: str, text_key: str, id_key: str) -> List[Dict[str, Any]]:
    """A Ray read task (ray_engine.py): the records of one shard as rows
    (documents and rejects as JSON strings, which keeps the rows' schema
    fixed). It lives here, beside `read_shard`, so a read worker imports
    neither spaCy nor torch."""
    spec = ShardSpec.from_json(json.loads(item["spec"]))
    rows = []
    for record in read_shard(Path(root), spec, text_key, id_key):
        kind = "reject" if isinstance(record, Reject) else "doc"
        rows.append({"shard": spec.shard, "index": record.index, "kind": kind, "record": json.dumps(record.__dict__, ensure_ascii=False, default=str)})
    return rows
