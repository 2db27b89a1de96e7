"""`spacy package` of a bertprod pipeline gives a wheel that installs on its
own and loads by name in a fresh process, its components found through the
spacy-bertprod entry points."""

import json
import subprocess
import sys

import numpy as np
import spacy

from conftest import TRAIN_DATA, assert_varies


def test_package_wheel_installs_and_loads(tmp_path, trained_ner_path):
    nlp = spacy.load(trained_ner_path)
    (tmp_path / "packages").mkdir()
    subprocess.run(
        [sys.executable, "-m", "spacy", "package", str(trained_ner_path), str(tmp_path / "packages"), "--name", "bertprod_test", "--version", "0.0.1", "--build", "wheel", "--force"],
        check=True,
        capture_output=True,
        text=True,
    )
    wheels = list((tmp_path / "packages").glob("*/dist/*.whl"))
    assert len(wheels) == 1
    meta = subprocess.run([sys.executable, "-m", "zipfile", "-l", str(wheels[0])], capture_output=True, text=True, check=True)
    assert "bertprod_ner/model" in meta.stdout
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), str(wheels[0])], check=True)
    requires = (next(target.glob("en_bertprod_test-*.dist-info")) / "METADATA").read_text()
    assert "spacy-bertprod" in requires
    # the wheel carries the trained weights: the same entities and tag
    # probabilities as the pipeline it was built from, which are not constant
    texts = [t for t, _ in TRAIN_DATA]
    probs = nlp.get_pipe("bertprod_ner").model.predict([nlp.make_doc(t) for t in texts])
    assert_varies(probs)
    expected = [[(e.start, e.end, e.label_) for e in doc.ents] for doc in nlp.pipe(texts)]
    assert all(expected)
    script = (
        "import json, sys, spacy\n"
        f"sys.path.insert(0, {str(target)!r})\n"
        "nlp = spacy.load('en_bertprod_test')\n"
        f"texts = {texts!r}\n"
        "probs = nlp.get_pipe('bertprod_ner').model.predict([nlp.make_doc(t) for t in texts])\n"
        "ents = [[(e.start, e.end, e.label_) for e in doc.ents] for doc in nlp.pipe(texts)]\n"
        "print(json.dumps({'ents': ents, 'probs': [p.tolist() for p in probs]}))\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, cwd=tmp_path)
    got = json.loads(out.stdout)
    assert [[tuple(e) for e in doc] for doc in got["ents"]] == expected
    for a, b in zip(got["probs"], probs):
        np.testing.assert_allclose(np.asarray(a, dtype="float32"), b, atol=1e-6)
