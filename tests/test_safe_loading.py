"""Damaged or untrusted pipeline folders fail in `spacy.load` (or
`initialize`) with a coded error naming the file, and nothing unpickles."""

import re
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import spacy
import srsly
from spacy.training import Example
from thinc.api import fix_random_seed

from conftest import TRAIN_DATA, build_tiny_bert, make_examples, ner_config, train

TEXTS = [text for text, _ in TRAIN_DATA]
PACKAGE = Path(__file__).parent.parent / "spacy_bertprod"


@pytest.fixture(scope="module")
def ner_path(tiny_bert, tmp_path_factory) -> Path:
    fix_random_seed(0)
    nlp = spacy.blank("en")
    nlp.add_pipe("bertprod_ner", config=ner_config(tiny_bert))
    path = tmp_path_factory.mktemp("ner")
    train(nlp, make_examples(nlp), 10).to_disk(path)
    return path


@pytest.fixture
def damaged(ner_path, tmp_path) -> Path:
    """A copy of the NER pipeline folder, to damage."""
    return Path(shutil.copytree(ner_path, tmp_path / "damaged"))


def _rewrite_transformer_state(model_file: Path, edit) -> None:
    """Apply `edit` to the serialized transformer (the dict that
    `layers.transformer.serialize_module` wrote) inside a component's `model` file."""
    msg = srsly.msgpack_loads(model_file.read_bytes())
    for shims in msg["shims"]:
        for i, shim_bytes in enumerate(shims):
            shim = srsly.msgpack_loads(shim_bytes)
            module = srsly.msgpack_loads(shim["state"])
            if module["config"] is not None:
                edit(module)
                shim["state"] = srsly.msgpack_dumps(module)
                shims[i] = srsly.msgpack_dumps(shim)
    model_file.write_bytes(srsly.msgpack_dumps(msg))


def _transformer_state(model_file: Path) -> dict:
    found = []
    _rewrite_transformer_state(model_file, found.append)
    (module,) = found
    return module


