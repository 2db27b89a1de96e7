"""`bertprod convert-all`: every public dataset of a folder into corpus/<task>,
which `spacy convert` cannot do (CoNLL-2003's four-column -DOCSTART- lines,
SST-2's TSV, SQuAD's JSON)."""

import zipfile
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import spacy
from spacy.cli._util import Arg, Opt
from wasabi import msg

from ..errors import Errors
from ..training.converters import conll_to_docs, sst2_to_docs, write_docbin
from ._util import bertprod_cli, coded_errors_exit

#: the samples shipped as package data, laid out like assets/ (CoNLL-2003
#: format only); DATA_DIR `sample` converts them, so a pip install needs no
#: repository to try the commands
SAMPLES_DIR = Path(__file__).resolve().parent.parent / "samples"
SAMPLE = "sample"

#: per task: (the places the file may be under the dataset folder, first
#: found wins; "ARCHIVE!MEMBER" reads a member of a zip as downloaded), and
#: the file it becomes under corpus/<task>
TASK_FILES: Dict[str, List[Tuple[Tuple[str, ...], str]]] = {
    "ner": [(("conll2003/train.txt",), "train.spacy"), (("conll2003/dev.txt",), "dev.spacy"), (("conll2003/test.txt",), "test.spacy")],
    "textcat": [
        (("sst2/glue/train.tsv", "sst2/SST-2.zip!SST-2/train.tsv"), "train.spacy"),
        (("sst2/glue/dev.tsv", "sst2/SST-2.zip!SST-2/dev.tsv"), "dev.spacy"),
    ],
    "qa": [(("squad/train-v1.1.json", "squad/train-subset-v1.1.json"), "train.json"), (("squad/dev-v1.1.json",), "dev.json")],
}


@bertprod_cli.command("convert-all")
def convert_all_cli(
    data_dir: Path = Arg(..., help=f"Dataset folder laid out like assets/ (conll2003/, sst2/glue/ or sst2/SST-2.zip, squad/), or `{SAMPLE}`: the CoNLL-2003-format sample shipped in the package"),
    corpus_dir: Path = Arg(..., help="Output folder: <task>/train|dev|test.spacy, qa/*.json"),
    task: Optional[List[str]] = Opt(None, "--task", "-t", help="Convert only this task's data (ner, textcat, qa; repeat for more); fail when one of its files is missing. Default: all found"),
    limit: int = Opt(0, "--limit", "-l", help="Docs per file (0: all)"),
    spacy_tokens: bool = Opt(
        False,
        "--spacy-tokens",
        help="CoNLL-2003: train (and score dev) on spaCy's tokenization of the text, as the pipeline sees it at inference, not the file's tokens; entities align by character offsets",
    ),
) -> None:
    """Convert CoNLL-2003 columns, SST-2 TSV and SQuAD JSON under DATA_DIR
    into CORPUS_DIR/ner, CORPUS_DIR/textcat and CORPUS_DIR/qa. Without
    --task, datasets that are not there are skipped."""
    with coded_errors_exit():
        convert_all(data_folder(data_dir), corpus_dir, tasks=task or (), limit=limit, spacy_tokens=spacy_tokens)


def data_folder(data_dir: Path) -> Path:
    """DATA_DIR as given, or the shipped samples for `sample` (a folder of
    that name comes first, and is said to)."""
    if data_dir.is_dir():
        if str(data_dir) == SAMPLE:
            msg.info(f"converting the folder '{data_dir}', not the shipped sample")
        return data_dir
    if str(data_dir) == SAMPLE:
        msg.info(f"the sample shipped in the package: {SAMPLES_DIR}")
        return SAMPLES_DIR
    raise FileNotFoundError(Errors.E183.format(path=data_dir, sample=SAMPLE))


def find_source(data_dir: Path, places: Sequence[str]) -> Optional[str]:
    """The first of `places` that exists under `data_dir` (a zip member
    counts when the archive holds it)."""
    for place in places:
        archive, _, member = place.partition("!")
        path = data_dir / archive
        if path.is_file() and (not member or _zip_has(path, member)):
            return str(path) + ("!" + member if member else "")
    return None


def _zip_has(path: Path, member: str) -> bool:
    with zipfile.ZipFile(path) as archive:
        return member in archive.namelist()


def _read_text(source: str) -> str:
    archive, _, member = source.partition("!")
    if member:
        with zipfile.ZipFile(archive) as zipped:
            return zipped.read(member).decode("utf8")
    return Path(archive).read_text(encoding="utf8")


def convert_all(data_dir: Path, corpus_dir: Path, *, tasks: Sequence[str] = (), limit: int = 0, spacy_tokens: bool = False) -> int:
    """Write what DATA_DIR holds (of `tasks`, all of which must be there);
    returns the number of files written. `spacy_tokens`: the CoNLL docs
    record their spaces, so spaCy's Corpus reader tokenizes their text."""
    unknown = [t for t in tasks if t not in TASK_FILES]
    if unknown:
        raise ValueError(Errors.E084.format(tasks=unknown, known=", ".join(TASK_FILES)))
    blank = spacy.blank("en")
    written = 0
    for name, files in TASK_FILES.items():
        if tasks and name not in tasks:
            continue
        for places, target in files:
            src, dest = find_source(data_dir, places), corpus_dir / name / target
            if src is None:
                if tasks:
                    raise FileNotFoundError(Errors.E085.format(task=name, places=" or ".join(str(data_dir / p) for p in places)))
                msg.info(f"skip {data_dir / places[0]} (not there)")
                continue
            dest.parent.mkdir(parents=True, exist_ok=True)
            written += 1
            if name == "qa":
                dest.write_text(_read_text(src), encoding="utf8")
                msg.good(f"{src} -> {dest}")
                continue
            docs = conll_to_docs(src, known_spaces=spacy_tokens) if name == "ner" else sst2_to_docs(src, blank, limit=limit, text=_read_text(src))
            if limit:
                docs = docs[:limit]
            write_docbin(docs, dest)
            msg.good(f"{src} -> {dest} ({len(docs)} docs)")
    if not written:
        raise ValueError(Errors.E074.format(path=data_dir, sources=", ".join(p for files in TASK_FILES.values() for places, _ in files for p in places)))
    return written
