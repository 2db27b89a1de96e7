"""`spacy train` / `spacy evaluate` on configs/ner.cfg, and our own CLI, run as
a user would (subprocesses), on a tiny model and the shipped sample."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parent.parent


def _run(*args, cwd=ROOT):
    return subprocess.run([sys.executable, *args], cwd=cwd, capture_output=True, text=True, check=True)


def test_convert_sample(tmp_path):
    out = _run("-m", "spacy_bertprod", "convert", "assets/conll2003/train.txt", str(tmp_path / "train.spacy"))
    assert "docs" in out.stdout
    from spacy.tokens import DocBin
    import spacy

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
    )
    assert (tmp_path / "out" / "model-best" / "bertprod_ner" / "model").exists()
    _run("-m", "spacy", "evaluate", str(tmp_path / "out" / "model-best"), str(tmp_path / "dev.spacy"), "--output", str(tmp_path / "metrics.json"))
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert {"ents_p", "ents_r", "ents_f"} <= set(metrics)


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
        "--training.max_steps", "4",
        "--training.eval_frequency", "2",
        "--training.max_epochs", "0",
    )
    import spacy

    nlp = spacy.load(tmp_path / "out" / "model-last")
    answers = nlp.get_pipe("bertprod_qa").answer(nlp.make_doc(SQUAD["data"][0]["paragraphs"][0]["context"]), "Where?")
    assert len(answers) == 1
