import json

import pytest
import spacy

from spacy_bertprod.pipeline.squad_metrics import exact_match, f1_score, normalize_answer, squad_scores
from spacy_bertprod.training.squad import make_examples, read_squad, squad_corpus

SQUAD = {
    "version": "1.1",
    "data": [
        {
            "title": "T",
            "paragraphs": [
                {
                    "context": "Marie Curie was born in Warsaw in 1867. She moved to Paris in 1891.",
                    "qas": [
                        {"id": "q1", "question": "Where was Marie Curie born?", "answers": [{"text": "Warsaw", "answer_start": 24}]},
                        {"id": "q2", "question": "When did she move?", "answers": [{"text": "1891", "answer_start": 63}, {"text": "in 1891", "answer_start": 60}]},
                    ],
                }
            ],
        }
    ],
}


def write(tmp_path, data=SQUAD, name="squad.json"):
    path = tmp_path / name
    path.write_text(json.dumps(data))
    return path


def test_official_normalisation_and_metrics():
    assert normalize_answer("The  Cat, sat!") == "cat sat"
    assert exact_match("the cat", "Cat") == 1.0
    assert f1_score("cat sat on mat", "the cat sat") == pytest.approx(2 * (2 / 4) * (2 / 2) / (2 / 4 + 2 / 2))
    assert f1_score("dog", "cat") == 0.0
    em, f1 = squad_scores(["Warsaw", "in 1891"], [["Warsaw"], ["1891", "in 1891"]])
    assert em == 1.0 and f1 == 1.0
    # a question without answers (SQuAD 2.0) scores only an empty prediction
    assert squad_scores([""], [[]]) == (1.0, 1.0)
    assert squad_scores(["Paris"], [[]]) == (0.0, 0.0)


def test_read_squad_v11_and_v20(tmp_path):
    rows = read_squad(write(tmp_path))
    assert [r["id"] for r in rows] == ["q1", "q2"]
    assert rows[0]["answers"] == [(24, 30, "Warsaw")]
    assert rows[0]["context"][24:30] == "Warsaw"
    v2 = json.loads(json.dumps(SQUAD))
    v2["data"][0]["paragraphs"][0]["qas"].append({"id": "q3", "question": "Who?", "answers": [], "is_impossible": True})
    rows = read_squad(write(tmp_path, v2, "v2.json"))
    assert rows[2]["impossible"] and rows[2]["answers"] == []


def test_bad_file(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text('{"rows": []}')
    with pytest.raises(ValueError, match="E022"):
        read_squad(path)


def test_reader_examples(tmp_path):
    nlp = spacy.blank("en")
    per_question = list(squad_corpus(str(write(tmp_path)))(nlp))
    assert len(per_question) == 2
    eg = per_question[1]
    assert eg.predicted._.questions == ["When did she move?"]
    assert eg.reference._.bertprod_qa_gold == [[[63, 67, "1891"], [60, 67, "in 1891"]]]
    per_context = list(make_examples(nlp, read_squad(write(tmp_path)), per_context=True))
    assert len(per_context) == 1 and len(per_context[0].predicted._.questions) == 2
    assert len(list(squad_corpus(str(write(tmp_path)), limit=1)(nlp))) == 1
