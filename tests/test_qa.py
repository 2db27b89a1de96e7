from types import SimpleNamespace

import numpy as np
import pytest
import spacy

from conftest import QA_CONTEXT, QA_ROWS, random_text, train
from spacy_bertprod.training.squad import make_examples

CONTEXT, ROWS = QA_CONTEXT, QA_ROWS


def _config(tiny_bert, **settings):
    model = {"encoder": {"name": tiny_bert, "window": 48, "stride": 24}, "doc_stride": 16, "max_question_len": 12}
    return {"model": model, **settings}


def _train(tiny_bert, rows=ROWS, steps=60, **settings):
    nlp = spacy.blank("en")
    qa = nlp.add_pipe("bertprod_qa", config=_config(tiny_bert, **settings))
    examples = list(make_examples(nlp, rows))
    return train(nlp, examples, steps=steps), qa, examples


@pytest.fixture(scope="module")
def trained(tiny_bert):
    return _train(tiny_bert)


def test_answers_are_spans_best_first(trained):
    nlp, qa, _ = trained
    doc = nlp.make_doc(CONTEXT)
    answers = qa.answer(doc, ROWS[0]["question"], top_k=3)
    assert answers[0].text == "Warsaw" and answers[0].label_ == "ANSWER"
    scores = [a._.bertprod_score for a in answers]
    assert scores == sorted(scores, reverse=True) and 0 < scores[0] <= 1
    assert answers[0]._.bertprod_question == ROWS[0]["question"]
    assert answers[0]._.bertprod_answer_chars == (24, 30)
    assert answers[0].start_char == 24 and answers[0].end_char == 30


def test_pipeline_questions_from_doc_or_config(trained, tiny_bert):
    nlp, qa, examples = trained
    doc = nlp.make_doc(CONTEXT)
    doc._.questions = [r["question"] for r in ROWS]
    doc = qa(doc)
    group = doc.spans["bertprod_qa"]
    assert [s.text for s in group] == ["Warsaw", "Paris"]
    assert group.attrs["questions"] == doc._.questions and len(group.attrs["scores"]) == 2
    assert nlp.evaluate(examples)["qa_f1"] == 1.0
    qa.cfg["questions"] = [ROWS[1]["question"]]
    try:
        answered = nlp(CONTEXT)
        assert [s.text for s in answered.spans["bertprod_qa"]] == ["Paris"]
    finally:
        qa.cfg["questions"] = []
    unasked = nlp(CONTEXT)
    assert len(unasked.spans["bertprod_qa"]) == 0  # no questions, no answers


def test_questions_sharing_an_answer_span_keep_their_own_attributes(trained):
    # spaCy keys span extensions by characters only: two questions answered
    # by the same span must not overwrite each other's question and score
    nlp, qa, _ = trained
    doc = nlp.make_doc(CONTEXT)
    questions = ["where was she born?", "which city?"]
    qa.set_annotations([doc], ([0, 0], [(questions[0], [(24, 30, 0.9)]), (questions[1], [(24, 30, 0.4), (53, 58, 0.3)])]))
    group = doc.spans["bertprod_qa"]
    assert [(s.text, s._.bertprod_question, s._.bertprod_score) for s in group] == [("Warsaw", questions[0], 0.9), ("Warsaw", questions[1], 0.4), ("Paris", questions[1], 0.3)]
    assert group.attrs["questions"] == [questions[0], questions[1], questions[1]]
    assert group.attrs["scores"] == [0.9, 0.4, 0.3]
    again = type(doc)(nlp.vocab).from_bytes(doc.to_bytes())
    assert [(s._.bertprod_question, s._.bertprod_score) for s in again.spans["bertprod_qa"]] == [
        (q, sc) for _, q, sc in [("Warsaw", questions[0], 0.9), ("Warsaw", questions[1], 0.4), ("Paris", questions[1], 0.3)]
    ]
    # pipe answers are the answers of `answer`, question by question
    doc = nlp.make_doc(CONTEXT)
    doc._.questions = [r["question"] for r in ROWS] * 2
    piped = [(s._.bertprod_question, s.text, s._.bertprod_score) for s in qa(doc).spans["bertprod_qa"]]
    single = [(q, a.text, a._.bertprod_score) for q in doc._.questions for a in qa.answer(nlp.make_doc(CONTEXT), q)]
    assert piped == single


