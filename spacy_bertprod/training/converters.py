"""Turn public dataset formats into spaCy DocBin corpora, using spaCy's own
converters where they exist."""

import re
from pathlib import Path
from typing import List, Optional, Union

from spacy.tokens import Doc, DocBin
from spacy.training.converters import conll_ner_to_docs

from ..errors import Errors

# spaCy's converter splits documents on this exact line; CoNLL-2003 files
# spell it with four columns ("-DOCSTART- -X- -X- O").
_SPACY_DOC_DELIMITER = "-DOCSTART- -X- O O"
#: the last column of a token line: O, or B-/I- (also E-/L-/S-/U-) and a label
_IOB_TAG = re.compile(r"O|[BIELSU]-\S+")


def conll_to_docs(path: Union[str, Path], n_sents: int = 0, known_spaces: bool = False) -> List[Doc]:
    """Read a CoNLL-2003 style file (token ... IOB tag per line).

    n_sents = 0 keeps the file's documents (split on -DOCSTART-), so the model
    sees document context; n_sents = N groups every N sentences instead.
    known_spaces: the docs say their tokens are separated by single spaces, so
    spaCy's Corpus reader tokenizes their text as the pipeline will at
    inference (it splits "KwaZulu-Natal" in three) and aligns the entities to
    those tokens; by default it trains on the file's own tokens.
    """
    lines = []
    tokens = 0
    for number, line in enumerate(Path(path).read_text(encoding="utf8").splitlines(), 1):
        if line.startswith("-DOCSTART-"):
            lines.append(_SPACY_DOC_DELIMITER)
            continue
        columns = line.split()
        if columns:
            # spaCy's converter would misread prose or a TSV (E177 "Ill-formed IOB") or take it silently
            if len(columns) < 2 or not _IOB_TAG.fullmatch(columns[-1]):
                raise ValueError(Errors.E080.format(line=number, path=path, text=line[:80]))
            tokens += 1
        lines.append(line)
    if not tokens:
        raise ValueError(Errors.E081.format(path=path))
    text = "\n".join(lines)
    if n_sents:
        text = text.replace(_SPACY_DOC_DELIMITER, "")
    docs = list(conll_ner_to_docs(text, n_sents=n_sents, no_print=True))
    if known_spaces:
        for doc in docs:
            doc.has_unknown_spaces = False
    return docs


def write_docbin(docs: List[Doc], path: Union[str, Path]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    DocBin(docs=docs, store_user_data=True).to_disk(path)
    return path


SST2_LABELS = ("NEGATIVE", "POSITIVE")


def sst2_to_docs(path: Union[str, Path], nlp, limit: int = 0, text: Optional[str] = None) -> List[Doc]:
    """Read an SST-2 TSV with a header row (GLUE's `sentence<TAB>label` or
    `label<TAB>sentence`) into docs with exclusive cats NEGATIVE/POSITIVE.
    `text`: the file's contents when read elsewhere (a zip member); `path`
    then only names it in errors."""
    lines = (Path(path).read_text(encoding="utf8") if text is None else text).splitlines()
    header = [h.strip() for h in lines[0].split("\t")] if lines else []
    if "label" not in header or len(header) != 2:
        raise ValueError(Errors.E082.format(path=path, header=lines[0][:80] if lines else ""))
    label_col = header.index("label")
    text_col = 1 - label_col
    rows = [(number, line.split("\t")) for number, line in enumerate(lines[1:], 2) if line.strip()]
    if limit:
        rows = rows[:limit]
    for number, row in rows:
        if len(row) != 2 or row[label_col].strip() not in ("0", "1"):
            raise ValueError(Errors.E083.format(line=number, path=path, value=row[label_col] if len(row) == 2 else "\t".join(row)[:80]))
    docs = []
    for doc, (_, row) in zip(nlp.tokenizer.pipe(r[text_col].strip() for _, r in rows), rows):
        value = int(row[label_col])
        doc.cats = {SST2_LABELS[0]: float(value == 0), SST2_LABELS[1]: float(value == 1)}
        docs.append(doc)
    return docs
