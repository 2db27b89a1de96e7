import numpy as np
import pytest
import spacy
from spacy.training import Example

from conftest import TRAIN_DATA, assert_varies, build_tiny_bert, cats_examples, make_examples, ner_config, train
from spacy_bertprod.compression.pipelines import quantize_pipeline
from spacy_bertprod.training.distiller import (
    distill,
    distill_step,
    keep_layers,
    make_student,
    spread_layers,
)
from spacy_bertprod.training.squad import make_examples as squad_examples


def _module(nlp, name):
    return nlp.get_pipe(name).model.get_ref("encoder").get_ref("transformer").shims[0]._model


@pytest.fixture(scope="module")
def ner_teacher(tiny_bert):
    nlp = spacy.blank("en")
    nlp.add_pipe("bertprod_ner", config=ner_config(tiny_bert))
    return train(nlp, make_examples(nlp))


def test_spread_layers():
    assert spread_layers(6, 3) == [0, 2, 5]
    assert spread_layers(12, 6) == [0, 2, 4, 7, 9, 11]
    assert spread_layers(6, 6) == list(range(6))
    with pytest.raises(ValueError, match="n_layers"):
        spread_layers(6, 7)


def test_keep_layers_copies_the_chosen_blocks(ner_teacher):
    teacher = _module(ner_teacher, "bertprod_ner")
    student = keep_layers(teacher, [1])
    assert len(student.encoder.layer) == 1 and student.config.num_hidden_layers == 1
    assert len(teacher.encoder.layer) == 2  # the teacher is untouched
    for (name, a), b in zip(student.encoder.layer[0].state_dict().items(), teacher.encoder.layer[1].state_dict().values()):
        assert a.data_ptr() != b.data_ptr(), name
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    for bad in ([], [1, 0], [2], [0, 0]):
        with pytest.raises(ValueError, match="layers"):
            keep_layers(teacher, bad)


def test_ner_student_learns_the_teacher(ner_teacher, tmp_path):
    student = make_student(ner_teacher, n_layers=1)
    assert len(_module(student, "bertprod_ner").encoder.layer) == 1
    examples = [Example(student.make_doc(eg.reference.text), eg.reference) for eg in make_examples(student)]
    before = student.evaluate(examples)["ents_f"]
    best = distill(ner_teacher, student, examples, examples, output=tmp_path, steps=40, batch_words=200, learn_rate=1e-3, eval_every=20, log=lambda _: None)
    assert best["ents_f"] >= max(before, 0.5)
    loaded = spacy.load(tmp_path / "model-best")
    assert len(_module(loaded, "bertprod_ner").encoder.layer) == 1
    info = loaded.meta["bertprod"]["distillation"]
    assert info["layers"] == {"bertprod_ner": [0]} and info["temperature"] == 2.0
    # model-last holds the student as training left it: same tag
    # probabilities (which depend on the input) and entities
    last = spacy.load(tmp_path / "model-last")
    _assert_same_ner(student, last)
    # the teacher was not changed
    assert len(_module(ner_teacher, "bertprod_ner").encoder.layer) == 2


def test_student_on_a_narrower_encoder(ner_teacher, tmp_path):
    narrow = str(build_tiny_bert(tmp_path / "narrow", layers=1, width=16, seed=1))
    examples = make_examples(ner_teacher)
    with pytest.raises(ValueError, match="E034"):
        make_student(ner_teacher, encoder=narrow)
    with pytest.raises(ValueError, match="E065.*encoder"):
        make_student(ner_teacher, encoder=narrow, n_layers=1, get_examples=lambda: examples)
    student = make_student(ner_teacher, encoder=narrow, get_examples=lambda: examples)
    module = _module(student, "bertprod_ner")
    assert module.config.hidden_size == 16 and len(module.encoder.layer) == 1
    assert student.get_pipe("bertprod_ner").labels == ner_teacher.get_pipe("bertprod_ner").labels
    start = _soft_loss(ner_teacher, student, examples)
    best = distill(ner_teacher, student, examples, examples, output=tmp_path / "out", steps=60, batch_words=200, learn_rate=3e-3, eval_every=30, log=lambda _: None)
    assert _soft_loss(ner_teacher, student, examples) < 0.5 * start
    assert best["ents_f"] > 0.5
    loaded = spacy.load(tmp_path / "out" / "model-last")
    assert loaded.meta["bertprod"]["distillation"]["encoder"] == narrow
    assert _module(loaded, "bertprod_ner").config.hidden_size == 16
    _assert_same_ner(student, loaded)