def test_long_context_answer_in_a_later_window(tiny_bert):
    context = random_text(120, seed=3) + " " + CONTEXT + " " + random_text(40, seed=4)
    start = context.index("Warsaw")
    rows = [{"id": "1", "question": "where was marie curie born?", "context": context, "answers": [(start, start + 6, "Warsaw")]}]
    nlp, qa, _ = _train(tiny_bert, rows=rows, steps=80)
    (scores,) = qa.model.predict([(nlp.make_doc(context), rows[0]["question"])])
    assert len(scores.windows) > 3
    assert qa.answer(nlp.make_doc(context), rows[0]["question"])[0].text == "Warsaw"


def test_every_short_answer_fits_one_window(trained):
    from spacy_bertprod.layers.qa_head import plan_pairs

    nlp, qa, _ = trained
    doc = nlp.make_doc(random_text(300, seed=5))
    _, _, meta, offsets = plan_pairs(qa.model, [(doc, "where?")])
    n = len(offsets[0])
    windows = [(s, e) for _, s, e, _ in meta]
    doc_stride = qa.model.attrs["doc_stride"]
    for a in range(n):
        b = min(a + doc_stride, n)  # any answer of up to doc_stride wordpieces
        assert any(s <= a and b <= e for s, e in windows)


def test_bad_input(trained, tiny_bert):
    nlp, qa, _ = trained
    doc = nlp.make_doc(CONTEXT)
    with pytest.raises(ValueError, match="E018"):
        qa.answer(doc, "   ")
    with pytest.raises(ValueError, match="E019"):
        qa.answer(nlp.make_doc(" "), "where?")
    with pytest.raises(TypeError, match="E021"):
        qa.answer(doc, 42)
    with pytest.raises(ValueError, match="E060"):
        qa.answer(doc, "where?", top_k=0)
    long_q = spacy.blank("en")
    qa2 = long_q.add_pipe("bertprod_qa", config=_config(tiny_bert, model={"encoder": {"name": tiny_bert, "window": 48, "stride": 24}, "doc_stride": 16, "max_question_len": 40}))
    long_q.initialize(lambda: [])
    with pytest.raises(ValueError, match="E020"):
        qa2.answer(long_q.make_doc(CONTEXT), random_text(60))
    with pytest.raises(ValueError, match="E059"):
        spacy.blank("en").add_pipe("bertprod_qa", config=_config(tiny_bert, max_answer_len=0))


def test_empty_context_in_pipeline_gives_no_answer(trained):
    nlp, qa, _ = trained
    doc = nlp.make_doc("")
    doc._.questions = ["where?"]
    assert len(qa(doc).spans["bertprod_qa"]) == 0


def test_handle_impossible(trained):
    nlp, qa, _ = trained
    doc = nlp.make_doc(CONTEXT)
    qa.cfg["handle_impossible"] = True
    try:
        qa.cfg["null_threshold"] = -1.0  # always prefer "no answer"
        assert qa.answer(doc, ROWS[0]["question"]) == []
        qa.cfg["null_threshold"] = 1.0  # never
        assert qa.answer(doc, ROWS[0]["question"])[0].text == "Warsaw"
    finally:
        qa.cfg["handle_impossible"] = False
        qa.cfg["null_threshold"] = 0.0


