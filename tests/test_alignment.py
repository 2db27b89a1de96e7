import numpy as np
import pytest
from spacy.tokens import Doc

from spacy_bertprod.layers.alignment import align_wordpieces


@pytest.fixture(scope="module")
def tokenizer(tiny_bert):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_bert).backend_tokenizer


def _align(tokenizer, doc):
    enc = tokenizer.encode(doc.text, add_special_tokens=False)
    return enc, align_wordpieces(doc, np.array(enc.offsets).reshape(-1, 2))


def _pieces(enc, start, end):
    return [enc.tokens[i] for i in range(start, end)]


def test_multi_wordpiece_tokens(nlp, tokenizer):
    doc = nlp.make_doc("xylophone quartz")
    enc, (start, end) = _align(tokenizer, doc)
    assert _pieces(enc, start[0], end[0]) == ["x", "##y", "##l", "##o", "##p", "##h", "##o", "##n", "##e"]
    assert _pieces(enc, start[1], end[1])[0] == "q"
    assert end[0] == start[1]


def test_whitespace_and_control_characters(nlp, tokenizer):
    doc = Doc(nlp.vocab, words=["city", "\n\n", "river", "\u200b", "film"], spaces=[True, False, True, True, False])
    enc, (start, end) = _align(tokenizer, doc)
    has = end > start
    assert has.tolist() == [True, False, True, False, True]
    assert _pieces(enc, start[2], end[2]) == ["river"]
    assert _pieces(enc, start[4], end[4]) == ["film"]


def test_accents_are_mapped_by_offsets(nlp, tokenizer):
    # The uncased normalizer strips accents: "Café" -> "cafe"; offsets still
    # point into the original text.
    doc = nlp.make_doc("Café naïve Zürich")
    enc, (start, end) = _align(tokenizer, doc)
    assert _pieces(enc, start[0], end[0]) == ["cafe"]
    for i, token in enumerate(doc):
        assert end[i] > start[i]
        first = enc.offsets[start[i]]
        last = enc.offsets[end[i] - 1]
        assert first[0] == token.idx and last[1] == token.idx + len(token)


def test_non_latin_scripts(nlp, tokenizer):
    doc = nlp.make_doc("東京 жизнь Ω")
    enc, (start, end) = _align(tokenizer, doc)
    # CJK characters are split into one wordpiece each, within one spaCy token
    # or several depending on the tokenizer; every token is covered.
    assert (end > start).all()
    covered = sorted({i for s, e in zip(start, end) for i in range(s, e)})
    assert covered == list(range(len(enc.ids)))
    # an unknown word still maps through its offsets
    zh_token = [t for t in doc if t.text == "жизнь"][0]
    pieces = _pieces(enc, start[zh_token.i], end[zh_token.i])
    assert pieces and all(p == "[UNK]" or p.lstrip("#") in "жизнь" for p in pieces)


def test_wordpiece_spanning_two_tokens(nlp, tokenizer):
    # spaCy splits "cannot" into "can" + "not"; the tiny vocab reads "can..."
    # character by character, but a whole-word piece like "works" spanning two
    # spaCy tokens must be shared by both.
    doc = Doc(nlp.vocab, words=["wor", "ks"], spaces=[False, False])
    enc, (start, end) = _align(tokenizer, doc)
    assert enc.tokens == ["works"]
    assert start.tolist() == [0, 0] and end.tolist() == [1, 1]


def test_empty_doc(nlp, tokenizer):
    doc = nlp.make_doc("")
    _, (start, end) = _align(tokenizer, doc)
    assert len(start) == 0 and len(end) == 0
