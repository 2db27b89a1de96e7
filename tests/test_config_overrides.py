"""`spacy.load(path, config={...})`: the config is the truth for a saved
pipeline. Settings the saved weights can follow take effect; those they
cannot (another model `name`, `input_casing`, `exclusive_classes`,
`case_window`, a window past the model's positions) raise a coded error.
Each test shows what the component does, not only what `nlp.config` says."""

import re

import numpy as np
import pytest
import spacy
from spacy.training import Example
from thinc.api import fix_random_seed

import spacy_bertprod.layers.batching as batching_module
import spacy_bertprod.layers.encoder as encoder_module
from conftest import TRAIN_DATA, make_examples, ner_config, random_text, train
from spacy_bertprod.training.squad import make_examples as qa_examples

NER = "components.bertprod_ner.model"
TEXTCAT = "components.bertprod_textcat"
QA = "components.bertprod_qa"
LONG_TEXT = random_text(60, seed=3)
CONTEXT = "Marie Curie was born in Warsaw in 1867. She moved to Paris in 1891."
QUESTION = "where was marie curie born?"


def _saved(tmp_path_factory, name, config, examples, steps):
    """A pipeline with component `name` built from `config`, trained
    `steps` updates on `examples(nlp)` (seeded) and saved."""
    fix_random_seed(0)
    nlp = spacy.blank("en")
    nlp.add_pipe(name, config=config)
    train(nlp, examples(nlp), steps=steps)
    path = tmp_path_factory.mktemp("overrides") / name
    nlp.to_disk(path)
    return path


@pytest.fixture(scope="module")
def ner_path(tiny_bert, tmp_path_factory):
    return _saved(tmp_path_factory, "bertprod_ner", ner_config(tiny_bert), make_examples, 10)


@pytest.fixture(scope="module")
def textcat_path(tiny_bert, tmp_path_factory):
    encoder = {"name": tiny_bert, "window": 16, "stride": 8, "max_batch_wordpieces": 256}

    def examples(nlp):
        def cats(i):
            return {"POS": float(i % 2 == 0), "NEG": float(i % 2 == 1)}

        return [Example.from_dict(nlp.make_doc(text), {"cats": cats(i)}) for i, (text, _) in enumerate(TRAIN_DATA)]

    config = {"exclusive_classes": False, "model": {"encoder": encoder}}
    return _saved(tmp_path_factory, "bertprod_textcat", config, examples, 5)


@pytest.fixture(scope="module")
def qa_path(tiny_bert, tmp_path_factory):
    encoder = {"name": tiny_bert, "window": 48, "stride": 24}
    rows = [{"id": "1", "question": QUESTION, "context": CONTEXT, "answers": [(24, 30, "Warsaw")]}]
    config = {"model": {"encoder": encoder, "doc_stride": 16, "max_question_len": 12}}
    return _saved(tmp_path_factory, "bertprod_qa", config, lambda nlp: list(qa_examples(nlp, rows)), 5)


def _ner_probs(nlp, text=LONG_TEXT):
    return nlp.get_pipe("bertprod_ner").model.predict([nlp.make_doc(text)])[0]