def test_calibrate_null_threshold(tiny_bert):
    impossible = {"id": "3", "question": "who is the president of mars?", "context": CONTEXT, "answers": []}
    rows = ROWS + [impossible]
    nlp, qa, examples = _train(tiny_bert, rows=rows, steps=80)
    baseline = nlp.evaluate(examples)["qa_f1"]
    threshold, f1 = qa.calibrate_null_threshold(examples)
    assert qa.cfg["handle_impossible"] and qa.cfg["null_threshold"] == threshold
    assert f1 >= baseline
    assert nlp.evaluate(examples)["qa_f1"] == pytest.approx(f1)
    doc = nlp.make_doc(CONTEXT)
    # mid-gap, not on any question's edge: float noise cannot flip one
    for row in rows:
        ranked, null_score = qa._candidates(qa.model.predict([(doc, row["question"])])[0], 1)
        assert abs(null_score - ranked[0][2] - threshold) > 1e-4
    assert qa.answer(doc, impossible["question"]) == []
    assert qa.answer(doc, ROWS[0]["question"])[0].text == "Warsaw"
    with pytest.raises(ValueError, match="E031"):
        qa.calibrate_null_threshold([])


def test_lost_answers_are_counted(tiny_bert):
    rows = [dict(ROWS[0], answers=[(39, 40, " ")])]  # a whitespace "answer"
    with pytest.warns(UserWarning, match="W002"):
        _, qa, _ = _train(tiny_bert, rows=rows, steps=1)
    assert qa.lost_answers == 1


def test_round_trip(trained, tmp_path):
    nlp, qa, _ = trained
    nlp.to_disk(tmp_path)
    again = spacy.load(tmp_path).get_pipe("bertprod_qa")
    for row in ROWS:
        a = qa.answer(nlp.make_doc(CONTEXT), row["question"], top_k=2)
        b = again.answer(nlp.make_doc(CONTEXT), row["question"], top_k=2)
        assert [(s.start, s.end, s._.bertprod_score) for s in a] == [(s.start, s.end, s._.bertprod_score) for s in b]


