"""`spacy package` of a bertprod pipeline gives a wheel that installs on its
own and loads by name in a fresh process, its components found through the
spacy-bertprod entry points."""

import subprocess
import sys

import spacy

from conftest import TRAIN_DATA, make_examples, ner_config


def test_package_wheel_installs_and_loads(tmp_path, tiny_bert):
    nlp = spacy.blank("en")
    nlp.add_pipe("bertprod_ner", config=ner_config(tiny_bert))
    nlp.initialize(lambda: make_examples(nlp))
    nlp.to_disk(tmp_path / "pipeline")
    (tmp_path / "packages").mkdir()
    subprocess.run(
        [sys.executable, "-m", "spacy", "package", str(tmp_path / "pipeline"), str(tmp_path / "packages"),
         "--name", "bertprod_test", "--version", "0.0.1", "--build", "wheel", "--force"],
        check=True, capture_output=True, text=True,
    )
    wheels = list((tmp_path / "packages").glob("*/dist/*.whl"))
    assert len(wheels) == 1
    meta = subprocess.run([sys.executable, "-m", "zipfile", "-l", str(wheels[0])], capture_output=True, text=True, check=True)
    assert "bertprod_ner/model" in meta.stdout
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), str(wheels[0])], check=True)
    requires = (next(target.glob("en_bertprod_test-*.dist-info")) / "METADATA").read_text()
    assert "spacy-bertprod" in requires
    text = TRAIN_DATA[0][0]
    expected = [(t.i, t.ent_iob_, t.ent_type_) for t in nlp(text)]
    script = (
        "import json, sys, spacy\n"
        f"sys.path.insert(0, {str(target)!r})\n"
        "nlp = spacy.load('en_bertprod_test')\n"
        f"print(json.dumps([(t.i, t.ent_iob_, t.ent_type_) for t in nlp({text!r})]))\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, cwd=tmp_path)
    import json

    assert [tuple(x) for x in json.loads(out.stdout)] == expected
