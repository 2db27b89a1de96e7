"""The teacher's soft targets computed once (`training/teacher_cache.py`):
the same targets, and the same distillation step, as the live teacher."""

import numpy as np
import pytest
import spacy

from conftest import TRAIN_DATA, make_examples
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
    assert cached.pipe_names == ["bertprod_ner"] and logged[-1].startswith("teacher cache bertprod_ner: 40/40 words")
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
