"""The CNN student (`training/students.py` `make_cnn_student`, `bertprod
distill --student cnn`): the teacher's NER on a fresh spaCy tok2vec, trained
against the cached teacher, saved, loaded and tagging without torch."""

import json

import numpy as np
import pytest
import spacy
from spacy.tokens import DocBin
from test_cli import bertprod
from test_lean import run_without_torch

from conftest import TRAIN_DATA, cats_examples, make_examples
from spacy_bertprod.compression.pipelines import onnx_path, quantize_path
from spacy_bertprod.layers.encoder import bertprod_encoders
from spacy_bertprod.layers.transformer import hf_module
from spacy_bertprod.layers.wordpiece_vectors import set_wordpiece_table, table_from_embeddings, wordpiece_vectors
from spacy_bertprod.training.distiller import distill
from spacy_bertprod.training.students import CnnSettings, make_cnn_student, random_wordpiece_table

TINY = CnnSettings(width=16, depth=1, embed_rows=100)
TEXTS = [t for t, _ in TRAIN_DATA]

#: loads the pipeline at argv[1] and prints its entities on TEXTS and the training stack it imported
TAG = f"""
import json, spacy
nlp = spacy.load(sys.argv[1])
ents = [[(e.start, e.end, e.label_) for e in doc.ents] for doc in nlp.pipe({TEXTS!r})]
print(json.dumps({{"ents": ents, "loaded": sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED)}}))
"""


@pytest.fixture(scope="module")
def teacher(trained_ner_path):
    return spacy.load(trained_ner_path)


def test_cnn_student_is_the_teachers_ner_on_spacys_tok2vec(teacher):
    examples = make_examples(teacher)
    student = make_cnn_student(teacher, TINY, lambda: examples)
    model_cfg = student.config["components"]["bertprod_ner"]["model"]
    assert model_cfg["@architectures"] == "bertprod.TokenClassifier.v1"
    assert model_cfg["encoder"]["@architectures"] == "spacy.Tok2Vec.v2"
    assert model_cfg["encoder"]["embed"]["rows"] == [100, 20, 50, 50] and model_cfg["encoder"]["encode"]["depth"] == 1
    assert bertprod_encoders(student) == {} and bertprod_encoders(teacher)
    assert student.get_pipe("bertprod_ner").labels == teacher.get_pipe("bertprod_ner").labels
    assert student.meta["bertprod"]["distillation"]["student"] == "cnn"
    with pytest.raises(ValueError, match="E066"):
        make_cnn_student(teacher, CnnSettings(width=0), lambda: examples)


def test_cnn_student_learns_saves_and_tags_without_torch(teacher, tmp_path):
    gold = make_examples(teacher)
    plain = [type(eg)(teacher.make_doc(eg.text), teacher.make_doc(eg.text)) for eg in gold]
    student = make_cnn_student(teacher, TINY, lambda: gold)
    before = student.evaluate(gold)["ents_f"] or 0.0
    best = distill(teacher, student, gold + plain, gold, output=tmp_path, steps=60, batch_words=100, learn_rate=1e-2, eval_every=20, cache_teacher_scores=True, log=lambda _: None)
    assert best["ents_f"] >= max(before + 0.3, 0.5)
    assert student.meta["bertprod"]["distillation"]["teacher_cache"]["words"] == sum(len(eg.predicted) for eg in gold + plain)
    loaded = spacy.load(tmp_path / "model-last")
    expected = [[(e.start, e.end, e.label_) for e in doc.ents] for doc in student.pipe(TEXTS)]
    assert [[(e.start, e.end, e.label_) for e in doc.ents] for doc in loaded.pipe(TEXTS)] == expected
    docs = [teacher.make_doc(t) for t in TEXTS]
    for a, b in zip(student.get_pipe("bertprod_ner").model.predict(docs), loaded.get_pipe("bertprod_ner").model.predict(docs)):
        np.testing.assert_allclose(a, b, atol=1e-6)
    out = run_without_torch(TAG, tmp_path, str(tmp_path / "model-last"))
    assert out.returncode == 0, out.stderr[-3000:]
    got = json.loads(out.stdout.splitlines()[-1])
    assert got["loaded"] == []
    assert [[tuple(e) for e in doc] for doc in got["ents"]] == expected
    # nothing to export or quantize: a coded error, not E076's "give a bertprod pipeline"
    for convert in (onnx_path, quantize_path):
        with pytest.raises(ValueError, match=r"E185.*\['bertprod_ner'\]"):
            convert(tmp_path / "model-last", tmp_path / "converted")


