"""`bertprod convert-all`: every public dataset of a folder into corpus/<task>,
which `spacy convert` cannot do (CoNLL-2003's four-column -DOCSTART- lines,
SST-2's TSV, SQuAD's JSON)."""

import shutil
from pathlib import Path

import spacy
from spacy.cli._util import Arg, Opt
from wasabi import msg

from ..convert import conll_to_docs, sst2_to_docs, write_docbin
from ..errors import Errors
from ._util import bertprod_cli, coded_errors_exit

# (source under the dataset folder, file under corpus/<task>) per task
TASK_FILES = {
    "ner": [("conll2003/train.txt", "train.spacy"), ("conll2003/dev.txt", "dev.spacy"), ("conll2003/test.txt", "test.spacy")],
    "textcat": [("sst2/glue/train.tsv", "train.spacy"), ("sst2/glue/dev.tsv", "dev.spacy")],
    "qa": [("squad/train-subset-v1.1.json", "train.json"), ("squad/dev-v1.1.json", "dev.json")],
}


@bertprod_cli.command("convert-all")
def convert_all_cli(
    data_dir: Path = Arg(..., help="Dataset folder laid out like assets/ (conll2003/, sst2/glue/, squad/)", exists=True, file_okay=False),
    corpus_dir: Path = Arg(..., help="Output folder: <task>/train|dev|test.spacy, qa/*.json"),
    limit: int = Opt(0, "--limit", "-l", help="Docs per file (0: all)"),
) -> None:
    """Convert CoNLL-2003 columns, SST-2 TSV and SQuAD JSON under DATA_DIR
    into CORPUS_DIR/ner, CORPUS_DIR/textcat and CORPUS_DIR/qa; files that are
    not there are skipped."""
    with coded_errors_exit():
        convert_all(data_dir, corpus_dir, limit=limit)


def convert_all(data_dir: Path, corpus_dir: Path, *, limit: int = 0) -> int:
    """Write what DATA_DIR holds; returns the number of files written."""
    blank = spacy.blank("en")
    written = 0
    for task, files in TASK_FILES.items():
        for source, target in files:
            src, dest = data_dir / source, corpus_dir / task / target
            if not src.exists():
                msg.info(f"skip {src} (not there)")
                continue
            dest.parent.mkdir(parents=True, exist_ok=True)
            written += 1
            if task == "qa":
                shutil.copyfile(src, dest)
                msg.good(f"{src} -> {dest}")
                continue
            docs = conll_to_docs(src) if task == "ner" else sst2_to_docs(src, blank, limit=limit)
            if limit:
                docs = docs[:limit]
            write_docbin(docs, dest)
            msg.good(f"{src} -> {dest} ({len(docs)} docs)")
    if not written:
        raise ValueError(Errors.E074.format(path=data_dir, sources=", ".join(s for files in TASK_FILES.values() for s, _ in files)))
    return written
