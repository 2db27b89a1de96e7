import subprocess
import sys

import numpy as np
import pytest
import spacy
from spacy.tokens import Doc
from spacy.training import Example

from conftest import TRAIN_DATA, make_examples, ner_config, random_text, train


def _trained(nlp, tiny_bert, steps=40, **encoder):
    nlp.add_pipe("bertprod_ner", config=ner_config(tiny_bert, **encoder))
    examples = make_examples(nlp)
    return train(nlp, examples, steps=steps), examples


@pytest.fixture(scope="module")
def trained(tiny_bert):
    return _trained(spacy.blank("en"), tiny_bert)


def test_labels_collected_in_initialize(trained):
    nlp, _ = trained
    ner = nlp.get_pipe("bertprod_ner")
    assert ner.labels == ("LOC", "ORG", "PER")
    assert ner.model.get_ref("output").get_dim("nO") == 13


def test_learns_training_data(trained):
    nlp, examples = trained
    scores = nlp.evaluate(examples)
    assert scores["ents_f"] == 1.0
    doc = nlp("Angela Merkel visited the Siemens plant in Munich.")
    assert [(e.text, e.label_) for e in doc.ents] == [("Angela Merkel", "PER"), ("Siemens", "ORG"), ("Munich", "LOC")]


def test_entity_scores(trained):
    nlp, _ = trained
    doc = nlp("John Smith works in London.")
    group = doc.spans["bertprod_ner"]
    assert len(doc.ents) == 2  # John Smith, London: scores of real entities
    assert list(group) == list(doc.ents)
    assert len(group.attrs["scores"]) == len(doc.ents)
    for ent, score in zip(doc.ents, group.attrs["scores"]):
        assert 0.0 < ent._.bertprod_score <= 1.0
        assert ent._.bertprod_score == pytest.approx(score)


def test_five_thousand_token_document(trained):
    nlp, _ = trained
    text = " ".join([TRAIN_DATA[0][0]] * 10 + [random_text(5000)] + [TRAIN_DATA[0][0]] * 2)
    doc = nlp(text)
    assert len(doc) >= 5000
    heads = [(e.text, e.label_) for e in doc.ents if e.start < 11]
    assert ("Angela Merkel", "PER") in heads
    # nothing is truncated: the end of the document is tagged too
    tails = [(e.text, e.label_) for e in doc.ents if e.start > len(doc) - 11]
    assert ("Angela Merkel", "PER") in tails
    assert all(0 <= e.start < e.end <= len(doc) for e in doc.ents)


def test_empty_and_whitespace_docs(trained):
    nlp, _ = trained
    for text in ["", "   ", "\n\n\t"]:
        doc = nlp(text)
        assert doc.ents == ()
        assert len(doc.spans["bertprod_ner"]) == 0


def test_whitespace_never_starts_or_ends_an_entity(trained):
    nlp, _ = trained
    doc = nlp("  Angela Merkel \n visited  Munich \n")
    assert [e.text for e in doc.ents] == ["Angela Merkel", "Munich"]
    for ent in doc.ents:
        assert not ent[0].is_space and not ent[-1].is_space


def test_pipe_matches_call(trained):
    nlp, _ = trained
    texts = [t for t, _ in TRAIN_DATA] + ["", random_text(300)]
    piped = [[(e.start, e.end, e.label_) for e in d.ents] for d in nlp.pipe(texts, batch_size=3)]
    single = [[(e.start, e.end, e.label_) for e in nlp(t).ents] for t in texts]
    assert all(piped[: len(TRAIN_DATA)])  # entities to compare, not empty lists
    assert piped == single


def test_unknown_label_in_training_data(nlp, tiny_bert):
    nlp, _ = _trained(nlp, tiny_bert, steps=0)
    doc = nlp.make_doc("Siemens moved to Berlin.")
    example = Example.from_dict(doc, {"entities": [(0, 7, "PRODUCT")]})
    with pytest.raises(ValueError, match="E007.*PRODUCT"):
        nlp.update([example])


def test_add_label_rules(nlp, tiny_bert):
    ner = nlp.add_pipe("bertprod_ner", config=ner_config(tiny_bert))
    assert ner.add_label("PER") == 1
    assert ner.add_label("PER") == 0
    for bad in ["", "B-PER", "TWO WORDS", 3]:
        with pytest.raises(ValueError, match="E010"):
            ner.add_label(bad)
    nlp.initialize(lambda: make_examples(nlp))
    assert ner.labels == ("PER",)
    with pytest.raises(ValueError, match="E008"):
        ner.add_label("LOC")