def _assert_same_ner(expected, got):
    texts = [t for t, _ in TRAIN_DATA]
    a = expected.get_pipe("bertprod_ner").model.predict([expected.make_doc(t) for t in texts])
    b = got.get_pipe("bertprod_ner").model.predict([got.make_doc(t) for t in texts])
    assert_varies(a)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)

    def ents(nlp):
        return [[(e.start, e.end, e.label_) for e in doc.ents] for doc in nlp.pipe(texts)]

    assert any(ents(expected)) and ents(got) == ents(expected)


def _soft_loss(teacher, student, examples):
    losses = {}
    distill_step(teacher, student, examples, temperature=2.0, soft_weight=1.0, gold_weight=0.0, drop=0.0, sgd=None, losses=losses)
    return sum(v for k, v in losses.items() if k.endswith("_soft"))


def test_unlabelled_text_trains_the_soft_targets(ner_teacher):
    student = make_student(ner_teacher, n_layers=1)
    plain = [Example(student.make_doc(t), student.make_doc(t)) for t, _ in TRAIN_DATA]
    start = _soft_loss(ner_teacher, student, plain)
    distill(ner_teacher, student, plain, [], steps=60, batch_words=200, learn_rate=1e-3, gold_weight=1.0, eval_every=100, log=lambda _: None)
    assert _soft_loss(ner_teacher, student, plain) < 0.5 * start


def test_progress_bar_on_stderr_keeps_the_log_whole(ner_teacher, capsys):
    student = make_student(ner_teacher, n_layers=1)
    lines = []
    distill(ner_teacher, student, make_examples(student), [], steps=6, batch_words=200, eval_every=3, log=lines.append, progress=True)
    err = capsys.readouterr().err
    assert "distilling" in err and "6/6" in err
    # the two evaluations' lines reach the log as they are, after the header
    assert [line.split()[0] for line in lines] == ["step", "3", "6"]


def _hidden_loss(teacher, student, examples):
    losses = {}
    distill_step(teacher, student, examples, temperature=2.0, soft_weight=0.0, gold_weight=0.0, hidden_weight=1.0, drop=0.0, sgd=None, losses=losses)
    return losses["bertprod_ner_hidden"]


def test_hidden_state_matching(ner_teacher, tmp_path):
    student = make_student(ner_teacher, n_layers=1)
    examples = make_examples(student)
    start = _hidden_loss(ner_teacher, student, examples)
    assert start > 0
    # the teacher matched against itself: no hidden loss
    assert _hidden_loss(ner_teacher, make_student(ner_teacher), examples) == pytest.approx(0.0, abs=1e-10)
    distill(ner_teacher, student, examples, [], steps=30, batch_words=200, learn_rate=1e-3, soft_weight=0.0, gold_weight=0.0, hidden_weight=1.0, eval_every=100, log=lambda _: None)
    assert _hidden_loss(ner_teacher, student, examples) < 0.5 * start
    assert student.meta["bertprod"]["distillation"]["hidden_weight"] == 1.0
    # a narrower student has states of another shape: a clear error
    narrow = make_student(ner_teacher, encoder=str(build_tiny_bert(tmp_path / "narrow", layers=1, width=16)), get_examples=lambda: examples)
    with pytest.raises(ValueError, match="E036.*hidden_weight = 0"):
        _hidden_loss(ner_teacher, narrow, examples)


def test_textcat_students(tiny_bert):
    for exclusive in (True, False):
        nlp = spacy.blank("en")
        nlp.add_pipe("bertprod_textcat", config={"exclusive_classes": exclusive, "model": {"encoder": {"name": tiny_bert, "window": 16, "stride": 8}}})
        examples = cats_examples(nlp)
        teacher = train(nlp, examples, steps=30)
        student = make_student(teacher, layers=[0])
        start = _soft_loss(teacher, student, examples)
        distill(teacher, student, examples, examples, steps=30, batch_words=100, learn_rate=1e-3, eval_every=30, log=lambda _: None)
        assert _soft_loss(teacher, student, examples) < 0.5 * start
        assert student.evaluate(examples)["cats_macro_f"] == 1.0


