"""The JSON view of a processed Doc that the service and `annotate` write."""

import json

import spacy

from conftest import QA_CONTEXT, cats_examples, ner_config
from spacy_bertprod.pipeline.annotations import Annotating, doc_annotations


def test_ner_entities_carry_chars_label_and_score(trained_ner_path):
    nlp = spacy.load(trained_ner_path)
    doc = nlp("Angela Merkel visited Munich with Barack Obama.")
    data = doc_annotations(nlp, doc)
    assert set(data) == {"entities"}
    assert data["entities"], "the trained head finds no entity: the comparisons below would be of empties"
    assert [(e["start"], e["end"], e["label"]) for e in data["entities"]] == [(e.start_char, e.end_char, e.label_) for e in doc.ents]
    for entity in data["entities"]:
        assert doc.text[entity["start"] : entity["end"]] == entity["text"]
        assert entity["score"] == doc.spans["bertprod_ner"][[s.start_char for s in doc.spans["bertprod_ner"]].index(entity["start"])]._.bertprod_score
    json.dumps(data)  # plain data only


def test_empty_text_gets_an_empty_annotation(trained_ner_path):
    nlp = spacy.load(trained_ner_path)
    assert doc_annotations(nlp, nlp("")) == {"entities": []}


def test_textcat_and_qa_and_pipes_filter(tiny_bert):
    nlp = spacy.blank("en")
    nlp.add_pipe("bertprod_textcat", config=ner_config(tiny_bert))
    qa = nlp.add_pipe("bertprod_qa", config={"model": {"encoder": {"name": tiny_bert, "window": 48, "stride": 24}, "doc_stride": 16, "max_question_len": 12}, "questions": ["Who founded it?"]})
    nlp.initialize(lambda: cats_examples(nlp))
    doc = nlp(QA_CONTEXT)
    assert isinstance(qa, Annotating)
    data = doc_annotations(nlp, doc)
    assert set(data["cats"]) == {"NEG", "POS"} and data["cats"] == {k: float(v) for k, v in doc.cats.items()}
    assert data["answers"], "no answer: the comparisons below would be of empties"
    assert [a["question"] for a in data["answers"]] == [s._.bertprod_question for s in doc.spans["bertprod_qa"]]
    assert all(doc.text[a["start"] : a["end"]] == a["text"] for a in data["answers"])
    assert set(doc_annotations(nlp, doc, pipes=["bertprod_qa"])) == {"answers"}
    json.dumps(data)
