import subprocess
import sys

import numpy as np
import pytest
import spacy
from spacy.tokens import Doc, Span
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


def test_label_smoothing_moves_the_targets(trained):
    nlp, _ = trained
    ner = nlp.get_pipe("bertprod_ner")
    doc = nlp.make_doc("John Smith works in London.")
    example = Example(doc, Doc(doc.vocab, words=[t.text for t in doc], spaces=[bool(t.whitespace_) for t in doc], ents=["B-PER", "I-PER", "O", "O", "B-LOC", None]))
    scores = ner.model.predict([example.predicted])
    _, plain = ner.get_loss([example], scores)
    ner.cfg["label_smoothing"] = 0.1
    try:
        _, smooth = ner.get_loss([example], scores)
    finally:
        ner.cfg["label_smoothing"] = 0.0
    # d = scores - target: the gold tag's target drops by 0.1, the others' rise by 0.1 / (n - 1)
    n = len(ner.tag_names)
    gold = [ner.tag_names.index(tag) for tag in ("B-PER", "L-PER", "O", "O", "U-LOC")]
    shift = smooth[0][:5] - plain[0][:5]
    expected = np.full((5, n), -0.1 / (n - 1), dtype="f")
    expected[np.arange(5), gold] = 0.1
    assert np.allclose(shift, expected, atol=1e-6)
    assert np.all(smooth[0][5] == 0)  # a missing tag still teaches nothing


def test_label_smoothing_from_the_config_and_refused_out_of_range(tiny_bert):
    nlp = spacy.blank("en")
    ner = nlp.add_pipe("bertprod_ner", config={**ner_config(tiny_bert), "label_smoothing": 0.2})
    assert ner.cfg["label_smoothing"] == 0.2
    with pytest.raises(ValueError, match=r"\[E190\].*label_smoothing = 0.5"):
        spacy.blank("en").add_pipe("bertprod_ner", config={**ner_config(tiny_bert), "label_smoothing": 0.5})


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


# -- preset and blocked entities (as spaCy's own `ner` keeps them) -------------
MERKEL = TRAIN_DATA[0][0]  # "Angela Merkel visited the Siemens plant in Munich."


def _force_tags(monkeypatch, ner, tags):
    """Make `ner`'s model give each token of the next doc its tag in `tags`
    with probability 0.6 ("B-ORG|U-ORG": and the second 0.3), the rest 0.1
    shared: tests of the decode that do not hang on training."""
    from thinc.api import Model

    probs = np.full((len(tags), len(ner.tag_names)), 0.1 / (len(ner.tag_names) - 2), dtype="float32")
    for i, choice in enumerate(tags):
        first, _, second = choice.partition("|")
        probs[i, ner.tag_names.index(second or "O")] = 0.3
        probs[i, ner.tag_names.index(first)] = 0.6

    def forward(model, docs, is_train):
        assert [len(doc) for doc in docs] == [len(tags)]
        return [probs], lambda d_scores: d_scores

    monkeypatch.setattr(ner, "model", Model("forced_tags", forward))


def _ents(doc):
    return [(e.text, e.label_) for e in doc.ents]


def test_entity_ruler_entities_are_kept(trained_ner_path):
    plain = spacy.load(trained_ner_path)
    assert _ents(plain(MERKEL)) == [("Angela Merkel", "PER"), ("Siemens", "ORG"), ("Munich", "LOC")]
    nlp = spacy.load(trained_ner_path)
    ruler = nlp.add_pipe("entity_ruler", before="bertprod_ner")
    ruler.add_patterns([{"label": "PRODUCT", "pattern": "Munich", "id": "munich"}])
    doc = nlp(MERKEL)
    # the ruler's label (unknown to the model) survives; the model's entities are written around it
    assert _ents(doc) == [("Angela Merkel", "PER"), ("Siemens", "ORG"), ("Munich", "PRODUCT")]
    assert doc.ents[2].ent_id_ == "munich"
    # the span group and scores hold what the model found; the ruler's entity has no score
    group = doc.spans["bertprod_ner"]
    assert [(s.text, s.label_) for s in group] == [("Angela Merkel", "PER"), ("Siemens", "ORG")]
    assert len(group.attrs["scores"]) == 2 and all(0.0 < s._.bertprod_score <= 1.0 for s in group)
    assert doc.ents[2]._.bertprod_score is None
    assert [e["text"] for e in nlp.get_pipe("bertprod_ner").annotations(doc)["entities"]] == ["Angela Merkel", "Siemens"]


