"""Property-based tests (hypothesis) of alignment, windowing and batching on
random texts: any Unicode, combining marks, control characters, whitespace
runs and very long words, with spaCy's English tokenizer and the tiny BERT's
fast tokenizer."""

import string

import numpy as np
import pytest
import spacy
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from spacy_bertprod.layers.alignment import align_wordpieces, token_char_spans
from spacy_bertprod.layers.windows import assign_tokens, window_bounds

NLP = spacy.blank("en")
WHITESPACE = " \t\n\r\x0b\x0c\xa0\u2028\u3000"
CONTROL = "\x00\x01\x1b\x7f\u200b\u200d\ufeff"
COMBINING = "".join(chr(c) for c in range(0x300, 0x370))
VOCAB_CHARS = string.ascii_letters + string.digits + string.punctuation + "éüçß中国人東京Ωж"

chunks = st.one_of(
    # any Unicode a str from UTF-8 can hold (no lone surrogates)
    st.text(st.characters(codec="utf-8"), min_size=1, max_size=12),
    st.text(st.sampled_from(VOCAB_CHARS + COMBINING), min_size=1, max_size=12),
    st.text(st.sampled_from(WHITESPACE), min_size=1, max_size=6),  # whitespace runs
    st.text(st.sampled_from(CONTROL), min_size=1, max_size=3),
    st.text(st.sampled_from(string.ascii_lowercase), min_size=40, max_size=200),  # very long words
    st.sampled_from(["the", "Paris", "NATO", "iPhone", "don't", "U.S.", "e-mail", "café", "3.5%"]),
)
texts = st.lists(chunks, max_size=25).map("".join)
short_texts = st.lists(chunks, max_size=8).map("".join)
# window content (wordpieces without [CLS]/[SEP]) and stride
window_settings = st.integers(1, 40).flatmap(lambda c: st.tuples(st.just(c), st.integers(1, c)))


@pytest.fixture(scope="module")
def tokenizer(tiny_bert):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_bert).backend_tokenizer


def _offsets(tokenizer, text):
    enc = tokenizer.encode(text, add_special_tokens=False)
    return np.array(enc.offsets, dtype="int64").reshape(-1, 2)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=texts)
def test_each_token_gets_exactly_the_wordpieces_over_its_characters(tokenizer, text):
    doc = NLP.make_doc(text)
    offsets = _offsets(tokenizer, text)
    wp_start, wp_end = align_wordpieces(doc, offsets)
    tok_s, tok_e = token_char_spans(doc)
    piece_s, piece_e = offsets[:, 0], offsets[:, 1]
    for t in range(len(doc)):
        over = np.flatnonzero((piece_e > piece_s) & (piece_s < tok_e[t]) & (piece_e > tok_s[t]))
        if len(over) == 0:
            assert wp_start[t] == wp_end[t]
            continue
        # a contiguous run from the first to the last piece over the token
        assert (wp_start[t], wp_end[t]) == (over[0], over[-1] + 1)
        inside = np.arange(wp_start[t], wp_end[t])
        real = inside[piece_e[inside] > piece_s[inside]]
        assert real.tolist() == over.tolist()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=texts, window=window_settings)
def test_every_token_is_read_whole_from_exactly_one_window(tokenizer, text, window):
    content, stride = window
    doc = NLP.make_doc(text)
    offsets = _offsets(tokenizer, text)
    n = len(offsets)
    wp_start, wp_end = align_wordpieces(doc, offsets)
    bounds = window_bounds(n, content, stride)
    win, start, end = assign_tokens(wp_start, wp_end, bounds, n)
    has = wp_end > wp_start
    assert (win[~has] == -1).all()
    for t in np.flatnonzero(has):
        ws, we = bounds[win[t]]
        assert ws <= start[t] < end[t] <= we
        assert wp_start[t] <= start[t] and end[t] <= wp_end[t]
        held = [min(wp_end[t], e) - max(wp_start[t], s) for s, e in bounds]
        if any(s <= wp_start[t] and wp_end[t] <= e for s, e in bounds):
            # no wordpiece lost
            assert (start[t], end[t]) == (wp_start[t], wp_end[t])
        else:
            # longer than any window: the largest part any window holds
            assert end[t] - start[t] == max(held)


ENCODERS = {
    # window (with [CLS]/[SEP]), stride, token pooling, input casing
    "w16-first": (16, 8, "first", False),
    "w8-mean-cased": (8, 6, "mean", True),
    "w24-s5-first": (24, 5, "first", False),
}


@pytest.fixture(scope="module")
def encoders(tiny_bert):
    import torch
    from thinc.api import fix_random_seed

    from spacy_bertprod.layers.architectures import encoder_v1

    fix_random_seed(0)
    built = {}
    for key, (window, stride, pooling, casing) in ENCODERS.items():
        model = encoder_v1(name=tiny_bert, window=window, stride=stride, pooling=pooling, max_batch_wordpieces=128, input_casing=casing)
        model.initialize()
        built[key] = model
    # hundreds of tiny transformer calls: one thread spends no time syncing
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield built
    torch.set_num_threads(threads)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=short_texts, others=st.lists(short_texts, max_size=4), position=st.integers(0, 4), key=st.sampled_from(sorted(ENCODERS)))
def test_token_and_doc_vectors_do_not_depend_on_the_batch(encoders, text, others, position, key):
    from spacy_bertprod.layers.pooling import doc_pooler

    encoder = encoders[key]
    doc = NLP.make_doc(text)
    batch = [NLP.make_doc(t) for t in others]
    position = min(position, len(batch))
    batch.insert(position, doc)
    alone = encoder.predict([doc])[0]
    inside = encoder.predict(batch)[position]
    assert alone.shape == (len(doc), encoder.get_dim("nO"))
    np.testing.assert_allclose(inside, alone, rtol=1e-4, atol=1e-5)
    for pooling in ("cls", "mean"):
        pooler = doc_pooler(encoder, pooling)
        np.testing.assert_allclose(pooler.predict(batch)[position], pooler.predict([doc])[0], rtol=1e-4, atol=1e-5)
