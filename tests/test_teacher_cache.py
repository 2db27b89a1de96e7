"""The teacher's soft targets computed once (`training/teacher_cache.py`):
the same targets, and the same distillation step, as the live teacher."""

import numpy as np
import pytest
import spacy

from conftest import TRAIN_DATA, make_examples, ner_config, train
from spacy_bertprod.training.distiller import distill_step
from spacy_bertprod.training.students import CnnSettings, make_cnn_student
from spacy_bertprod.training.teacher_cache import CachedScores, cache_teacher


@pytest.fixture(scope="module")
def teacher(trained_ner_path):
    return spacy.load(trained_ner_path)


def test_cached_soft_targets_are_the_teachers(teacher):
    examples = make_examples(teacher) + [type(eg)(teacher.make_doc(" "), teacher.make_doc(" ")) for eg in make_examples(teacher)[:1]]
    student = make_cnn_student(teacher, CnnSettings(width=16, depth=1, embed_rows=100), lambda: examples)
    logged = []
    cached = cache_teacher(teacher, student, examples, batch_words=20, log=logged.append)
    assert cached.pipe_names == ["bertprod_ner"] and logged[-1].startswith("teacher cache bertprod_ner: 39/39 words")
    docs = [eg.predicted for eg in examples if eg.predicted.text.strip()]
    live = teacher.get_pipe("bertprod_ner").model.predict(docs)
    got = cached.get_pipe("bertprod_ner").model.predict(docs[::-1])[::-1]
    assert len(got) == len(live) == len(TRAIN_DATA)
    for a, b in zip(live, got):
        assert b.dtype == np.float32
        np.testing.assert_allclose(a, b, atol=1e-3)
    assert cached.nbytes == sum(a.size for a in live) * 2  # float16
    # one distillation step against the cache is the step against the live teacher
    losses = {}
    for source in (teacher, cached):
        losses[source is cached] = distill_step(source, student, examples, temperature=2.0, soft_weight=0.5, gold_weight=0.5, drop=0.0, sgd=None, losses={})
    assert losses[True]["bertprod_ner_soft"] > 0
    assert losses[True]["bertprod_ner_soft"] == pytest.approx(losses[False]["bertprod_ner_soft"], rel=1e-3)
    assert losses[True]["bertprod_ner_gold"] == pytest.approx(losses[False]["bertprod_ner_gold"], rel=1e-6)


def test_what_the_cache_cannot_hold_is_refused(teacher):
    scores = CachedScores("bertprod_qa", teacher.get_pipe("bertprod_ner").model.ops)
    doc = teacher.make_doc("John Smith works in London.")
    with pytest.raises(ValueError, match="E189.*bertprod_qa.*one doc per example"):
        scores.add([(doc, "Who works in London?")], [np.zeros((3, 2), dtype="float32")])
    with pytest.raises(ValueError, match="E189.*one array"):
        scores.add([doc, doc], [np.zeros((6, 2), dtype="float32")])
    scores.add([doc], np.zeros((1, 2), dtype="float32"))  # one row per doc, as textcat scores
    assert scores.predict([doc]).shape == (1, 2)
    with pytest.raises(ValueError, match="E189.*not in the cache"):
        scores.predict([teacher.make_doc("Another text.")])


def test_cache_file_is_read_back_for_the_same_texts_and_teacher(teacher, tmp_path):
    examples = make_examples(teacher)
    student = make_cnn_student(teacher, CnnSettings(width=16, depth=1, embed_rows=100), lambda: examples)
    path = tmp_path / "cache" / "teacher.npz"
    logged = []
    first = cache_teacher(teacher, student, examples, path=path, log=logged.append)
    assert logged[-1] == f"teacher cache written to {path}"
    with np.load(path, allow_pickle=False) as data:
        assert sorted(data.files) == ["bertprod_ner/key", "bertprod_ner/lengths", "bertprod_ner/rows", "bertprod_ner/scores"]
        assert data["bertprod_ner/scores"].dtype == np.float16 and data["bertprod_ner/lengths"].sum() == 39
    # a new run, new docs of the same texts: read, not computed
    again = make_examples(teacher)
    logged.clear()
    second = cache_teacher(teacher, student, again, path=path, log=logged.append)
    assert logged == [f"teacher cache bertprod_ner: 6 texts read from {path}"]
    for a, b in zip(first.get_pipe("bertprod_ner").model.predict([eg.predicted for eg in examples]), second.get_pipe("bertprod_ner").model.predict([eg.predicted for eg in again])):
        np.testing.assert_array_equal(a, b)
    # other texts: computed again and the file rewritten
    logged.clear()
    cache_teacher(teacher, student, again[:3], path=path, log=logged.append)
    assert logged[0].startswith("teacher cache bertprod_ner: ") and "words/s" in logged[0] and logged[-1].startswith("teacher cache written")
    with np.load(path, allow_pickle=False) as data:
        assert len(data["bertprod_ner/lengths"]) == 3


def _ner_teacher(tiny_bert, data=TRAIN_DATA, steps=15, seed=1):
    nlp = spacy.blank("en")
    nlp.add_pipe("bertprod_ner", config=ner_config(model_path=tiny_bert))
    return train(nlp, make_examples(nlp, data), steps=steps, seed=seed)


def test_an_ensembles_soft_targets_are_the_teachers_mean(teacher, tiny_bert, tmp_path):
    other = _ner_teacher(tiny_bert)
    assert other.get_pipe("bertprod_ner").labels == teacher.get_pipe("bertprod_ner").labels
    examples = make_examples(teacher)
    student = make_cnn_student(teacher, CnnSettings(width=16, depth=1, embed_rows=100), lambda: examples)
    logged = []
    path = tmp_path / "ensemble.npz"
    cached = cache_teacher(teacher, student, examples, others=[other], path=path, log=logged.append)
    assert "teacher cache bertprod_ner: ensemble teacher 2 of 2" in logged
    docs = [eg.predicted for eg in examples]
    ours, theirs = (t.get_pipe("bertprod_ner").model.predict(docs) for t in (teacher, other))
    got = cached.get_pipe("bertprod_ner").model.predict(docs)
    assert max(float(np.abs(a - b).max()) for a, b in zip(ours, theirs)) > 0.01  # two teachers that disagree
    for a, b, mean in zip(ours, theirs, got):
        np.testing.assert_allclose(mean, (a + b) / 2, atol=1e-3)
    # the file's key covers every teacher: the first alone does not read the ensemble's scores
    logged.clear()
    cache_teacher(teacher, student, make_examples(teacher), path=path, log=logged.append)
    assert "words/s" in logged[0]


def test_an_ensemble_of_other_labels_is_refused(teacher, tiny_bert):
    examples = make_examples(teacher)
    student = make_cnn_student(teacher, CnnSettings(width=16, depth=1, embed_rows=100), lambda: examples)
    no_org = [(text, [e for e in ents if e[2] != "ORG"]) for text, ents in TRAIN_DATA]
    with pytest.raises(ValueError, match=r"E197.*teacher 2's component 'bertprod_ner' has the labels \['LOC', 'PER'\]"):
        cache_teacher(teacher, student, examples, others=[_ner_teacher(tiny_bert, no_org, steps=1)])
    with pytest.raises(ValueError, match="E197.*teacher 3's component 'bertprod_ner' is missing"):
        cache_teacher(teacher, student, examples, others=[teacher, spacy.blank("en")])