QA_CONTEXT = "Marie Curie was born in Warsaw in 1867. She moved to Paris in 1891."
QA_ROWS = [
    {"id": "1", "question": "where was marie curie born?", "context": QA_CONTEXT, "answers": [(24, 30, "Warsaw")]},
    {"id": "2", "question": "where did she move?", "context": QA_CONTEXT, "answers": [(53, 58, "Paris")]},
]


@pytest.fixture(scope="module")
def qa_teacher(tiny_bert):
    nlp = spacy.blank("en")
    nlp.add_pipe("bertprod_qa", config={"model": {"encoder": {"name": tiny_bert, "window": 48, "stride": 24}, "doc_stride": 16, "max_question_len": 12}})
    examples = list(squad_examples(nlp, QA_ROWS))
    return train(nlp, examples, steps=60), examples


def _answers(nlp):
    qa = nlp.get_pipe("bertprod_qa")
    return [[(a.start_char, a.end_char, a._.bertprod_score) for a in qa.answer(nlp.make_doc(QA_CONTEXT), r["question"], top_k=3)] for r in QA_ROWS]


def test_qa_student_answers_and_round_trips(qa_teacher, tmp_path):
    teacher, examples = qa_teacher
    student = make_student(teacher, n_layers=1)
    start = _soft_loss(teacher, student, examples)
    distill(teacher, student, examples, examples, output=tmp_path, steps=40, batch_words=100, learn_rate=1e-3, eval_every=40, log=lambda _: None)
    assert _soft_loss(teacher, student, examples) < 0.5 * start
    # it answers as the teacher does, not only with a lower loss
    answers = _answers(student)
    assert [a[0][:2] for a in answers] == [(24, 30), (53, 58)] == [a[0][:2] for a in _answers(teacher)]
    assert student.evaluate(examples)["qa_f1"] == 1.0
    # and model-last is that student: same spans and scores
    loaded = spacy.load(tmp_path / "model-last")
    assert len(_module(loaded, "bertprod_qa").encoder.layer) == 1
    assert _answers(loaded) == answers


def test_qa_student_needs_the_teachers_vocabulary(qa_teacher, tmp_path):
    teacher, examples = qa_teacher
    other = str(build_tiny_bert(tmp_path / "other-vocab", layers=1, width=16, extra_words=("sorbonne", "physics")))
    with pytest.raises(ValueError, match="E035.*bertprod_qa"):
        make_student(teacher, encoder=other, get_examples=lambda: examples)
    # the same vocabulary on a narrower encoder is fine
    same = str(build_tiny_bert(tmp_path / "same-vocab", layers=1, width=16))
    assert _module(make_student(teacher, encoder=same, get_examples=lambda: examples), "bertprod_qa").config.hidden_size == 16


def test_shared_encoder_teacher_is_refused(tiny_bert):
    nlp = spacy.blank("en")
    nlp.add_pipe("tok2vec", config={"model": {"@architectures": "bertprod.Encoder.v1", "name": tiny_bert, "window": 16, "stride": 8}})
    nlp.add_pipe("bertprod_ner", config={"model": {"encoder": {"@architectures": "spacy.Tok2VecListener.v1", "width": 32, "upstream": "*"}}})
    nlp.initialize(lambda: make_examples(nlp))
    with pytest.raises(ValueError, match="E025.*bertprod_ner"):
        make_student(nlp, n_layers=1)


def test_bad_teachers_and_settings(ner_teacher):
    with pytest.raises(ValueError, match="bertprod_ner, bertprod_textcat or bertprod_qa"):
        make_student(spacy.blank("en"), n_layers=1)
    quantized = make_student(ner_teacher)  # a copy with every layer
    quantize_pipeline(quantized)
    with pytest.raises(ValueError, match="fp32"):
        make_student(quantized, n_layers=1)
    student = make_student(ner_teacher, n_layers=1)
    examples = make_examples(student)
    for setting in ({"temperature": 0.0}, {"soft_weight": -1.0}, {"soft_weight": 0.0, "gold_weight": 0.0}):
        with pytest.raises(ValueError):
            distill(ner_teacher, student, examples, [], steps=1, log=lambda _: None, **setting)
    with pytest.raises(ValueError, match="No training data"):
        distill(ner_teacher, student, [], [], steps=1, log=lambda _: None)
