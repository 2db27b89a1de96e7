import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
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


# -- property: every token gets exactly the wordpieces that overlap it --------
#: Fragments of text the property tests build words from: accents (composed
#: and combining), emoji and ZWJ sequences, CJK, right-to-left scripts (with
#: a direction override), ligatures, zero-width and control characters.
FRAGMENTS = [
    "the", "Paris", "NATO", "café", "Zürich", "e\u0301", "naïve", "ﬁne", "1867", ".", ",", "!?", "'s", "-",
    "👍", "👩\u200d👩\u200d👧", "🏳\ufe0f\u200d🌈", "東京", "中国人", "の", "한국", "жизнь", "Ω",
    "שלום", "مرحبا", "\u202e", "\u200f", "\u200b", "\u200d", "\x00", "\x07", "\t", "\u00ad",
]  # fmt: skip
SEPARATORS = [" ", " ", " ", "", "  ", "\n", "\t", "\u3000"]


def overlapping_pieces(doc: Doc, offsets: np.ndarray) -> list:
    """For each token, the wordpieces whose (non-empty) character span
    overlaps the token's characters: the definition the alignment follows."""
    out = []
    for token in doc:
        start, end = token.idx, token.idx + len(token)
        out.append([j for j, (s, e) in enumerate(offsets) if e > s and s < end and e > start])
    return out


def check_alignment(doc: Doc, tokenizer) -> None:
    enc = tokenizer.encode(doc.text, add_special_tokens=False)
    offsets = np.array(enc.offsets, dtype="int64").reshape(-1, 2)
    assert (offsets[:, 0] >= 0).all() and (offsets[:, 1] <= len(doc.text)).all()
    start, end = align_wordpieces(doc, offsets)
    for i, expected in enumerate(overlapping_pieces(doc, offsets)):
        if not expected:
            assert start[i] == end[i], (doc[i].text, enc.tokens)
            continue
        assert (start[i], end[i]) == (expected[0], expected[-1] + 1), (doc[i].text, enc.tokens)
        # the range holds no piece of other text (only empty ones between)
        inside = [j for j in range(start[i], end[i]) if offsets[j, 1] > offsets[j, 0]]
        assert inside == expected


def _tokenizer(family: str, tmp_path_factory, **post):
    from tokenizers import Tokenizer, processors
    from transformers import AutoTokenizer

    from conftest import build_tiny_family

    path = build_tiny_family(tmp_path_factory.mktemp(family), family)
    tok = Tokenizer.from_str(AutoTokenizer.from_pretrained(str(path)).backend_tokenizer.to_str())
    if post:
        tok.post_processor = processors.ByteLevel(**post)
    return tok


@pytest.fixture(scope="module")
def tokenizers_by_kind(tokenizer, tmp_path_factory):
    """Wordpiece (uncased: lowercases, strips accents, drops control
    characters), cased wordpiece, byte-level BPE with offsets trimmed of
    their leading space (RoBERTa's) and untrimmed, SentencePiece unigram
    (the "▁" prefix)."""
    return {
        "wordpiece": tokenizer,
        "wordpiece-cased": _tokenizer("bert-cased", tmp_path_factory),
        "bpe": _tokenizer("roberta", tmp_path_factory),
        "bpe-untrimmed": _tokenizer("roberta", tmp_path_factory, trim_offsets=False),
        "sentencepiece": _tokenizer("xlm-roberta", tmp_path_factory),
    }


def test_byte_level_offsets_are_trimmed_or_not(tokenizers_by_kind):
    text = "the city"
    trimmed = tokenizers_by_kind["bpe"].encode(text, add_special_tokens=False).offsets
    untrimmed = tokenizers_by_kind["bpe-untrimmed"].encode(text, add_special_tokens=False).offsets
    assert min(s for s, _ in trimmed if s > 3) == 4  # "Ġcity" starts at its first letter
    assert min(s for s, _ in untrimmed if s > 2) == 3  # ... or at the space before it


KINDS = ("wordpiece", "wordpiece-cased", "bpe", "bpe-untrimmed", "sentencepiece")
words = st.lists(st.lists(st.sampled_from(FRAGMENTS), min_size=1, max_size=3).map("".join), min_size=1, max_size=12)


@pytest.mark.parametrize("kind", KINDS)
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(parts=words, seps=st.lists(st.sampled_from(SEPARATORS), min_size=12, max_size=12))
def test_tokens_get_the_pieces_that_overlap_them(kind, tokenizers_by_kind, nlp, parts, seps):
    """spaCy's own tokenization of the text."""
    text = "".join(p + s for p, s in zip(parts, seps))
    check_alignment(nlp.make_doc(text), tokenizers_by_kind[kind])


@pytest.mark.parametrize("kind", KINDS)
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(parts=words, spaces=st.lists(st.booleans(), min_size=12, max_size=12))
def test_any_token_boundaries_get_the_pieces_that_overlap_them(kind, tokenizers_by_kind, nlp, parts, spaces):
    """Token boundaries anywhere (inside a wordpiece, inside an emoji
    sequence), as a custom tokenizer or character segmenter makes them."""
    doc = Doc(nlp.vocab, words=parts, spaces=spaces[: len(parts)])
    check_alignment(doc, tokenizers_by_kind[kind])


# -- languages ------------------------------------------------------------------
@pytest.fixture(scope="module")
def byte_bpe_model(tmp_path_factory) -> str:
    """RoBERTa-style: its byte-level pieces cross character boundaries."""
    from conftest import build_tiny_family

    return str(build_tiny_family(tmp_path_factory.mktemp("roberta"), "roberta"))


@pytest.mark.parametrize("lang", ["de", "fr", "zh"])
def test_languages_train_and_predict(lang, byte_bpe_model, tokenizers_by_kind):
    """A NER pipeline on spaCy's blank German, French and Chinese (one token
    per character) with a byte-level BPE encoder learns its examples: every
    token reads the wordpieces over its characters, also where one piece
    spans several tokens."""
    import spacy

    from conftest import LANGUAGE_DATA, make_examples, ner_config, train

    nlp = spacy.blank(lang)
    nlp.add_pipe("bertprod_ner", config=ner_config(byte_bpe_model))
    data = LANGUAGE_DATA[lang]
    docs = [nlp.make_doc(text) for text, _ in data]
    for doc in docs:
        for kind in KINDS:
            check_alignment(doc, tokenizers_by_kind[kind])
    if lang == "zh":
        assert all(len(t) == 1 for doc in docs for t in doc)
        tok = nlp.get_pipe("bertprod_ner").model.get_ref("encoder")
        tok.initialize()
        enc = tok.attrs["tokenizer"].tokenizer.encode(docs[0].text, add_special_tokens=False)
        start, end = align_wordpieces(docs[0], np.array(enc.offsets).reshape(-1, 2))
        shared = [i for i in range(len(docs[0]) - 1) if end[i] > start[i + 1]]
        assert shared, f"no wordpiece spans two characters in {enc.tokens}"
    train(nlp, make_examples(nlp, data), steps=30)
    got = [[(e.start_char, e.end_char, e.label_) for e in doc.ents] for doc in nlp.pipe(t for t, _ in data)]
    assert got == [[tuple(e) for e in ents] for _, ents in data]