def test_hf_export_gives_the_same_logits(trained, tmp_path):
    import torch
    from transformers import AutoModelForQuestionAnswering, AutoTokenizer

    from spacy_bertprod.compression.hf_export import qa_to_hf

    nlp, qa, _ = trained
    qa_to_hf(nlp, tmp_path)
    tok = AutoTokenizer.from_pretrained(tmp_path)
    model = AutoModelForQuestionAnswering.from_pretrained(tmp_path).eval()
    enc = tok(ROWS[0]["question"], CONTEXT, return_tensors="pt")
    with torch.no_grad():
        out = model(**enc)
    (scores,) = qa.model.predict([(nlp.make_doc(CONTEXT), ROWS[0]["question"])])
    ctx = [i for i, s in enumerate(enc.sequence_ids(0)) if s == 1]
    np.testing.assert_allclose(out.start_logits[0, [0] + ctx].numpy(), scores.windows[0].start_logits, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(out.end_logits[0, [0] + ctx].numpy(), scores.windows[0].end_logits, rtol=1e-4, atol=1e-4)


def test_a_string_is_one_question(trained):
    """`doc._.questions = "Where?"` was read character by character, with a
    space it raised a misleading E018, and 42 a raw TypeError."""
    nlp, qa, _ = trained
    question = ROWS[0]["question"]
    doc = nlp.make_doc(CONTEXT)
    doc._.questions = question
    group = qa(doc).spans["bertprod_qa"]
    assert [s.text for s in group] == ["Warsaw"] and group.attrs["questions"] == [question]
    doc = nlp.make_doc(CONTEXT)
    doc._.questions = "Where?"
    assert len(qa(doc).spans["bertprod_qa"]) == 1
    for bad in (42, {"q": question}, None.__class__):
        doc = nlp.make_doc(CONTEXT)
        doc._.questions = bad
        with pytest.raises(TypeError, match=r"\[E049\] doc._.questions"):
            qa(doc)
    doc._.questions = [question, 42]
    with pytest.raises(TypeError, match="E021"):
        qa(doc)
    with pytest.raises(TypeError, match="E011.*str"):
        qa.answer(CONTEXT, question)
    single = spacy.blank("en").add_pipe("bertprod_qa", config=_config(qa.model.get_ref("encoder").attrs["name"], questions="Where?"))
    assert single.cfg["questions"] == ["Where?"]


def test_top_k_error_names_its_setting(trained):
    """The top_k error called it an "encoder setting" (one code served 17
    unrelated settings)."""
    nlp, qa, _ = trained
    with pytest.raises(ValueError, match=r"\[E060\] Invalid top_k = 0 for question answering") as err:
        qa.answer(nlp.make_doc(CONTEXT), "where?", top_k=0)
    assert "encoder" not in str(err.value)
    with pytest.raises(ValueError, match="E060"):
        qa.answer(nlp.make_doc(CONTEXT), "where?", top_k=True)


def _crafted_scores(qa, text, start, end):
    """QAScores of one window over `text` whose start/end logits are
    `start`/`end` ({character offset of a wordpiece: logit}, others 0, [CLS]
    very low)."""
    from spacy_bertprod.layers.qa_head import QAScores, QAWindow

    ((_, offsets),) = qa.model.get_ref("encoder").attrs["tokenizer"].offsets_and_ids([text])
    logits = []
    for wanted, side in ((start, 0), (end, 1)):
        row = np.zeros(len(offsets) + 1, dtype="float32")
        row[0] = -20.0
        for char, value in wanted.items():
            row[1 + int(np.flatnonzero(offsets[:, side] == char)[0])] = value
        logits.append(row)
    return QAScores(offsets=offsets, windows=[QAWindow(0, len(offsets), *logits)])


def test_top_k_merges_candidates_of_one_span(trained, monkeypatch):
    """Candidates snapping to the same token span (the wordpieces of
    "México") came back as several identical spans, all with the last
    candidate's score."""
    nlp, qa, _ = trained
    text = "They flew to México and Lima."
    # "méxico" is cut into one wordpiece per letter: the start at "m" with
    # ends at "e", "x" and "i" are three candidates inside the same token
    scores = _crafted_scores(qa, text, start={13: 5.0, 24: 3.0}, end={15: 4.0, 16: 3.0, 17: 2.0, 28: 2.5})
    # the transformer's part is done: hand the component these scores
    monkeypatch.setattr(qa, "model", SimpleNamespace(predict=lambda pairs: [scores for _ in pairs]))
    doc = nlp.make_doc(text)
    answers = qa.answer(doc, "where?", top_k=3)
    assert len(answers) == 3 and len({(a.start, a.end) for a in answers}) == 3
    assert answers[0].text == "México" and answers[0]._.bertprod_answer_chars == (13, 15)
    best = qa._candidates(scores, 1)[0][0]
    assert answers[0]._.bertprod_score == pytest.approx(best[2])
    assert "México and Lima" in [a.text for a in answers]
    got = [a._.bertprod_score for a in answers]
    assert got == sorted(got, reverse=True) and len(set(got)) == 3
    doc = nlp.make_doc(text)
    doc._.questions = ["where?"]
    qa.cfg["top_k"] = 3
    try:
        group = qa(doc).spans["bertprod_qa"]
    finally:
        qa.cfg["top_k"] = 1
    assert [s.text for s in group] == [a.text for a in answers]
    assert group.attrs["scores"] == got == [s._.bertprod_score for s in group]


def test_answer_chars_stay_a_tuple(trained):
    """`bertprod_answer_chars` came back as a list after `Doc.to_bytes` (and
    `n_process`, see test_multiprocessing.py)."""
    from spacy.tokens import Doc

    nlp, qa, _ = trained
    doc = nlp.make_doc(CONTEXT)
    doc._.questions = [ROWS[0]["question"]]
    doc = qa(doc)
    again = Doc(nlp.vocab).from_bytes(doc.to_bytes())
    (span,) = again.spans["bertprod_qa"]
    assert span._.bertprod_answer_chars == (24, 30) and type(span._.bertprod_answer_chars) is tuple
    assert span._.bertprod_score == doc.spans["bertprod_qa"][0]._.bertprod_score