@pytest.mark.parametrize("size", ["empty", "truncated"])
def test_damaged_model_file_fails_at_load_naming_it(damaged, size):
    model_file = damaged / "bertprod_ner" / "model"
    data = model_file.read_bytes()
    model_file.write_bytes(b"" if size == "empty" else data[: len(data) // 2])
    with pytest.raises(ValueError, match=rf"\[E042\] Could not read '{re.escape(str(model_file))}'.*Save the pipeline again"):
        spacy.load(damaged)


def test_corrupt_tokenizer_json_fails_at_load_naming_the_file(damaged):
    model_file = damaged / "bertprod_ner" / "model"
    msg = srsly.msgpack_loads(model_file.read_bytes())
    (index,) = [i for i, attrs in enumerate(msg["attrs"]) if "tokenizer" in attrs]
    holder = srsly.msgpack_loads(msg["attrs"][index]["tokenizer"])
    holder["tokenizer"] = holder["tokenizer"][: len(holder["tokenizer"]) // 2]
    msg["attrs"][index]["tokenizer"] = srsly.msgpack_dumps(holder)
    model_file.write_bytes(srsly.msgpack_dumps(msg))
    with pytest.raises(ValueError, match=rf"\[E043\] The fast tokenizer stored in '{re.escape(str(model_file))}' is damaged"):
        spacy.load(damaged)


def test_damaged_transformer_weights_fail_at_load_naming_the_file(damaged):
    model_file = damaged / "bertprod_ner" / "model"

    def truncate(module):
        module["state"] = module["state"][: len(module["state"]) // 2]

    _rewrite_transformer_state(model_file, truncate)
    with pytest.raises(ValueError, match=rf"\[E044\] The transformer weights stored in '{re.escape(str(model_file))}' are damaged"):
        spacy.load(damaged)


def test_missing_cfg_fails_at_load_not_at_first_doc(damaged):
    (damaged / "bertprod_ner" / "cfg").unlink()
    with pytest.raises(ValueError, match=rf"\[E046\] The folder of component 'bertprod_ner' has no 'cfg' file \({re.escape(str(damaged / 'bertprod_ner' / 'cfg'))}\)"):
        spacy.load(damaged)


@pytest.mark.parametrize("change", [-1, 1])
def test_ner_labels_edited_in_cfg_fail_at_load(damaged, change):
    cfg_file = damaged / "bertprod_ner" / "cfg"
    cfg = srsly.read_json(cfg_file)
    cfg["labels"] = cfg["labels"][:-1] if change < 0 else cfg["labels"] + ["MISC"]
    srsly.write_json(cfg_file, cfg)
    n = len(cfg["labels"])
    with pytest.raises(ValueError, match=rf"\[E047\] The {n} labels .* in '{re.escape(str(cfg_file))}' need an output layer of {4 * n + 1} units, but the weights of component 'bertprod_ner' have 13"):
        spacy.load(damaged)


def test_textcat_labels_edited_in_cfg_fail_at_load(tiny_bert, tmp_path):
    nlp = spacy.blank("en")
    encoder = {"name": tiny_bert, "window": 16, "stride": 8, "max_batch_wordpieces": 256}
    nlp.add_pipe("bertprod_textcat", config={"model": {"encoder": encoder}})
    examples = [Example.from_dict(nlp.make_doc(t), {"cats": {"POS": float(i % 2 == 0), "NEG": float(i % 2 == 1)}}) for i, t in enumerate(TEXTS)]
    nlp.initialize(lambda: examples)
    nlp.to_disk(tmp_path)
    cfg_file = tmp_path / "bertprod_textcat" / "cfg"
    cfg = srsly.read_json(cfg_file)
    cfg["labels"].append("NEUTRAL")
    srsly.write_json(cfg_file, cfg)
    with pytest.raises(ValueError, match=r"\[E047\] The 3 labels .* need an output layer of 3 units, but the weights of component 'bertprod_textcat' have 2"):
        spacy.load(tmp_path)


@pytest.mark.parametrize("filename", ["model.safetensors", "tokenizer.json"])
def test_damaged_local_model_file_fails_at_initialize_naming_it(tmp_path, filename):
    model_dir = build_tiny_bert(tmp_path / "model")
    damaged_file = model_dir / filename
    data = damaged_file.read_bytes()
    damaged_file.write_bytes(data[: len(data) // 2])
    nlp = spacy.blank("en")
    nlp.add_pipe("bertprod_ner", config=ner_config(str(model_dir)))
    with pytest.raises(ValueError, match=rf"\[E048\] Could not read '{re.escape(str(damaged_file))}'.*download the model again"):
        nlp.initialize(lambda: make_examples(nlp))


def _quantized(ner_path):
    from spacy_bertprod.compression.pipelines import quantize_pipeline

    nlp = spacy.load(ner_path)
    quantize_pipeline(nlp)
    return nlp


def _probs(nlp):
    model = nlp.get_pipe("bertprod_ner").model
    return model.predict([nlp.make_doc(text) for text in TEXTS])


@pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning")  # torch int8
def test_int8_weights_are_plain_tensors_and_round_trip_exactly(ner_path, tmp_path):
    import torch
    from safetensors.torch import load

    nlp = _quantized(ner_path)
    before = _probs(nlp)
    assert not np.allclose(before[0][0], before[1][0])  # trained: outputs vary by input
    nlp.to_disk(tmp_path)
    module = _transformer_state(tmp_path / "bertprod_ner" / "model")
    assert module["quantization"] == "int8-dynamic-per-channel"
    tensors = load(module["state"])  # safetensors: plain tensors, no pickle
    int8 = [k for k, v in tensors.items() if v.dtype == torch.int8]
    assert int8 and all(k.endswith(".int8_weight") for k in int8)
    loaded = spacy.load(tmp_path)
    for a, b in zip(before, _probs(loaded)):
        np.testing.assert_array_equal(a, b)


class _Exploit:
    """Unpickling it creates the marker file (a stand-in for any code)."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


@pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning")  # torch int8
def test_malicious_int8_pickle_is_refused_and_never_run(ner_path, tmp_path):
    import io

    import torch

    _quantized(ner_path).to_disk(tmp_path / "int8")
    marker = tmp_path / "exploited"
    buffer = io.BytesIO()
    torch.save({"encoder.layer.0.attention.self.query.weight": _Exploit(marker)}, buffer)

    def plant(module):
        module.pop("format", None)
        module["state"] = buffer.getvalue()

    model_file = tmp_path / "int8" / "bertprod_ner" / "model"
    _rewrite_transformer_state(model_file, plant)
    with pytest.raises(ValueError, match=rf"\[E045\] '{re.escape(str(model_file))}' holds int8 weights in the old torch.save \(pickle\) format"):
        spacy.load(tmp_path / "int8")
    assert not marker.exists()


@pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning")  # torch int8
def test_int8_folder_of_the_old_pickle_format_is_refused(ner_path, tmp_path):
    """A genuine int8 folder written by the old code (state dict through
    torch.save) is refused too: the loader cannot tell it from a malicious one
    without unpickling it."""
    import io

    import torch

    nlp = _quantized(ner_path)
    nlp.to_disk(tmp_path)
    module = nlp.get_pipe("bertprod_ner").model.get_ref("encoder").get_ref("transformer").shims[0]._model
    buffer = io.BytesIO()
    torch.save(module.state_dict(), buffer)

    def old_format(state):
        state.pop("format", None)
        state["state"] = buffer.getvalue()

    _rewrite_transformer_state(tmp_path / "bertprod_ner" / "model", old_format)
    with pytest.raises(ValueError, match=r"\[E045\].*python -m spacy bertprod quantize"):
        spacy.load(tmp_path)


def test_nothing_in_the_package_unpickles():
    unpickling = r"torch\.(load|save)\(|import (c?pickle|dill|joblib|cloudpickle)\b|pickle\.loads?\(|weights_only\s*=\s*False|allow_pickle\s*=\s*True"
    pattern = re.compile(unpickling)
    found = [f"{path.name}:{i}: {line.strip()}" for path in sorted(PACKAGE.rglob("*.py")) for i, line in enumerate(path.read_text(encoding="utf8").splitlines(), 1) if pattern.search(line)]
    assert found == []


def test_onnx_pipeline_without_onnxruntime_fails_at_load(ner_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    override = {"components": {"bertprod_ner": {"model": {"encoder": {"backend": "onnx"}}}}}
    with pytest.raises(ImportError, match=r"\[E028\].*spacy-bertprod\[onnx\]"):
        spacy.load(ner_path, config=override)


def test_missing_onnx_at_export_is_e024(ner_path, monkeypatch):
    from spacy_bertprod.compression.onnx_export import export_onnx
    from spacy_bertprod.layers.transformer import hf_module

    module = hf_module(spacy.load(ner_path).get_pipe("bertprod_ner").model.get_ref("encoder"))
    monkeypatch.setitem(sys.modules, "onnx", None)
    with pytest.raises(ImportError, match=r"\[E028\]"):
        export_onnx(module)
