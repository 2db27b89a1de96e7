"""`nlp.pipe(n_process=2)` under the "spawn" start method (the default on
macOS and Windows), which pickles the pipeline and every extension, and under
"fork" (the default on Linux)."""

import contextlib
import multiprocessing
import signal
from typing import Iterator

import pytest
import spacy
from spacy.training import Example
from thinc.api import fix_random_seed

from conftest import TRAIN_DATA, train

TEXTS = [text for text, _ in TRAIN_DATA]
QUESTIONS = ["where?", "who visited?"]


@contextlib.contextmanager
def start_method(method: str, seconds: int = 240) -> Iterator[None]:
    """Run with multiprocessing's `method`, failing after `seconds` instead
    of hanging (a forked torch used to deadlock; spaCy terminates its
    workers when the pipe is interrupted)."""

    def fail(signum, frame):
        for worker in multiprocessing.active_children():  # spaCy joins its workers
            worker.kill()
        raise TimeoutError(f"nlp.pipe(n_process=2) under {method!r} still running after {seconds} s")

    previous = multiprocessing.get_start_method(allow_none=True)
    multiprocessing.set_start_method(method, force=True)
    handler = signal.signal(signal.SIGALRM, fail)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, handler)
        multiprocessing.set_start_method(previous, force=True)


@pytest.fixture(scope="module")
def pipeline_path(tiny_bert, tmp_path_factory):
    """A saved pipeline with all three components, trained a few steps so
    that no head gives constant outputs."""
    fix_random_seed(0)
    encoder = {"name": tiny_bert, "window": 32, "stride": 16, "max_batch_wordpieces": 256}
    nlp = spacy.blank("en")
    nlp.add_pipe("bertprod_ner", config={"model": {"encoder": encoder}})
    nlp.add_pipe("bertprod_textcat", config={"model": {"encoder": encoder}})
    nlp.add_pipe("bertprod_qa", config={"model": {"encoder": encoder, "doc_stride": 8, "max_question_len": 8}, "top_k": 2})
    examples = []
    for i, (text, ents) in enumerate(TRAIN_DATA):
        cats = {"EVEN": float(i % 2 == 0), "ODD": float(i % 2 == 1)}
        examples.append(Example.from_dict(nlp.make_doc(text), {"entities": ents, "cats": cats}))
    train(nlp, examples, steps=8)
    path = tmp_path_factory.mktemp("mp") / "pipeline"
    nlp.to_disk(path)
    return path


def _outputs(docs):
    """What each doc got, and its scores (compared with a float tolerance:
    other processes may run other kernels)."""
    rows, scores = [], []
    for doc in docs:
        answers = doc.spans["bertprod_qa"]
        for span in answers:
            assert type(span._.bertprod_answer_chars) is tuple
        rows.append(
            (
                [(e.text, e.label_) for e in doc.ents],
                sorted(doc.cats),
                [(s.text, s._.bertprod_answer_chars, s._.bertprod_question) for s in answers],
            )
        )
        scores.append([e._.bertprod_score for e in doc.ents] + list(doc.cats.values()) + list(answers.attrs["scores"]))
    return rows, scores


def _docs(nlp):
    docs = [nlp.make_doc(text) for text in TEXTS]
    for doc in docs:
        doc._.questions = QUESTIONS
    return docs


@pytest.mark.parametrize("method", ["spawn", "fork"])
def test_n_process_with_each_component(pipeline_path, method):
    """Under spawn, every pipeline failed: the span extensions' getters were
    lambdas ("Can't pickle local object '_getter.<locals>.<lambda>'"). Under
    fork, a worker hung in its first torch op once the parent had run the
    pipeline (which it does here, for the expected outputs)."""
    nlp = spacy.load(pipeline_path)
    expected, expected_scores = _outputs(nlp.pipe(_docs(nlp), batch_size=2))
    assert any(row[0] for row in expected) and all(row[2] for row in expected)
    with start_method(method):
        got, scores = _outputs(nlp.pipe(_docs(nlp), n_process=2, batch_size=2))
    assert got == expected
    for row, expected_row in zip(scores, expected_scores):
        assert row == pytest.approx(expected_row, rel=1e-5)


def test_spawn_without_bertprod_components():
    """A pipeline without bertprod components failed under spawn too, once
    spacy_bertprod was imported (its extensions are global)."""
    import spacy_bertprod.pipeline.extensions  # noqa: F401

    nlp = spacy.blank("en")
    nlp.add_pipe("sentencizer")
    with start_method("spawn"):
        docs = list(nlp.pipe(TEXTS, n_process=2, batch_size=2))
    assert [d.text for d in docs] == TEXTS and all(d.has_annotation("SENT_START") for d in docs)
