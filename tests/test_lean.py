"""The lean runtime: ONNX pipelines load and run where torch,
transformers, sentence-transformers and safetensors cannot be imported; a
torch pipeline there fails with a coded error naming the extra to install."""

import json
import os
import re
import subprocess
import sys
import types
from pathlib import Path
from typing import List

import numpy as np
import pytest
import spacy
import srsly

from conftest import TRAIN_DATA, assert_varies, copy_sources, make_examples
from spacy_bertprod.compression.pipelines import onnx_path, onnx_pipeline
from spacy_bertprod.extras import torch_installed
from spacy_bertprod.layers.transformer import is_inference_only

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
import json, sys, spacy
nlp = spacy.load(sys.argv[1])
texts = {TEXTS!r}
model = nlp.get_pipe("bertprod_ner").model
probs = model.predict([nlp.make_doc(t) for t in texts])
pieces = model.get_ref("encoder").attrs["tokenizer"].offsets_and_ids(texts)
ents = [[(e.start, e.end, e.label_) for e in doc.ents] for doc in nlp.pipe(texts)]
loaded = sorted(m for m in sys.modules if m.split(".")[0] in {TRAIN_STACK!r})
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
    code = "from spacy_bertprod.compression.pipelines import onnx_path\nonnx_path(sys.argv[1], sys.argv[2])\n"
    out = run_without_torch(code, tmp_path, str(onnx_int8_path), str(tmp_path / "out"))
    assert "ImportError: [E100] This needs torch" in out.stderr


def test_a_folder_named_torch_is_not_torch(monkeypatch):
    """An empty namespace package "torch" (a folder of that name on sys.path,
    e.g. a pipeline saved in the working directory) is not an installed torch."""
    monkeypatch.setitem(sys.modules, "torch", types.ModuleType("torch"))
    assert not torch_installed()


@pytest.fixture(scope="module")
def inference_only_path(trained_ner_path, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("inference-only")
    onnx_path(trained_ner_path, path, int8=True, inference_only=True)
    return path


def _torch_state(nlp) -> bytes:
    """What the encoder's torch layer saves (HF config and weights)."""
    encoder = nlp.get_pipe("bertprod_ner").model.get_ref("encoder")
    return srsly.msgpack_loads(encoder.get_ref("transformer").shims[0].to_bytes())["state"]


def test_inference_only_folder_has_no_torch_weights(onnx_int8_path, inference_only_path, tmp_path):
    full, lean = spacy.load(onnx_int8_path), spacy.load(inference_only_path)
    assert lean.meta["bertprod"]["compression"]["inference_only"] is True
    ents, probs, _ = _predict(full)
    got_ents, got_probs, _ = _predict(lean)
    assert got_ents == ents
    for a, b in zip(got_probs, probs):
        np.testing.assert_array_equal(a, b)  # the same ONNX model and heads
    assert srsly.msgpack_loads(_torch_state(lean))["state"] == b""
    # the folder is smaller by the torch weights (their safetensors bytes)
    saved = (onnx_int8_path / "bertprod_ner" / "model").stat().st_size - (inference_only_path / "bertprod_ner" / "model").stat().st_size
    assert saved > 0.99 * len(srsly.msgpack_loads(_torch_state(full))["state"])
    got = _predict_without_torch(inference_only_path, tmp_path)
    assert [[tuple(e) for e in doc] for doc in got["ents"]] == ents


def test_inference_only_cannot_train(inference_only_path):
    nlp = spacy.load(inference_only_path)
    examples = make_examples(nlp)
    with pytest.raises(ValueError, match=r"\[E102\] The encoder has no torch weights"):
        nlp.update(examples)
    encoder = nlp.get_pipe("bertprod_ner").model.get_ref("encoder")
    with pytest.raises(ValueError, match=r"\[E102\]"):
        onnx_pipeline(nlp)
    override = {"components": {"bertprod_ner": {"model": {"encoder": {"backend": "torch"}}}}}
    as_torch = spacy.load(inference_only_path, config=override)
    with pytest.raises(ValueError, match=r"\[E102\]"):
        as_torch("Angela Merkel visited Munich.")
    assert is_inference_only(encoder)


def test_inference_only_wheel_installs_and_runs_without_torch(inference_only_path, tmp_path):
    """The issue's path: `spacy package` of an inference-only folder gives a
    wheel that asks for spacy-bertprod only (whose core install has no
    torch) and runs where the training stack cannot be imported."""
    packages = tmp_path / "packages"
    packages.mkdir()
    command = ["-m", "spacy", "package", str(inference_only_path), str(packages), "--name", "lean_test", "--version", "0.0.1", "--build", "wheel", "--force"]
    subprocess.run([sys.executable, *command], check=True, capture_output=True, text=True)
    (wheel,) = packages.glob("*/dist/*.whl")
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), str(wheel)], check=True)
    metadata = (next(target.glob("en_lean_test-*.dist-info")) / "METADATA").read_text()
    requires = [line.split(":", 1)[1].strip() for line in metadata.splitlines() if line.startswith("Requires-Dist:")]
    assert {re.split(r"[<>=!~;\s]", r)[0] for r in requires} == {"spacy-bertprod", "spacy"}
    out = run_without_torch(f"sys.path.insert(0, {str(target)!r})\n" + PREDICT, tmp_path, "en_lean_test")
    assert out.returncode == 0, out.stderr[-3000:]
    ents, _, _ = _predict(spacy.load(inference_only_path))
    assert [[tuple(e) for e in doc] for doc in json.loads(out.stdout.splitlines()[-1])["ents"]] == ents


