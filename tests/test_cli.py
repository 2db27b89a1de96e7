"""`spacy train` / `spacy evaluate` on configs/ner.cfg, and our own CLI, run as
a user would (subprocesses), on a tiny model and the shipped sample."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import spacy
from spacy.tokens import DocBin
from spacy.training import Corpus
from spacy.util import load_config

from conftest import TRAIN_DATA, assert_varies
from spacy_bertprod.cli import DEMO_TEXTS
from spacy_bertprod.convert import conll_to_docs, sst2_to_docs
from spacy_bertprod.squad import exact_match

ROOT = Path(__file__).parent.parent


# the configs warm up over 100 steps: a few steps at that rate barely move a
# head that starts at zero
_FAST_LR = (
    "--training.optimizer.learn_rate.initial_rate", "1e-3",
    "--training.optimizer.learn_rate.warmup_steps", "1",
    "--training.optimizer.learn_rate.total_steps", "1000",
)


def _run(*args, cwd=ROOT):
    out = subprocess.run([sys.executable, *args], cwd=cwd, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-3000:]
    return out


def test_convert_sample(tmp_path):
    out = _run("-m", "spacy_bertprod", "convert", "assets/conll2003/train.txt", str(tmp_path / "train.spacy"))
    assert "docs" in out.stdout
    docs = list(DocBin().from_disk(tmp_path / "train.spacy").get_docs(spacy.blank("en").vocab))
    assert len(docs) == 16 and all(d.ents for d in docs)


def test_spacy_train_and_evaluate(tmp_path, tiny_bert):
    for split in ("train", "dev"):
        _run("-m", "spacy_bertprod", "convert", f"assets/conll2003/{split}.txt", str(tmp_path / f"{split}.spacy"))
    _run(
        "-m", "spacy", "train", "configs/ner.cfg",
        "--output", str(tmp_path / "out"),
        "--paths.train", str(tmp_path / "train.spacy"),
        "--paths.dev", str(tmp_path / "dev.spacy"),
        "--components.bertprod_ner.model.encoder.name", tiny_bert,
        "--components.bertprod_ner.model.encoder.window", "64",
        "--components.bertprod_ner.model.encoder.stride", "32",
        "--training.max_steps", "6",
        "--training.eval_frequency", "3",
        "--training.max_epochs", "0",
        *_FAST_LR,
    )
    assert (tmp_path / "out" / "model-best" / "bertprod_ner" / "model").exists()
    _run("-m", "spacy", "evaluate", str(tmp_path / "out" / "model-best"), str(tmp_path / "dev.spacy"), "--output", str(tmp_path / "metrics.json"))
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    # the figures are model-best's own scores on dev, and model-best was
    # trained: its tag probabilities depend on the input
    nlp = spacy.load(tmp_path / "out" / "model-best")
    dev = list(Corpus(str(tmp_path / "dev.spacy"))(nlp))
    scores = nlp.evaluate(dev)
    for key in ("ents_p", "ents_r", "ents_f"):
        assert metrics[key] == pytest.approx(scores[key]), key
    assert_varies(nlp.get_pipe("bertprod_ner").model.predict([eg.predicted for eg in dev[:3]]))


def test_spacy_train_qa(tmp_path, tiny_bert):
    from test_squad import SQUAD

    data = tmp_path / "squad.json"
    data.write_text(json.dumps(SQUAD))
    _run(
        "-m", "spacy", "train", "configs/qa.cfg",
        "--output", str(tmp_path / "out"),
        "--paths.train", str(data),
        "--paths.dev", str(data),
        "--components.bertprod_qa.model.encoder.name", tiny_bert,
        "--components.bertprod_qa.model.encoder.window", "64",
        "--components.bertprod_qa.model.encoder.stride", "32",
        "--components.bertprod_qa.model.doc_stride", "16",
        "--training.max_steps", "30",
        "--training.eval_frequency", "30",
        "--training.max_epochs", "0",
        "--training.dropout", "0.0",
        *_FAST_LR,
    )
    nlp = spacy.load(tmp_path / "out" / "model-last")
    qa = nlp.get_pipe("bertprod_qa")
    context = SQUAD["data"][0]["paragraphs"][0]["context"]
    # it learnt the training questions' answers (SQuAD's exact match)
    for row in SQUAD["data"][0]["paragraphs"][0]["qas"]:
        answer = qa.answer(nlp.make_doc(context), row["question"])[0]
        assert max(exact_match(answer.text, a["text"]) for a in row["answers"]) == 1.0, (row["question"], answer.text)


def _ner_lines(stdout, text):
    """The entities `demo` printed for `text` (the line after it)."""
    lines = stdout.splitlines()
    return lines[lines.index(text) + 1].strip()


def test_demo_on_a_tiny_model(tmp_path, tiny_bert):
    config = load_config(ROOT / "configs" / "ner.cfg", interpolate=False)
    config["components"]["bertprod_ner"]["model"]["encoder"].update(name=tiny_bert, window=64, stride=32)
    config.to_disk(tmp_path / "ner.cfg")
    out = _run(
        "-m", "spacy_bertprod", "demo", "--config", str(tmp_path / "ner.cfg"), "--corpus", str(tmp_path / "corpus"),
        "--output", str(tmp_path / "out"), "--steps", "6",
    )
    nlp = spacy.load(tmp_path / "out" / "model-best")
    for split in ("train", "dev"):  # the shipped sample, converted
        docs = list(DocBin().from_disk(tmp_path / "corpus" / f"{split}.spacy").get_docs(nlp.vocab))
        assert [d.text for d in docs] == [d.text for d in conll_to_docs(ROOT / "assets" / "conll2003" / f"{split}.txt")]
    assert "trained in" in out.stdout
    # it prints what the trained pipeline finds in each demo text
    for doc in nlp.pipe(DEMO_TEXTS):
        printed = _ner_lines(out.stdout, doc.text)
        if doc.ents:
            assert printed == "-> " + ", ".join(f"{e.text} [{e.label_} {e._.bertprod_score:.2f}]" for e in doc.ents)
        else:
            assert printed == "-> (no entities)"
    assert_varies(nlp.get_pipe("bertprod_ner").model.predict([nlp.make_doc(t) for t in DEMO_TEXTS]))


def test_convert_all(tmp_path):
    data = tmp_path / "data"
    shutil.copytree(ROOT / "assets", data)
    (data / "squad" / "dev-v1.1.json").unlink()
    out = _run("-m", "spacy_bertprod", "convert-all", str(data), str(tmp_path / "corpus"), "--limit", "5")
    corpus, vocab = tmp_path / "corpus", spacy.blank("en").vocab
    read = lambda path: list(DocBin().from_disk(path).get_docs(vocab))
    for split in ("train", "dev", "test"):
        expected = conll_to_docs(data / "conll2003" / f"{split}.txt")[:5]
        docs = read(corpus / "ner" / f"{split}.spacy")
        assert [(d.text, [(e.start, e.end, e.label_) for e in d.ents]) for d in docs] == [
            (d.text, [(e.start, e.end, e.label_) for e in d.ents]) for d in expected]
    for split in ("train", "dev"):
        expected = sst2_to_docs(data / "sst2" / "glue" / f"{split}.tsv", spacy.blank("en"), limit=5)
        docs = read(corpus / "textcat" / f"{split}.spacy")
        assert len(docs) == 5 and [(d.text, d.cats) for d in docs] == [(d.text, d.cats) for d in expected]
    train_qa = data / "squad" / "train-subset-v1.1.json"
    assert (corpus / "qa" / "train.json").read_bytes() == train_qa.read_bytes()
    assert not (corpus / "qa" / "dev.json").exists()
    assert f"skip {data / 'squad' / 'dev-v1.1.json'} (not there)" in out.stdout


def test_onnx_command(tmp_path, trained_ner_path):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    out = _run("-m", "spacy_bertprod", "onnx", str(trained_ner_path), str(tmp_path / "int8"), "--int8")
    assert "exported the encoders of ['bertprod_ner'] to int8 ONNX" in out.stdout
    nlp, torch_nlp = spacy.load(tmp_path / "int8"), spacy.load(trained_ner_path)
    assert nlp.config["components"]["bertprod_ner"]["model"]["encoder"]["backend"] == "onnx-int8"
    texts = [t for t, _ in TRAIN_DATA]
    ents = lambda pipeline: [[(e.start, e.end, e.label_) for e in d.ents] for d in pipeline.pipe(texts)]
    expected = ents(torch_nlp)
    assert all(expected) and ents(nlp) == expected
    probe = [nlp.make_doc(t) for t in texts]
    diff = max(float(np.abs(a - b).max()) for a, b in zip(nlp.get_pipe("bertprod_ner").model.predict(probe), torch_nlp.get_pipe("bertprod_ner").model.predict(probe)))
    assert 0 < diff < 0.1  # int8, not the fp32 model
