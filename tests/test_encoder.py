import shutil

import numpy as np
import pytest
import torch
from spacy.tokens import Doc

from spacy_bertprod.layers.architectures import encoder_v1


def _encoder(path, **kwargs):
    settings = {"window": 16, "stride": 8, "max_batch_wordpieces": 64}
    settings.update(kwargs)
    model = encoder_v1(name=path, **settings)
    model.initialize()
    return model


def _hf_hidden(path, text):
    from transformers import AutoModel, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(path)
    enc = tok(text, return_offsets_mapping=True, return_tensors="pt")
    module = AutoModel.from_pretrained(path)
    module.eval()
    with torch.no_grad():
        hidden = module(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"])[0][0].numpy()
    return hidden, enc["offset_mapping"][0].numpy()


@pytest.mark.parametrize("pooling", ["first", "mean"])
def test_token_vectors_match_hf_model(nlp, tiny_bert, pooling):
    text = "Angela Merkel visited xylophone plant"
    doc = nlp.make_doc(text)
    model = _encoder(tiny_bert, window=64, stride=32, pooling=pooling)
    (vectors,) = model.predict([doc])
    hidden, offsets = _hf_hidden(tiny_bert, text)
    assert vectors.shape == (len(doc), model.get_dim("nO"))
    for token in doc:
        rows = [i for i, (s, e) in enumerate(offsets) if e > s and s < token.idx + len(token) and e > token.idx]
        expected = hidden[rows[0]] if pooling == "first" else hidden[rows].mean(axis=0)
        np.testing.assert_allclose(vectors[token.i], expected, rtol=1e-4, atol=1e-5)


def test_whitespace_tokens_get_zero_vectors(nlp, tiny_bert):
    doc = Doc(nlp.vocab, words=["city", "\n", "river"], spaces=[True, False, False])
    (vectors,) = _encoder(tiny_bert).predict([doc])
    assert np.all(vectors[1] == 0) and np.any(vectors[0] != 0)


def test_long_doc_every_token_gets_a_vector(nlp, tiny_bert):
    from conftest import random_text

    doc = nlp.make_doc(random_text(600))
    model = _encoder(tiny_bert)
    (vectors,) = model.predict([doc])
    assert vectors.shape[0] == len(doc)
    assert np.all(np.abs(vectors).sum(axis=1) > 0)


@pytest.mark.parametrize("pooling", ["first", "mean"])
def test_prediction_keeps_no_window_states_alive(nlp, tiny_bert, pooling):
    # A long document's window states are as large as its wordpieces x width:
    # once the token vectors are out, a prediction's callback (which thinc's
    # chain keeps until the whole model has run) must not hold them.
    import gc
    import weakref

    from conftest import random_text
    from spacy_bertprod.layers.batching import hidden_state_hook
    from spacy_bertprod.layers.transformer import hf_module

    model = _encoder(tiny_bert, pooling=pooling)
    states = []
    handle = hf_module(model).register_forward_hook(lambda m, i, o: states.append(weakref.ref(o[0])))

    def record(flat, valid, backprop):
        states.append(weakref.ref(flat))
        return backprop

    try:
        with hidden_state_hook(model, record):
            vectors, backprop = model([nlp.make_doc(random_text(300))], is_train=False)
    finally:
        handle.remove()
    gc.collect()
    assert len(states) > 2 and vectors[0].shape[0] == 300
    assert [ref() is None for ref in states] == [True] * len(states)
    assert callable(backprop)


@pytest.mark.parametrize("pooling", ["first", "mean"])
def test_pooling_in_slices_gives_the_same_vectors(nlp, tiny_bert, monkeypatch, pooling):
    import spacy_bertprod.layers.encoder as encoder_module
    import spacy_bertprod.layers.pooling as pooling_module
    from conftest import random_text
    from spacy_bertprod.layers.pooling import doc_pooler

    docs = [nlp.make_doc(random_text(n, seed=n)) for n in (50, 0, 7, 120)]
    model = _encoder(tiny_bert, pooling=pooling)
    whole = model.predict(docs)
    pooled = {p: doc_pooler(model, p).predict(docs) for p in ("cls", "mean")}
    monkeypatch.setattr(encoder_module, "POOL_CHUNK", 3)
    monkeypatch.setattr(pooling_module, "POOL_CHUNK", 5)
    for a, b in zip(model.predict(docs), whole):
        assert a.tolist() == b.tolist()
    for p, expected in pooled.items():
        assert doc_pooler(model, p).predict(docs).tolist() == expected.tolist()


def test_batches_do_not_change_results(nlp, tiny_bert):
    from conftest import random_text

    docs = [nlp.make_doc(random_text(n, seed=n)) for n in (3, 40, 7, 90)]
    small = _encoder(tiny_bert, max_batch_wordpieces=16)
    big = _encoder(tiny_bert, max_batch_wordpieces=4096)
    for a, b, doc in zip(small.predict(docs), big.predict(docs), docs):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(a, big.predict([doc])[0], rtol=1e-4, atol=1e-5)


def test_backprop_reaches_transformer(nlp, tiny_bert):
    docs = [nlp.make_doc("angela visited the city"), nlp.make_doc("")]
    model = _encoder(tiny_bert, pooling="mean")
    vectors, backprop = model.begin_update(docs)
    assert vectors[1].shape == (0, model.get_dim("nO"))
    backprop([np.ones_like(v) for v in vectors])
    module = model.get_ref("transformer").shims[0]._model
    grads = [p.grad for p in module.parameters() if p.grad is not None]
    assert grads and any(float(g.abs().sum()) > 0 for g in grads)


def test_empty_batch(tiny_bert):
    assert _encoder(tiny_bert).predict([]) == []


@pytest.mark.parametrize(
    "kwargs,code",
    [
        ({"window": 2}, "E050"),
        ({"stride": 0}, "E051"),
        ({"window": 16, "stride": 15}, "E051"),
        ({"max_batch_wordpieces": 4}, "E055"),
        ({"max_batch_wordpieces": True}, "E055"),
        ({"input_casing": 1}, "E056"),
        ({"input_casing": "on"}, "E056"),
    ],
)
def test_bad_window_settings(tiny_bert, kwargs, code):
    settings = {"window": 16, "stride": 8}
    settings.update(kwargs)
    setting = next(iter(kwargs)) if code != "E051" else "stride"
    with pytest.raises(ValueError, match=rf"\[{code}\] Invalid encoder {setting} = "):
        encoder_v1(name=tiny_bert, **settings)


def test_bad_pooling(tiny_bert):
    with pytest.raises(ValueError, match="E012"):
        encoder_v1(name=tiny_bert, pooling="max")


def test_window_larger_than_model_positions(tiny_bert):
    model = encoder_v1(name=tiny_bert, window=1024, stride=512)
    with pytest.raises(ValueError, match="E006"):
        model.initialize()


def test_missing_model_path():
    model = encoder_v1(name="./no/such/model")
    with pytest.raises(FileNotFoundError, match="E001"):
        model.initialize()


def test_non_fast_tokenizer_is_refused(tiny_bert, monkeypatch):
    from transformers import AutoTokenizer, BertTokenizer

    monkeypatch.setattr(AutoTokenizer, "from_pretrained", lambda *a, **k: BertTokenizer.from_pretrained(tiny_bert))
    with pytest.raises(ValueError, match="E003"):
        encoder_v1(name=tiny_bert).initialize()


def test_uninitialized_encoder_explains(nlp, tiny_bert):
    with pytest.raises(ValueError, match="E005"):
        encoder_v1(name=tiny_bert).predict([nlp.make_doc("city")])


def test_non_doc_input(tiny_bert):
    with pytest.raises(TypeError, match="E011"):
        _encoder(tiny_bert).predict(["a string"])


def test_bytes_round_trip_without_original_model(nlp, tiny_bert, tmp_path):
    copy = tmp_path / "model"
    shutil.copytree(tiny_bert, copy)
    model = _encoder(str(copy))
    data = model.to_bytes()
    shutil.rmtree(copy)
    fresh = encoder_v1(name=str(copy), window=16, stride=8, max_batch_wordpieces=64)
    fresh.from_bytes(data)
    doc = nlp.make_doc("angela merkel visited munich")
    np.testing.assert_array_equal(model.predict([doc])[0], fresh.predict([doc])[0])