def test_hidden_states_and_components_without_a_token_encoder_are_refused(teacher, tiny_bert):
    examples = make_examples(teacher)
    student = make_cnn_student(teacher, TINY, lambda: examples)
    for cached in (True, False):
        with pytest.raises(ValueError, match="E187.*bertprod_ner"):
            distill(teacher, student, examples, [], steps=1, hidden_weight=0.5, cache_teacher_scores=cached, log=lambda _: None)
    textcat = spacy.blank("en")
    textcat.add_pipe("bertprod_textcat", config={"model": {"encoder": {"name": tiny_bert, "window": 16, "stride": 8}}})
    cats = cats_examples(textcat)
    textcat.initialize(lambda: cats)
    with pytest.raises(ValueError, match="E188.*bertprod_textcat"):
        make_cnn_student(textcat, TINY, lambda: cats)


def test_distill_cli_cnn_student(trained_ner_path, tmp_path):
    teacher = spacy.load(trained_ner_path)
    DocBin(docs=[eg.reference for eg in make_examples(teacher)]).to_disk(tmp_path / "train.spacy")
    (tmp_path / "plain.txt").write_text("\n".join(TEXTS) + "\n", encoding="utf8")
    args = ("--train", tmp_path / "train.spacy", "--unlabelled", tmp_path / "plain.txt", "--steps", "4", "--eval-every", "2")
    cnn = ("--student", "cnn", "--cnn-width", "16", "--cnn-depth", "2", "--cnn-embed-rows", "200", "--cnn-window", "2")
    out = bertprod("distill", trained_ner_path, tmp_path / "student", *args, *cnn)
    assert "CNN student (spacy.Tok2Vec.v2" in out and "teacher scores cached: 78 words" in out
    student = spacy.load(tmp_path / "student" / "model-last")
    encoder = student.config["components"]["bertprod_ner"]["model"]["encoder"]
    assert encoder["encode"] == {"@architectures": "spacy.MaxoutWindowEncoder.v2", "width": 16, "depth": 2, "window_size": 2, "maxout_pieces": 3}
    info = student.meta["bertprod"]["distillation"]
    assert info["cnn"] == {"width": 16, "depth": 2, "embed_rows": 200, "window_size": 2, "wordpiece_dims": 0, "wordpiece_table": "teacher"} and "teacher_cache" in info
    out = bertprod("distill", trained_ner_path, tmp_path / "live", *args, *cnn, "--no-cache-teacher")
    assert "teacher scores cached" not in out
    assert "teacher_cache" not in spacy.load(tmp_path / "live" / "model-last").meta["bertprod"]["distillation"]
    out = bertprod("distill", trained_ner_path, tmp_path / "filed", *args, *cnn, "--cache-file", tmp_path / "teacher.npz")
    assert f"teacher cache written to {tmp_path / 'teacher.npz'}" in out
    out = bertprod("distill", trained_ner_path, tmp_path / "filed", *args, *cnn, "--cache-file", tmp_path / "teacher.npz")
    assert "teacher cache bertprod_ner: 12 texts read from" in out and "written" not in out
    out = bertprod("distill", trained_ner_path, tmp_path / "bad", *args, *cnn, "--cache-file", tmp_path / "teacher.npz", "--no-cache-teacher", exit_code=1)
    assert "✘ [E186] Cannot distil as asked: a cache file keeps the teacher cache" in out
    out = bertprod("distill", trained_ner_path, tmp_path / "bad", *args, *cnn, "--hidden-weight", "0.5", exit_code=1)
    assert "✘ [E187]" in out
    out = bertprod("distill", trained_ner_path, tmp_path / "bad", *args, "--cnn-wordpiece-dims", "8", "--cnn-depth", "2", exit_code=1)
    assert "✘ [E186] Cannot distil as asked: --cnn-depth, --cnn-wordpiece-dims only shape a CNN student" in " ".join(out.split())
    for extra in (("--student", "lstm"), ("--student", "cnn", "--n-layers", "1")):
        assert "✘ [E186] Cannot distil as asked: " in bertprod("distill", trained_ner_path, tmp_path / "bad", *args, *extra, exit_code=1)


# -- static wordpiece vectors -----------------------------------------------------
def _holder(teacher):
    return bertprod_encoders(teacher)["bertprod_ner"].attrs["tokenizer"]


def test_wordpiece_vectors_are_the_mean_of_each_words_pieces(teacher):
    holder = _holder(teacher)
    rows = holder.tokenizer.get_vocab_size()
    table = np.random.default_rng(0).normal(size=(rows, 6)).astype("f")
    layer = wordpiece_vectors(6)
    set_wordpiece_table(layer, holder, table)
    layer.initialize()
    words = ["Kwazulu", "Natal", "hosted", "unbelievably", "x"]
    doc = teacher.make_doc(" ".join(words[:2]) + "  " + " ".join(words[2:]))  # the double space is a token of its own
    (vectors,) = layer.predict([doc])
    assert [t.text for t in doc] == ["Kwazulu", "Natal", " ", "hosted", "unbelievably", "x"]
    pieces = [holder.tokenizer.encode(w, add_special_tokens=False).ids for w in words]
    assert any(len(p) > 1 for p in pieces)  # some words are several pieces
    expected = [table[p].mean(axis=0) for p in pieces]
    expected.insert(2, np.zeros(6, dtype="f"))  # a space has no wordpiece
    np.testing.assert_allclose(vectors, np.stack(expected), atol=1e-5)
    assert layer.predict([teacher.make_doc("")])[0].shape == (0, 6)


