"""training/converters.py: CoNLL-2003 and SST-2 files -> docs."""

from pathlib import Path

import pytest
import spacy

from spacy_bertprod.training.converters import SST2_LABELS, conll_to_docs, sst2_to_docs

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
    with pytest.raises(ValueError, match=r"\[E083\] Line 2 of .*bad.tsv.* label .2."):
        sst2_to_docs(bad, nlp)


def test_sst2_header_without_label_column(tmp_path):
    conll = tmp_path / "train.tsv"
    conll.write_text("EU NNP B-NP B-ORG\nrejects VBZ B-VP O\n", encoding="utf8")
    with pytest.raises(ValueError, match=r"\[E082\] .*has no 'label' column"):
        sst2_to_docs(conll, spacy.blank("en"))


CONLL = "-DOCSTART- -X- -X- O\n\nEU NNP B-NP B-ORG\nrejects VBZ B-VP O\nGerman JJ B-NP B-MISC\n\nPeter NNP B-NP B-PER\n"


def test_conll_to_docs_reads_entities(tmp_path):
    path = tmp_path / "train.txt"
    path.write_text(CONLL, encoding="utf8")
    (doc,) = conll_to_docs(path)
    assert [(e.text, e.label_) for e in doc.ents] == [("EU", "ORG"), ("German", "MISC"), ("Peter", "PER")]
    two = tmp_path / "two.txt"  # token and tag only: still CoNLL, and read the same
    two.write_text("EU B-ORG\nrejects O\n", encoding="utf8")
    assert [(e.text, e.label_) for e in conll_to_docs(two)[0].ents] == [("EU", "ORG")]


@pytest.mark.parametrize(
    "text,line",
    [
        ("Angela Merkel visited Paris.\n", 1),  # prose: the last word is no tag
        ("sentence\tlabel\na delight\t1\n", 1),  # an SST-2 TSV
        ("EU NNP B-NP B-ORG\nrejects\n", 2),  # a token without a tag
        ("EU NNP B-NP B-ORG\nrejects VBZ B-VP Q-MISC\n", 2),  # not an IOB tag
    ],
)
def test_conll_to_docs_refuses_what_is_not_conll(tmp_path, text, line):
    path = tmp_path / "train.txt"
    path.write_text(text, encoding="utf8")
    with pytest.raises(ValueError, match=rf"\[E080\] Line {line} of .*train.txt.* is not a CoNLL-2003 token line"):
        conll_to_docs(path)


@pytest.mark.parametrize("text", ["", "\n\n  \n", "-DOCSTART- -X- -X- O\n\n"])
def test_conll_to_docs_refuses_a_file_without_tokens(tmp_path, text):
    path = tmp_path / "train.txt"
    path.write_text(text, encoding="utf8")
    with pytest.raises(ValueError, match=r"\[E081\] .*holds no CoNLL-2003 token lines"):
        conll_to_docs(path)


def test_conll_to_docs_with_known_spaces_trains_on_spacys_tokens(tmp_path):
    """The Corpus reader tokenizes known-space docs as the pipeline will at
    inference, and the gold entity spans the split tokens."""
    from spacy.tokens import DocBin
    from spacy.training import Corpus

    path = tmp_path / "train.txt"
    path.write_text("Rain O\nin O\nKwaZulu-Natal B-LOC\ntoday O\n", encoding="utf8")
    for known, words in ((False, 4), (True, 6)):
        docs = conll_to_docs(path, known_spaces=known)
        assert docs[0].has_unknown_spaces is not known
        DocBin(docs=docs).to_disk(tmp_path / "train.spacy")
        (example,) = Corpus(tmp_path / "train.spacy")(spacy.blank("en"))
        assert len(example.predicted) == words and len(example.reference) == 4
        tags = example.get_aligned_ner()
        assert tags == (["O", "O", "U-LOC", "O"] if not known else ["O", "O", "B-LOC", "I-LOC", "L-LOC", "O"])
