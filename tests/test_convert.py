"""convert.py: CoNLL-2003 and SST-2 files -> docs."""

from pathlib import Path

import pytest
import spacy

from spacy_bertprod.convert import SST2_LABELS, sst2_to_docs

SST2 = Path(__file__).parent.parent / "assets" / "sst2" / "glue" / "train.tsv"


def _rows(path):
    lines = path.read_text(encoding="utf8").splitlines()
    return [line.split("\t") for line in lines[1:] if line.strip()]


def test_sst2_to_docs_reads_text_and_exclusive_labels():
    nlp = spacy.blank("en")
    rows = _rows(SST2)
    docs = sst2_to_docs(SST2, nlp)
    assert len(docs) == len(rows)
    for doc, (text, label) in zip(docs, rows):
        assert doc.text == text.strip()
        assert doc.cats == {SST2_LABELS[0]: float(label == "0"), SST2_LABELS[1]: float(label == "1")}
    assert {label for _, label in rows} == {"0", "1"}  # both classes seen
    assert len(sst2_to_docs(SST2, nlp, limit=5)) == 5


def test_sst2_label_column_first_and_bad_labels(tmp_path):
    nlp = spacy.blank("en")
    flipped = tmp_path / "flipped.tsv"
    flipped.write_text("label\tsentence\n1\ta delight\n0\ta dull mess\n\n", encoding="utf8")
    docs = sst2_to_docs(flipped, nlp)
    assert [(d.text, d.cats["POSITIVE"], d.cats["NEGATIVE"]) for d in docs] == [("a delight", 1.0, 0.0), ("a dull mess", 0.0, 1.0)]
    bad = tmp_path / "bad.tsv"
    bad.write_text("sentence\tlabel\nso so\t2\n", encoding="utf8")
    with pytest.raises(ValueError, match="0 or 1"):
        sst2_to_docs(bad, nlp)
