"""Turn public dataset formats into spaCy DocBin corpora, using spaCy's own
converters where they exist."""

from pathlib import Path
from typing import List, Union

from spacy.tokens import Doc, DocBin
from spacy.training.converters import conll_ner_to_docs

# spaCy's converter splits documents on this exact line; CoNLL-2003 files
# spell it with four columns ("-DOCSTART- -X- -X- O").
_SPACY_DOC_DELIMITER = "-DOCSTART- -X- O O"


def conll_to_docs(path: Union[str, Path], n_sents: int = 0) -> List[Doc]:
    """Read a CoNLL-2003 style file (token ... IOB tag per line).

    n_sents = 0 keeps the file's documents (split on -DOCSTART-), so the model
    sees document context; n_sents = N groups every N sentences instead.
    """
    lines = []
    for line in Path(path).read_text(encoding="utf8").splitlines():
        lines.append(_SPACY_DOC_DELIMITER if line.startswith("-DOCSTART-") else line)
    text = "\n".join(lines)
    if n_sents:
        text = text.replace(_SPACY_DOC_DELIMITER, "")
    return list(conll_ner_to_docs(text, n_sents=n_sents, no_print=True))


def write_docbin(docs: List[Doc], path: Union[str, Path]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    DocBin(docs=docs, store_user_data=True).to_disk(path)
    return path


SST2_LABELS = ("NEGATIVE", "POSITIVE")


def sst2_to_docs(path: Union[str, Path], nlp, limit: int = 0) -> List[Doc]:
    """Read an SST-2 TSV with a header row (GLUE's `sentence<TAB>label` or
    `label<TAB>sentence`) into docs with exclusive cats NEGATIVE/POSITIVE."""
    lines = Path(path).read_text(encoding="utf8").splitlines()
    header = [h.strip() for h in lines[0].split("\t")]
    label_col = header.index("label")
    text_col = 1 - label_col
    rows = [line.split("\t") for line in lines[1:] if line.strip()]
    if limit:
        rows = rows[:limit]
    docs = []
    for doc, row in zip(nlp.tokenizer.pipe(r[text_col].strip() for r in rows), rows):
        value = int(row[label_col])
        if value not in (0, 1):
            raise ValueError(f"SST-2 labels are 0 or 1, got {row[label_col]!r} in {path}")
        doc.cats = {SST2_LABELS[0]: float(value == 0), SST2_LABELS[1]: float(value == 1)}
        docs.append(doc)
    return docs