def test_wordpiece_table_is_the_embeddings_principal_components_and_checked():
    rng = np.random.default_rng(1)
    weights = rng.normal(size=(500, 12)) * np.linspace(5, 0.1, 12)  # column 0 varies most
    table = table_from_embeddings(weights, 3)
    assert table.shape == (500, 3) and table.dtype == np.float32
    np.testing.assert_allclose(table.std(axis=0), 1.0, atol=1e-4)
    centred = weights - weights.mean(axis=0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    for i in range(3):  # the same directions as an SVD's, up to sign
        assert abs(np.corrcoef(table[:, i], centred @ vt[i])[0, 1]) > 0.999
    with pytest.raises(ValueError, match="E192"):
        table_from_embeddings(weights, 13)
    with pytest.raises(ValueError, match="E193"):
        wordpiece_vectors(3).initialize()


def test_cnn_student_random_wordpiece_table_is_the_control_of_the_teachers(teacher):
    gold = make_examples(teacher)
    student = make_cnn_student(teacher, CnnSettings(width=16, depth=1, embed_rows=100, wordpiece_dims=8, wordpiece_table="random"), lambda: gold)
    (layer,) = [node for node in student.get_pipe("bertprod_ner").model.walk() if node.name == "bertprod_wordpiece_vectors"]
    weights = hf_module(bertprod_encoders(teacher)["bertprod_ner"]).get_input_embeddings().weight.detach().numpy()
    taught = table_from_embeddings(weights, 8)
    # the teacher's table's shape and scale, none of its values; seeded, so a rerun builds the same control
    assert layer.get_param("E").shape == taught.shape and not np.allclose(layer.get_param("E"), taught, atol=0.1)
    np.testing.assert_array_equal(layer.get_param("E"), random_wordpiece_table(taught.shape))
    assert student.meta["bertprod"]["distillation"]["cnn"]["wordpiece_table"] == "random"
    for bad in (CnnSettings(wordpiece_dims=8, wordpiece_table="glove"), CnnSettings(wordpiece_table="random")):
        with pytest.raises(ValueError, match="E066"):
            make_cnn_student(teacher, bad, lambda: gold)


def test_cnn_student_with_wordpiece_vectors_keeps_the_teachers_table_frozen_and_round_trips(teacher, tmp_path):
    gold = make_examples(teacher)
    settings = CnnSettings(width=16, depth=1, embed_rows=100, wordpiece_dims=8)
    student = make_cnn_student(teacher, settings, lambda: gold)
    embed = student.config["components"]["bertprod_ner"]["model"]["encoder"]["embed"]
    assert embed["@architectures"] == "bertprod.WordpieceHashEmbed.v1" and embed["wordpiece_dims"] == 8
    (layer,) = [node for node in student.get_pipe("bertprod_ner").model.walk() if node.name == "bertprod_wordpiece_vectors"]
    weights = hf_module(bertprod_encoders(teacher)["bertprod_ner"]).get_input_embeddings().weight.detach().numpy()
    np.testing.assert_allclose(layer.get_param("E"), table_from_embeddings(weights, 8), atol=1e-5)
    with pytest.raises(ValueError, match="E191"):
        set_wordpiece_table(layer, _holder(teacher), np.zeros((5, 8), dtype="f"))
    table = layer.get_param("E").copy()
    distill(teacher, student, gold, gold, output=tmp_path, steps=20, batch_words=100, learn_rate=1e-2, eval_every=10, cache_teacher_scores=True, log=lambda _: None)
    np.testing.assert_array_equal(layer.get_param("E"), table)  # frozen: no update moved it
    expected = [[(e.start, e.end, e.label_) for e in doc.ents] for doc in student.pipe(TEXTS)]
    assert any(expected)  # a trained student tags something: the comparisons below are not of empty output
    loaded = spacy.load(tmp_path / "model-last")
    docs = [teacher.make_doc(t) for t in TEXTS]
    for a, b in zip(student.get_pipe("bertprod_ner").model.predict(docs), loaded.get_pipe("bertprod_ner").model.predict(docs)):
        np.testing.assert_allclose(a, b, atol=1e-6)
    (saved,) = [node for node in loaded.get_pipe("bertprod_ner").model.walk() if node.name == "bertprod_wordpiece_vectors"]
    np.testing.assert_array_equal(saved.get_param("E"), table)
    assert saved.attrs["tokenizer"].tokenizer.to_str() == _holder(teacher).tokenizer.to_str()
    out = run_without_torch(TAG, tmp_path, str(tmp_path / "model-last"))
    assert out.returncode == 0, out.stderr[-3000:]
    got = json.loads(out.stdout.splitlines()[-1])
    assert got["loaded"] == [] and [[tuple(e) for e in doc] for doc in got["ents"]] == expected
