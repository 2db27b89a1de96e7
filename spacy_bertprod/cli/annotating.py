"""`bertprod annotate`: a trained pipeline over a corpus, into JSONL (and
DocBin) shards, resumable. The work is done by spacy_bertprod/annotate/;
this command reads the options and reports."""

from pathlib import Path
from typing import Optional

from spacy.cli._util import Arg, Opt
from wasabi import msg

from ..annotate import Settings, annotate
from ..annotate.outputs import REJECTS
from ._util import bertprod_cli, coded_errors_exit


@bertprod_cli.command("annotate")
def annotate_cli(
    pipeline: str = Arg(..., help="Pipeline folder or installed pipeline package"),
    input_path: Path = Arg(..., help="JSONL (an object a line), plain text (a document a line), Parquet, or a folder of such files (read in sorted order)", exists=True),
    output_dir: Path = Arg(..., help="Folder for the shards, manifest.json and rejects.jsonl; a folder with a manifest from the same arguments is resumed"),
    text_key: str = Opt("text", "--text-key", help="JSONL / Parquet field holding the text"),
    id_key: str = Opt("id", "--id-key", help="Field holding the document id (absent: FILE:LINE)"),
    engine: str = Opt("local", "--engine", help="local: nlp.pipe on this machine; ray: Ray Data with an actor pool"),
    workers: int = Opt(1, "--workers", "-w", help="Processes (local: nlp.pipe's n_process) or actors (ray)"),
    batch_size: int = Opt(32, "--batch-size", "-b", help="Documents per nlp.pipe batch"),
    shard_size: int = Opt(1000, "--shard-size", help="Input records (documents and rejects) per output shard"),
    docbin: bool = Opt(False, "--docbin", help="Also write each shard's Docs as a .spacy DocBin"),
    strict: bool = Opt(False, "--strict", help="Stop at the first bad input line (exit status 1) instead of listing it in rejects.jsonl"),
    address: Optional[str] = Opt(None, "--address", help="Ray: join this cluster (e.g. auto or ray://head:10001); without it a local Ray is started for the run"),
    gpus_per_worker: float = Opt(0.0, "--gpus-per-worker", help="Ray: GPUs per actor (e.g. 1, or 0.5 for two actors a GPU)"),
    cpus_per_worker: float = Opt(0.0, "--cpus-per-worker", help="Ray: CPUs (torch threads) per actor; 0: the cluster's CPUs shared out over the actors, at most a node's"),
    progress: bool = Opt(False, "--progress", help="Local engine: show the progress bar also when stderr is not a terminal"),
) -> None:
    """Annotate a corpus with a trained pipeline: per document its id and
    fields with the entities, cats and answers (JSON, chars and scores), in
    shards written atomically, listed in manifest.json. Run it again with the
    same arguments after an interruption: the shards done are skipped."""
    settings = Settings(
        pipeline=pipeline,
        input_path=str(input_path),
        output_dir=str(output_dir),
        text_key=text_key,
        id_key=id_key,
        engine=engine,
        workers=workers,
        batch_size=batch_size,
        shard_size=shard_size,
        docbin=docbin,
        strict=strict,
        address=address,
        gpus_per_worker=gpus_per_worker,
        cpus_per_worker=cpus_per_worker,
        progress=True if progress else None,
    )
    with coded_errors_exit():
        summary = annotate(settings)
    totals = summary.totals
    msg.good(f"{summary.docs} docs ({summary.words} words) in {summary.seconds:.1f} s: {summary.docs_per_second:.1f} docs/s on {summary.engine} with {summary.workers} worker(s)")
    msg.info(f"shards written {summary.shards_written}, already done {summary.shards_skipped}; output {output_dir} holds {totals['docs']} docs in {totals['shards']} shards")
    if totals["rejected"]:
        msg.warn(f"{totals['rejected']} input lines rejected ({summary.rejected} in this run): see {output_dir / REJECTS}")