def test_no_labels(nlp, tiny_bert):
    nlp.add_pipe("bertprod_ner", config=ner_config(tiny_bert))
    examples = [Example.from_dict(nlp.make_doc("the city"), {"entities": []})]
    with pytest.raises(ValueError, match="E009"):
        nlp.initialize(lambda: examples)


def test_initialize_with_given_labels(nlp, tiny_bert):
    ner = nlp.add_pipe("bertprod_ner", config=ner_config(tiny_bert))
    ner.initialize(lambda: make_examples(nlp), nlp=nlp, labels=["PER", "MISC"])
    assert ner.labels == ("PER", "MISC")


def test_missing_annotation_is_ignored_in_loss(trained):
    nlp, _ = trained
    ner = nlp.get_pipe("bertprod_ner")
    doc = nlp.make_doc("John Smith works in London.")
    example = Example(doc, Doc(doc.vocab, words=[t.text for t in doc], spaces=[bool(t.whitespace_) for t in doc], ents=["B-PER", "I-PER", None, None, None, None]))
    scores = ner.model.predict([example.predicted])
    _, d_scores = ner.get_loss([example], scores)
    assert np.all(d_scores[0][2:] == 0) and np.any(d_scores[0][:2] != 0)


def test_disk_round_trip_in_fresh_process(tmp_path, tiny_bert):
    import shutil

    model_copy = tmp_path / "encoder"
    shutil.copytree(tiny_bert, model_copy)
    nlp, _ = _trained(spacy.blank("en"), str(model_copy), steps=20)
    nlp.to_disk(tmp_path / "pipeline")
    shutil.rmtree(model_copy)  # the saved pipeline must not need it
    texts = [t for t, _ in TRAIN_DATA] + [random_text(200)]
    expected = [[(e.start, e.end, e.label_, round(e._.bertprod_score, 5)) for e in d.ents] for d in nlp.pipe(texts)]
    assert all(expected[: len(TRAIN_DATA)])
    script = (
        "import json, sys, spacy\n"
        f"nlp = spacy.load({str(tmp_path / 'pipeline')!r})\n"
        "texts = json.loads(sys.stdin.read())\n"
        "print(json.dumps([[(e.start, e.end, e.label_, round(e._.bertprod_score, 5)) for e in d.ents] for d in nlp.pipe(texts)]))\n"
    )
    import json
    import os

    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    out = subprocess.run([sys.executable, "-c", script], input=json.dumps(texts), capture_output=True, text=True, env=env, check=True)
    assert json.loads(out.stdout) == [[list(e) for e in doc] for doc in expected]


def test_pickle_for_multiprocessing(trained):
    import pickle

    nlp, _ = trained
    clone = pickle.loads(pickle.dumps(nlp))
    text = TRAIN_DATA[1][0]
    expected = [(e.start, e.end, e.label_) for e in nlp(text).ents]
    assert len(expected) == 2
    assert [(e.start, e.end, e.label_) for e in clone(text).ents] == expected


def test_score(trained):
    nlp, examples = trained
    ner = nlp.get_pipe("bertprod_ner")
    tagged = [Example(nlp(eg.reference.text), eg.reference) for eg in examples]
    scores = ner.score(tagged)
    assert scores["ents_f"] == 1.0 and set(scores["ents_per_type"]) == {"LOC", "ORG", "PER"}
    # gold without the LOC entities: every LOC prediction is a false positive
    no_loc = make_examples(nlp, [(t, [e for e in ents if e[2] != "LOC"]) for t, ents in TRAIN_DATA])
    scores = ner.score([Example(eg.predicted, gold.reference) for eg, gold in zip(tagged, no_loc)])
    n_all = sum(len(ents) for _, ents in TRAIN_DATA)
    n_loc = sum(e[2] == "LOC" for _, ents in TRAIN_DATA for e in ents)
    assert scores["ents_r"] == 1.0 and scores["ents_p"] == pytest.approx((n_all - n_loc) / n_all)


def test_nan_loss_raises_spacys_own_error(trained_ner_path):
    """A NaN loss is reported with spaCy's code and the component's name, as
    spaCy's own tagger reports it (was an uncoded "nan value" message)."""
    nlp = spacy.load(trained_ner_path)
    ner = nlp.get_pipe("bertprod_ner")
    examples = make_examples(nlp)
    scores = [np.full((len(eg.predicted), len(ner.tag_names)), np.nan, dtype="float32") for eg in examples]
    with pytest.raises(ValueError, match=r"\[E910\].*'bertprod_ner'"):
        ner.get_loss(examples, scores)
