"""The lean runtime (issue 18): ONNX pipelines load and run where torch,
transformers, sentence-transformers and safetensors cannot be imported; a
torch pipeline there fails with a coded error naming the extra to install."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import spacy

from conftest import TRAIN_DATA, assert_varies

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

from spacy_bertprod.compress import onnx_path  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
TEXTS = [t for t, _ in TRAIN_DATA]
TRAIN_STACK = ("torch", "transformers", "sentence_transformers", "safetensors")

#: Run before the code under test in a fresh interpreter: a meta path finder
#: makes importing the training stack fail as if it were not installed.
#: spacy-transformers (installed here for bench/) registers spaCy factories
#: through entry points that import torch; an environment without torch has
#: no spacy-transformers either, so its entry points are left out.
WITHOUT_TORCH = f"""
import sys
BLOCKED = {TRAIN_STACK!r}

class Blocked:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError(f"No module named {{name!r}} (blocked by the test)")
        return None

sys.meta_path.insert(0, Blocked())
import catalogue
_entry_points = catalogue.Registry._get_entry_points
catalogue.Registry._get_entry_points = lambda self: [e for e in _entry_points(self) if not e.value.startswith("spacy_transformers")]
"""


def run_without_torch(code: str, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    """Run `code` (with `args` in sys.argv[1:]) in a new interpreter that
    cannot import the training stack, on this checkout's package."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-c", WITHOUT_TORCH + code, *args], capture_output=True, text=True, cwd=cwd, env=env)


#: Loads the pipeline at argv[1] and prints what it predicts on TEXTS: the
#: entities, the tag probabilities and the encoder's wordpieces and offsets.
PREDICT = f"""
import json, spacy
nlp = spacy.load(sys.argv[1])
texts = {TEXTS!r}
model = nlp.get_pipe("bertprod_ner").model
probs = model.predict([nlp.make_doc(t) for t in texts])
pieces = model.get_ref("encoder").attrs["tokenizer"].offsets_and_ids(texts)
ents = [[(e.start, e.end, e.label_) for e in doc.ents] for doc in nlp.pipe(texts)]
loaded = sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED)
if len(sys.argv) > 2:
    nlp.to_disk(sys.argv[2])
print(json.dumps({{"ents": ents, "probs": [p.tolist() for p in probs], "pieces": [[i.tolist(), o.tolist()] for i, o in pieces], "loaded": loaded}}))
"""


@pytest.fixture(scope="module")
def onnx_int8_path(trained_ner_path, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("onnx-int8")
    onnx_path(trained_ner_path, path, int8=True)
    return path


def _predict(nlp):
    model = nlp.get_pipe("bertprod_ner").model
    probs = model.predict([nlp.make_doc(t) for t in TEXTS])
    pieces = model.get_ref("encoder").attrs["tokenizer"].offsets_and_ids(TEXTS)
    ents = [[(e.start, e.end, e.label_) for e in doc.ents] for doc in nlp.pipe(TEXTS)]
    return ents, probs, pieces


def _predict_without_torch(path: Path, tmp_path: Path, *args: str) -> dict:
    out = run_without_torch(PREDICT, tmp_path, str(path), *args)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.splitlines()[-1])


def test_onnx_pipeline_runs_without_torch(onnx_int8_path, tmp_path):
    ents, probs, pieces = _predict(spacy.load(onnx_int8_path))
    assert_varies(probs)
    assert all(ents)
    got = _predict_without_torch(onnx_int8_path, tmp_path, str(tmp_path / "again"))
    assert got["loaded"] == []
    assert [[tuple(e) for e in doc] for doc in got["ents"]] == ents
    for a, b in zip(got["probs"], probs):
        np.testing.assert_allclose(np.asarray(a, dtype="float32"), b, atol=1e-6)
    # the tokenizer comes from the `tokenizers` library alone: the same wordpieces and offsets
    assert got["pieces"] == [[ids.tolist(), offsets.tolist()] for ids, offsets in pieces]
    # saved again without torch, the torch state it never read is kept as it was
    assert (tmp_path / "again" / "bertprod_ner" / "model").read_bytes() == (onnx_int8_path / "bertprod_ner" / "model").read_bytes()


def test_torch_pipeline_without_torch_names_the_extra(trained_ner_path, tmp_path):
    out = run_without_torch("import spacy\nspacy.load(sys.argv[1])\n", tmp_path, str(trained_ner_path))
    assert out.returncode != 0
    assert "ImportError: [E101]" in out.stderr and 'pip install "spacy-bertprod[train]"' in out.stderr


def test_exporting_without_torch_names_the_extra(onnx_int8_path, tmp_path):
    code = "from spacy_bertprod.compress import onnx_path\nonnx_path(sys.argv[1], sys.argv[2])\n"
    out = run_without_torch(code, tmp_path, str(onnx_int8_path), str(tmp_path / "out"))
    assert "ImportError: [E100] This needs torch" in out.stderr