def test_preset_entity_keeps_its_kb_id_and_span(trained):
    nlp, _ = trained
    doc = nlp.make_doc(MERKEL)
    doc.set_ents([Span(doc, 2, 4, label="MISC", kb_id="Q1")], default="missing")  # "visited the"
    doc = nlp.get_pipe("bertprod_ner")(doc)
    assert _ents(doc) == [("Angela Merkel", "PER"), ("visited the", "MISC"), ("Siemens", "ORG"), ("Munich", "LOC")]
    assert doc.ents[1].kb_id_ == "Q1"
    assert [t.ent_iob_ for t in doc] == ["B", "I", "B", "I", "B", "O", "O", "B", "O"]


def test_blocked_tokens_get_no_entity(trained):
    nlp, _ = trained
    ner = nlp.get_pipe("bertprod_ner")
    doc = nlp.make_doc(MERKEL)
    doc.set_ents([], blocked=[doc[7:8]], default="unmodified")  # Munich, which the model tags LOC
    doc = ner(doc)
    assert _ents(doc) == [("Angela Merkel", "PER"), ("Siemens", "ORG")]
    assert (doc[7].ent_iob_, doc[7].ent_type_) == ("B", "")  # still blocked, as spaCy's ner leaves it
    assert [t.ent_iob_ for t in doc][3:7] == ["O", "B", "O", "O"]  # missing tokens become "O"


def test_blocked_tokens_get_no_entity_whatever_the_scores(trained, monkeypatch):
    nlp, _ = trained
    ner = nlp.get_pipe("bertprod_ner")
    doc = nlp.make_doc("Paris London Berlin Tokyo")
    doc.set_ents([], blocked=[doc[1:3]], default="missing")
    # the scores want Paris, "London Berlin" and Tokyo as LOC
    _force_tags(monkeypatch, ner, ["U-LOC", "B-LOC", "L-LOC", "U-LOC"])
    doc = ner(doc)
    assert [(e.start, e.end) for e in doc.ents] == [(0, 1), (3, 4)]
    assert [(t.ent_iob_, t.ent_type_) for t in doc] == [("B", "LOC"), ("B", ""), ("B", ""), ("B", "LOC")]


def test_predicted_entity_beside_a_preset_one(trained, monkeypatch):
    nlp, _ = trained
    ner = nlp.get_pipe("bertprod_ner")
    doc = nlp.make_doc("Siemens Munich plant works")
    doc.set_ents([Span(doc, 1, 2, label="PRODUCT")])  # every other token "O"
    # the scores want "Siemens Munich" as one ORG; the preset Munich cuts it to Siemens
    _force_tags(monkeypatch, ner, ["B-ORG|U-ORG", "L-ORG", "O", "U-PER"])
    doc = ner(doc)
    assert [(e.start, e.end, e.label_) for e in doc.ents] == [(0, 1, "ORG"), (1, 2, "PRODUCT"), (3, 4, "PER")]
    # "O" set beforehand is the model's to overwrite, as in spaCy's ner
    assert [(s.start, s.label_) for s in doc.spans["bertprod_ner"]] == [(0, "ORG"), (3, "PER")]


def test_outside_tokens_are_predicted_over(trained):
    nlp, _ = trained
    doc = nlp.make_doc(MERKEL)
    doc.ents = []  # every token "O", as a ruler that matched nothing leaves a doc
    assert _ents(nlp.get_pipe("bertprod_ner")(doc)) == [("Angela Merkel", "PER"), ("Siemens", "ORG"), ("Munich", "LOC")]


def test_running_twice_keeps_entities_and_scores(trained):
    nlp, _ = trained
    doc = nlp(MERKEL)
    first = [(s.start, s.end, s.label_, s._.bertprod_score) for s in doc.spans["bertprod_ner"]]
    doc = nlp(doc)
    assert len(first) == 3
    assert [(s.start, s.end, s.label_, s._.bertprod_score) for s in doc.spans["bertprod_ner"]] == first
    assert doc.spans["bertprod_ner"].attrs["scores"] == [score for *_, score in first]