def _encoder_calls(nlp, monkeypatch, text=LONG_TEXT):
    """(windows, transformer calls) of the NER encoder on `text`."""
    seen = {"windows": 0, "calls": 0}
    encode, run = encoder_module.encode_sequences, batching_module.run_transformer

    def count_windows(model, seqs, *args, **kwargs):
        seen["windows"] += len(seqs)
        return encode(model, seqs, *args, **kwargs)

    def count_calls(*args, **kwargs):
        seen["calls"] += 1
        return run(*args, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(encoder_module, "encode_sequences", count_windows)
        patch.setattr(batching_module, "run_transformer", count_calls)
        nlp(text)
    return seen["windows"], seen["calls"]


def test_encoder_window_stride_batch_take_effect(ner_path, monkeypatch):
    saved = spacy.load(ner_path)
    windows, calls = _encoder_calls(saved, monkeypatch)
    assert windows > 4 and calls >= 1
    wider = spacy.load(ner_path, config={f"{NER}.encoder.window": 64, f"{NER}.encoder.stride": 48})
    assert _encoder_calls(wider, monkeypatch)[0] < windows
    denser = spacy.load(ner_path, config={f"{NER}.encoder.stride": 2})
    assert _encoder_calls(denser, monkeypatch)[0] > windows
    # one window (16 wordpieces) per transformer call
    small_batches = spacy.load(ner_path, config={f"{NER}.encoder.max_batch_wordpieces": 16})
    assert _encoder_calls(small_batches, monkeypatch) == (windows, windows)
    # the saved encoder settings themselves still apply without overrides
    assert spacy.load(ner_path).get_pipe("bertprod_ner").model.get_ref("encoder").attrs["window"] == 16


def test_encoder_pooling_and_case_scale_take_effect(ner_path):
    saved = spacy.load(ner_path)
    mean = spacy.load(ner_path, config={f"{NER}.encoder.pooling": "mean"})
    assert mean.get_pipe("bertprod_ner").model.get_ref("encoder").attrs["pooling"] == "mean"
    # "zurich" and "méxico" are several wordpieces: mean pooling reads them all
    text = "Xylophones in Zurich and México"
    assert not np.allclose(_ner_probs(mean, text), _ner_probs(saved, text))
    scaled = spacy.load(ner_path, config={f"{NER}.case_scale": 1.0})
    assert not np.allclose(_ner_probs(scaled), _ner_probs(saved))


def test_settings_the_weights_cannot_follow_raise(ner_path, tmp_path):
    from conftest import build_tiny_bert

    other = str(build_tiny_bert(tmp_path / "other", seed=1))
    with pytest.raises(ValueError, match=r"\[E068\].*config names '" + re.escape(other)):
        spacy.load(ner_path, config={f"{NER}.encoder.name": other})
    with pytest.raises(ValueError, match="E069"):
        spacy.load(ner_path, config={f"{NER}.encoder.input_casing": False})
    with pytest.raises(ValueError, match=r"\[E071\].*window_size = 1.*sets 2"):
        spacy.load(ner_path, config={f"{NER}.case_window": 2})
    # the tiny model has 128 positions
    with pytest.raises(ValueError, match=r"\[E006\] The window of 256"):
        spacy.load(ner_path, config={f"{NER}.encoder.window": 256, f"{NER}.encoder.stride": 128, f"{NER}.encoder.max_batch_wordpieces": 1024})


def test_ner_spans_key(ner_path):
    nlp = spacy.load(ner_path, config={"components.bertprod_ner.spans_key": "entities"})
    doc = nlp(TRAIN_DATA[0][0])
    assert "entities" in doc.spans and "bertprod_ner" not in doc.spans


def test_textcat_thresholds(textcat_path):
    text = TRAIN_DATA[0][0]
    saved = spacy.load(textcat_path)
    probs = saved(text).cats
    assert 0.0 < min(probs.values()) and max(probs.values()) < 1.0
    none = spacy.load(textcat_path, config={f"{TEXTCAT}.threshold": 1.0})
    assert none(text)._.bertprod_labels == []
    every = spacy.load(textcat_path, config={f"{TEXTCAT}.threshold": 0.0})
    assert every(text)._.bertprod_labels == ["NEG", "POS"]
    pos_only = spacy.load(textcat_path, config={f"{TEXTCAT}.threshold": 1.0, f"{TEXTCAT}.thresholds": {"POS": 0.0}})
    assert pos_only(text)._.bertprod_labels == ["POS"]
    assert pos_only(text).cats == probs
    with pytest.raises(ValueError, match="E070"):
        spacy.load(textcat_path, config={f"{TEXTCAT}.exclusive_classes": True})


def test_textcat_pooling(textcat_path):
    text = TRAIN_DATA[0][0]
    saved = spacy.load(textcat_path)
    mean = spacy.load(textcat_path, config={f"{TEXTCAT}.model.pooling": "mean"})
    assert mean(text).cats != saved(text).cats


def _qa_doc(nlp, questions=None, context=CONTEXT):
    doc = nlp.make_doc(context)
    doc._.questions = questions
    return nlp(doc)


def test_qa_settings(qa_path):
    def answers(nlp, questions=None, key="bertprod_qa"):
        doc = _qa_doc(nlp, questions)
        group = doc.spans[key]
        return [(s.text, s._.bertprod_answer_chars, s._.bertprod_question) for s in group], list(group.attrs["scores"])

    saved, _ = answers(spacy.load(qa_path), [QUESTION])
    assert len(saved) == 1
    top3, scores = answers(spacy.load(qa_path, config={f"{QA}.top_k": 3}), [QUESTION])
    assert len(top3) == 3 and len(scores) == 3 and top3[0] == saved[0]
    asked, _ = answers(spacy.load(qa_path, config={f"{QA}.questions": [QUESTION, "who moved?"]}))
    assert [question for _, _, question in asked] == [QUESTION, "who moved?"]
    never, _ = answers(spacy.load(qa_path, config={f"{QA}.handle_impossible": True, f"{QA}.null_threshold": -1.0}), [QUESTION])
    assert never == []
    short, _ = answers(spacy.load(qa_path, config={f"{QA}.max_answer_len": 1, f"{QA}.top_k": 5}), [QUESTION])
    assert len(short) == 5
    for _, (start, end), _ in short:
        assert " " not in CONTEXT[start:end]  # one wordpiece
    keyed, _ = answers(spacy.load(qa_path, config={f"{QA}.spans_key": "answers"}), [QUESTION], key="answers")
    assert keyed == saved


def test_qa_model_settings(qa_path, monkeypatch):
    def windows(nlp, question, context=CONTEXT):
        seen = []
        encode = encoder_module.encode_sequences

        def count(model, seqs, *args, **kwargs):
            seen.append(seqs)
            return encode(model, seqs, *args, **kwargs)

        import spacy_bertprod.layers.qa_head as qa_model

        with monkeypatch.context() as patch:
            patch.setattr(qa_model, "encode_sequences", count)
            _qa_doc(nlp, [question], context)
        return seen[0]

    long_question = random_text(30, seed=1)
    saved = windows(spacy.load(qa_path), long_question)
    shorter = windows(spacy.load(qa_path, config={f"{QA}.model.max_question_len": 4}), long_question)
    assert max(map(len, shorter)) < max(map(len, saved))
    # 16 wordpieces shared by neighbouring windows (saved), or 4
    overlap = windows(spacy.load(qa_path, config={f"{QA}.model.doc_stride": 4}), QUESTION, LONG_TEXT)
    assert 1 < len(overlap) < len(windows(spacy.load(qa_path), QUESTION, LONG_TEXT))


def test_runtime_changes_survive_a_plain_load(qa_path, tmp_path):
    """The config wins where it was overridden; a setting the component
    changed itself (a calibrated null threshold) is kept by a load that does
    not override it."""
    nlp = spacy.load(qa_path)
    qa = nlp.get_pipe("bertprod_qa")
    qa.cfg["handle_impossible"], qa.cfg["null_threshold"] = True, 0.25
    nlp.to_disk(tmp_path / "calibrated")
    again = spacy.load(tmp_path / "calibrated").get_pipe("bertprod_qa")
    assert again.cfg["handle_impossible"] is True and again.cfg["null_threshold"] == 0.25
    overridden = spacy.load(tmp_path / "calibrated", config={f"{QA}.null_threshold": 0.5}).get_pipe("bertprod_qa")
    assert overridden.cfg["null_threshold"] == 0.5 and overridden.cfg["handle_impossible"] is True