def _requirement_name(requirement: str) -> str:
    return re.split(r"[<>=!~;\[\s]", requirement.strip(), maxsplit=1)[0].lower().replace("_", "-")


def core_pins() -> List[str]:
    """The core dependencies of pyproject.toml at the versions requirements.txt pins."""
    import tomllib

    core = [_requirement_name(r) for r in tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf8"))["project"]["dependencies"]]
    pins = {_requirement_name(line): line.strip() for line in (ROOT / "requirements.txt").read_text(encoding="utf8").splitlines() if "==" in line}
    missing = [name for name in core if name not in pins]
    assert not missing, f"requirements.txt pins no version of the core dependencies {missing}"
    return [pins[name] for name in core]


def checkout_wheel(tmp_path: Path) -> Path:
    """spacy-bertprod's wheel, built from a copy of the checkout's sources
    (see `copy_sources`)."""
    source = copy_sources(ROOT, tmp_path / "source")
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check"]
    subprocess.run([*pip, "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(tmp_path / "wheels"), str(source)], check=True, capture_output=True)
    (wheel,) = (tmp_path / "wheels").glob("spacy_bertprod-*.whl")
    return wheel


@pytest.mark.venv
def test_core_install_runs_an_onnx_pipeline(inference_only_path, tmp_path):
    """The lean runtime as users get it: a fresh virtualenv (no system site
    packages) with only the core dependencies from the package registry and
    this package without its dependencies loads and runs an inference-only
    pipeline in a process outside the checkout; torch is not there."""
    wheel = checkout_wheel(tmp_path)
    venv = tmp_path / "lean-venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = str(venv / "bin" / "python")
    lean_pip = [python, "-m", "pip", "--disable-pip-version-check", "install", "-q"]
    installed = subprocess.run([*lean_pip, *core_pins()], capture_output=True, text=True)
    assert installed.returncode == 0, "pip could not install the core dependencies (no network or cache? deselect with -m 'not venv'):\n" + installed.stderr[-2000:]
    subprocess.run([*lean_pip, "--no-deps", str(wheel)], check=True)
    code = "import importlib.util\nassert importlib.util.find_spec('torch') is None, 'torch is installed'\n" + PREDICT
    out = subprocess.run([python, "-c", code, str(inference_only_path)], capture_output=True, text=True, cwd=tmp_path, env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
    assert out.returncode == 0, out.stderr[-3000:]
    ents, probs, _ = _predict(spacy.load(inference_only_path))
    got = json.loads(out.stdout.splitlines()[-1])
    assert [[tuple(e) for e in doc] for doc in got["ents"]] == ents
    for a, b in zip(got["probs"], probs):
        np.testing.assert_allclose(np.asarray(a, dtype="float32"), b, atol=1e-5)
