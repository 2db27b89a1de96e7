"""The ONNX Runtime backend gives the torch backend's predictions."""

import sys

import numpy as np
import onnx
import pytest
import spacy
from spacy.training import Example
from thinc.api import Adam

from conftest import CATS, TRAIN_DATA, assert_varies, cats_examples, make_examples, ner_config, random_text, train
from spacy_bertprod import threads
from spacy_bertprod.compression import onnx_export
from spacy_bertprod.compression.pipelines import onnx_path, onnx_pipeline, quantize_pipeline
from spacy_bertprod.layers.architectures import encoder_v1
from spacy_bertprod.layers.onnx_session import OnnxSession

ATOL = 1e-4
TEXTS = [t for t, _ in TRAIN_DATA] + [random_text(60, seed=1), ""]
CONTEXT = "Marie Curie was born in Warsaw in 1867. She moved to Paris in 1891."
QA_ROWS = [
    {"id": "1", "question": "where was marie curie born?", "context": CONTEXT, "answers": [(24, 30, "Warsaw")]},
    {"id": "2", "question": "where did she move?", "context": CONTEXT, "answers": [(53, 58, "Paris")]},
]


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny models: thread hand-offs cost more than they save (and both
    backends follow torch's thread count)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _encoder_of(nlp, name):
    model = nlp.get_pipe(name).model
    return model if model.name == "bertprod_encoder" else model.get_ref("encoder")


def _torch_module(nlp, name):
    return _encoder_of(nlp, name).get_ref("transformer").shims[0]._model


@pytest.fixture(scope="module")
def ner_path(tiny_bert, tmp_path_factory):
    nlp = spacy.blank("en")
    nlp.add_pipe("bertprod_ner", config=ner_config(tiny_bert))
    path = tmp_path_factory.mktemp("ner-fp32")
    train(nlp, make_examples(nlp), 40).to_disk(path)
    return path


@pytest.fixture(scope="module")
def shared_path(tiny_bert, tmp_path_factory):
    """tok2vec (the bertprod encoder) shared by NER and textcat listeners."""
    nlp = spacy.blank("en")
    encoder = {"@architectures": "bertprod.Encoder.v1", "name": tiny_bert, "window": 16, "stride": 8, "max_batch_wordpieces": 256}
    nlp.add_pipe("tok2vec", config={"model": encoder})
    listener = {"@architectures": "spacy.Tok2VecListener.v1", "width": 32, "upstream": "*"}
    nlp.add_pipe("bertprod_ner", config={"model": {"encoder": listener}})
    nlp.add_pipe("bertprod_textcat", config={"model": {"encoder": listener, "pooling": "mean"}})

    def cats(i):
        return {"POS": float(i % 2 == 0), "NEG": float(i % 2 == 1)}

    data = [Example.from_dict(nlp.make_doc(t), {"entities": e, "cats": cats(i)}) for i, (t, e) in enumerate(TRAIN_DATA)]
    path = tmp_path_factory.mktemp("shared-fp32")
    train(nlp, data, 30).to_disk(path)
    return path


def _ents(doc):
    return [(e.start, e.end, e.label_) for e in doc.ents]


def _scores(doc):
    return [e._.bertprod_score for e in doc.ents]


def test_export_matches_torch_with_other_shapes(tiny_bert):
    import torch

    model = encoder_v1(name=tiny_bert, window=16, stride=8)
    model.initialize()
    module = model.get_ref("transformer").shims[0]._model.eval()
    session = OnnxSession(onnx_export.export_onnx(module), "onnx")
    rng = np.random.default_rng(0)
    for batch, length in ((3, 13), (1, 5), (5, 41)):  # the export example is (2, 8)
        ids = rng.integers(5, 100, (batch, length))
        mask = (np.arange(length)[None, :] < rng.integers(1, length + 1, (batch, 1))).astype("int64")
        types = (np.arange(length)[None, :] >= length // 2).astype("int64").repeat(batch, axis=0)
        hidden = session.run(ids, mask, types)
        with torch.no_grad():
            expected = module(input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(mask), token_type_ids=torch.from_numpy(types))[0].numpy()
        assert hidden.shape == (batch, length, 32) and hidden.dtype == np.float32
        np.testing.assert_allclose(hidden, expected, atol=ATOL)


def test_ner_same_entities_and_round_trip(ner_path, tmp_path, monkeypatch):
    torch_nlp = spacy.load(ner_path)
    done = onnx_path(ner_path, tmp_path / "onnx")
    assert done == ["bertprod_ner"]
    monkeypatch.setattr(onnx_export, "export_onnx", None)  # the saved ONNX model is used
    nlp = spacy.load(tmp_path / "onnx")
    compression = nlp.meta["bertprod"]["compression"]
    assert compression["backend"] == "onnxruntime" and compression["quantization"] is None
    assert nlp.config["components"]["bertprod_ner"]["model"]["encoder"]["backend"] == "onnx"
    assert 'backend = "onnx"' in (tmp_path / "onnx" / "config.cfg").read_text()
    calls = []
    _torch_module(nlp, "bertprod_ner").register_forward_hook(lambda *a: calls.append(1))
    docs = list(nlp.pipe(TEXTS))
    assert not calls  # torch never ran
    expected = list(torch_nlp.pipe(TEXTS))
    assert sum(len(d.ents) for d in expected) >= 10
    for doc, ref in zip(docs, expected):
        assert _ents(doc) == _ents(ref)
        np.testing.assert_allclose(_scores(doc), _scores(ref), atol=ATOL)
    # probabilities, and the reloaded pipeline predicts what the converted one did
    probe = [nlp.make_doc(t) for t in TEXTS]
    onnx_probs = nlp.get_pipe("bertprod_ner").model.predict(probe)
    for a, b in zip(onnx_probs, torch_nlp.get_pipe("bertprod_ner").model.predict(probe)):
        np.testing.assert_allclose(a, b, atol=ATOL)
    in_memory = spacy.load(ner_path)
    monkeypatch.undo()
    onnx_pipeline(in_memory)
    for a, b in zip(onnx_probs, in_memory.get_pipe("bertprod_ner").model.predict(probe)):
        np.testing.assert_array_equal(a, b)


def test_config_override_to_onnx_needs_an_exported_model(ner_path):
    """A torch pipeline loaded with backend "onnx" holds no ONNX model: it is
    never exported on the first prediction (E150, saying what to run), and
    predicts like torch once exported explicitly."""
    override = {"components": {"bertprod_ner": {"model": {"encoder": {"backend": "onnx"}}}}}
    nlp = spacy.load(ner_path, config=override)
    encoder = _encoder_of(nlp, "bertprod_ner")
    assert encoder.attrs["backend"] == "onnx" and encoder.attrs["onnx"].data is None
    with pytest.raises(ValueError, match=r"\[E150\].*backend = \"onnx\".*python -m spacy bertprod onnx"):
        nlp(TEXTS[0])
    assert encoder.attrs["onnx"].data is None
    onnx_export.export_encoder(encoder)
    assert encoder.attrs["onnx"].has_model("onnx")
    torch_nlp = spacy.load(ner_path)
    expected = [_ents(torch_nlp(text)) for text in TEXTS]
    assert sum(map(len, expected)) >= 10  # entities, not a comparison of empties
    assert [_ents(nlp(text)) for text in TEXTS] == expected


def _gather_table_types(nlp):
    """The types of the embedding tables: read by Gather, or in a fused graph
    by EmbedLayerNormalization (word, position, segment tables)."""
    graph = onnx.load_from_string(_encoder_of(nlp, "bertprod_ner").attrs["onnx"].data).graph
    types = {t.name: t.data_type for t in graph.initializer}
    tables = {"Gather": slice(0, 1), "EmbedLayerNormalization": slice(2, 5)}
    return {types[name] for n in graph.node if n.op_type in tables for name in n.input[tables[n.op_type]] if name in types}


def test_onnx_int8(ner_path, tmp_path, monkeypatch):
    torch_nlp, fp32, int8 = spacy.load(ner_path), spacy.load(ner_path), spacy.load(ner_path)
    onnx_pipeline(fp32)
    onnx_pipeline(int8, int8=True)
    assert int8.meta["bertprod"]["compression"]["quantization"] == "int8-dynamic-per-channel"
    assert int8.config["components"]["bertprod_ner"]["model"]["encoder"]["backend"] == "onnx-int8"

    def size(nlp):
        return len(_encoder_of(nlp, "bertprod_ner").attrs["onnx"].data)

    assert size(int8) < size(fp32)
    assert _gather_table_types(int8) == {onnx.TensorProto.FLOAT}  # embedding lookups stay fp32
    probe = [fp32.make_doc(t) for t in TEXTS]
    a = fp32.get_pipe("bertprod_ner").model.predict(probe)
    b = int8.get_pipe("bertprod_ner").model.predict(probe)
    assert_varies(a)  # a trained head: the comparisons below are not of constants
    assert [x.shape for x in a] == [x.shape for x in b]
    diff = max(float(np.abs(x - y).max()) for x, y in zip(a, b) if x.size)
    print(f"onnx-int8 vs onnx: max abs diff of NER probabilities {diff:.4f}")
    assert 0 < diff < 0.1  # int8 really ran, and stayed close
    # the entities of the trained sentences survive int8
    train_texts = [t for t, _ in TRAIN_DATA]
    expected = [_ents(d) for d in torch_nlp.pipe(train_texts)]
    assert all(expected) and [_ents(d) for d in int8.pipe(train_texts)] == expected
    # saved by the converter (`onnx --int8`) and loaded: the same int8 model,
    # not exported again and not fp32
    assert onnx_path(ner_path, tmp_path / "int8", int8=True) == ["bertprod_ner"]
    monkeypatch.setattr(onnx_export, "export_onnx", None)
    loaded = spacy.load(tmp_path / "int8")
    assert loaded.config["components"]["bertprod_ner"]["model"]["encoder"]["backend"] == "onnx-int8"
    assert loaded.meta["bertprod"]["compression"]["quantization"] == "int8-dynamic-per-channel"
    assert size(loaded) == size(int8)
    for x, y in zip(b, loaded.get_pipe("bertprod_ner").model.predict(probe)):
        np.testing.assert_array_equal(x, y)
    assert [_ents(d) for d in loaded.pipe(train_texts)] == expected


@pytest.fixture(scope="module")
def textcat_path(tiny_bert, tmp_path_factory):
    """Textcat with [CLS] pooling on its own encoder (listeners can only mean-pool)."""
    nlp = spacy.blank("en")
    encoder = {"name": tiny_bert, "window": 16, "stride": 8, "max_batch_wordpieces": 256}
    nlp.add_pipe("bertprod_textcat", config={"model": {"encoder": encoder, "pooling": "cls"}})
    data = cats_examples(nlp)
    path = tmp_path_factory.mktemp("textcat-cls")
    train(nlp, data, 30).to_disk(path)
    return path


def test_textcat_cls_pooling_and_int8(textcat_path, tmp_path):
    texts = [t for t, _ in CATS] + [random_text(40, seed=2)]  # the last: several windows
    torch_nlp = spacy.load(textcat_path)
    expected = [d.cats for d in torch_nlp.pipe(texts)]
    assert_varies([[c["POS"]] for c in expected])
    assert [max(c, key=c.get) for c in expected[:4]] == [label for _, label in CATS]
    nlp = spacy.load(textcat_path)
    assert onnx_pipeline(nlp) == ["bertprod_textcat"]
    for doc, ref in zip(nlp.pipe(texts), expected):
        assert doc.cats == pytest.approx(ref, abs=ATOL)
    # int8: close, the same labels, and the same after a disk round trip
    assert onnx_path(textcat_path, tmp_path / "int8", int8=True) == ["bertprod_textcat"]
    int8 = spacy.load(tmp_path / "int8")
    assert int8.config["components"]["bertprod_textcat"]["model"]["encoder"]["backend"] == "onnx-int8"
    got = [d.cats for d in int8.pipe(texts)]
    diff = max(abs(g[k] - r[k]) for g, r in zip(got, expected) for k in r)
    assert 0 < diff < 0.05
    assert [max(c, key=c.get) for c in got] == [max(c, key=c.get) for c in expected]
    in_memory = spacy.load(textcat_path)
    onnx_pipeline(in_memory, int8=True)
    assert [d.cats for d in in_memory.pipe(texts)] == got


def test_shared_encoder_textcat_and_ner(shared_path, tmp_path):
    torch_nlp = spacy.load(shared_path)
    nlp = spacy.load(shared_path)
    assert onnx_pipeline(nlp) == ["tok2vec"]
    nlp.to_disk(tmp_path)
    again = spacy.load(tmp_path)
    assert again.config["components"]["tok2vec"]["model"]["backend"] == "onnx"
    # the trained heads predict: entities, and categories that differ by text
    assert sum(len(torch_nlp(text).ents) for text in TEXTS) >= 10
    assert_varies([[torch_nlp(text).cats["POS"]] for text in TEXTS])
    for text in TEXTS:
        ref, doc, loaded = torch_nlp(text), nlp(text), again(text)
        assert _ents(doc) == _ents(ref) == _ents(loaded)
        assert doc.cats == loaded.cats
        for label, score in ref.cats.items():
            assert doc.cats[label] == pytest.approx(score, abs=ATOL)


@pytest.fixture(scope="module")
def qa_trained(tiny_bert):
    from spacy_bertprod.training.squad import make_examples as squad_examples

    nlp = spacy.blank("en")
    model = {"encoder": {"name": tiny_bert, "window": 48, "stride": 24}, "doc_stride": 16, "max_question_len": 12}
    nlp.add_pipe("bertprod_qa", config={"model": model})
    return train(nlp, list(squad_examples(nlp, QA_ROWS)), 60)


def _qa_pairs(nlp):
    context = random_text(50, seed=3) + " " + CONTEXT  # several windows
    return [(nlp.make_doc(c), r["question"]) for c in (CONTEXT, context) for r in QA_ROWS]


def test_qa_same_answers(qa_trained):
    from spacy_bertprod.training.distiller import copy_pipeline

    nlp = copy_pipeline(qa_trained)
    qa = nlp.get_pipe("bertprod_qa")
    pairs = _qa_pairs(nlp)
    expected = [qa.answer(doc, q, top_k=3) for doc, q in pairs]
    logits = qa.model.predict(pairs)
    onnx_pipeline(nlp)
    answers = [qa.answer(doc, q, top_k=3) for doc, q in pairs]
    assert [a.text for a in expected[0][:1] + expected[1][:1]] == ["Warsaw", "Paris"]
    for got, ref in zip(answers, expected):
        assert [(a.start_char, a.end_char) for a in got] == [(a.start_char, a.end_char) for a in ref]
        np.testing.assert_allclose([a._.bertprod_score for a in got], [a._.bertprod_score for a in ref], atol=ATOL)
    for got, ref in zip(qa.model.predict(pairs), logits):
        for w, v in zip(got.windows, ref.windows):
            np.testing.assert_allclose(w.start_logits, v.start_logits, atol=ATOL)
            np.testing.assert_allclose(w.end_logits, v.end_logits, atol=ATOL)


def test_qa_int8_answers_and_round_trip(qa_trained, tmp_path):
    qa = qa_trained.get_pipe("bertprod_qa")
    pairs = _qa_pairs(qa_trained)

    def spans(pipe):
        return [[(a.start_char, a.end_char) for a in pipe.answer(doc, q, top_k=1)] for doc, q in pairs]

    def logits(pipe):
        return np.concatenate([w.start_logits for s in pipe.model.predict(pairs) for w in s.windows])

    expected, reference = spans(qa), logits(qa)
    assert_varies(reference)
    qa_trained.to_disk(tmp_path / "fp32")
    assert onnx_path(tmp_path / "fp32", tmp_path / "int8", int8=True) == ["bertprod_qa"]
    int8 = spacy.load(tmp_path / "int8").get_pipe("bertprod_qa")
    assert int8.model.get_ref("encoder").attrs["backend"] == "onnx-int8"
    got = logits(int8)
    assert 0 < np.abs(got - reference).max() < 0.5
    assert spans(int8) == expected
    in_memory = spacy.load(tmp_path / "fp32")
    onnx_pipeline(in_memory, int8=True)
    np.testing.assert_array_equal(logits(in_memory.get_pipe("bertprod_qa")), got)


@pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning")  # torch int8
def test_clear_errors(ner_path, monkeypatch):
    with pytest.raises(ValueError, match="E052.*backend"):
        encoder_v1(name="x", window=16, stride=8, backend="tensorrt")
    nlp = spacy.load(ner_path)
    examples = make_examples(nlp)
    # training with torch forgets an exported ONNX model (its weights change)
    encoder = _encoder_of(nlp, "bertprod_ner")
    onnx_export.export_encoder(encoder, "onnx")
    nlp.update(examples[:1], sgd=Adam(1e-3))
    assert encoder.attrs["onnx"].data is None
    onnx_pipeline(nlp)
    with pytest.raises(ValueError, match="E029"):
        nlp.update(examples, sgd=Adam(1e-3))
    # torch int8 on an ONNX pipeline would only mislabel it in the meta
    with pytest.raises(ValueError, match="E032.*onnx.*--int8"):
        quantize_pipeline(nlp)
    assert nlp.meta["bertprod"]["compression"]["backend"] == "onnxruntime"
    quantized = spacy.load(ner_path)
    quantize_pipeline(quantized)
    with pytest.raises(ValueError, match="E030"):
        onnx_pipeline(quantized)
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(ImportError, match=r"E028.*spacy-bertprod\[onnx\]"):
        onnx_pipeline(spacy.load(ner_path))


def test_set_threads_reaches_onnx_runtime_sessions(tiny_bert, monkeypatch):
    """`serve --threads` and Ray actors set the encoders' threads through one
    function: the onnxruntime session an encoder runs must be made with that
    intra-op thread count, with torch (which ONNX Runtime follows) and where
    torch is not installed."""
    import torch

    model = encoder_v1(name=tiny_bert, window=16, stride=8)
    model.initialize()
    exported = OnnxSession(onnx_export.export_onnx(model.get_ref("transformer").shims[0]._model.eval()), "onnx")

    def session_threads() -> int:
        return exported.session().get_session_options().intra_op_num_threads

    try:
        threads.set_threads(2)
        assert session_threads() == 2
    finally:
        torch.set_num_threads(1)  # this module's setting
    monkeypatch.setattr(threads, "_threads_without_torch", 0)
    monkeypatch.setattr(threads, "torch_installed", lambda: False)
    monkeypatch.delitem(sys.modules, "torch")
    threads.set_threads(3)
    assert session_threads() == 3
    threads.set_threads(0)  # 0 leaves them
    assert session_threads() == 3
