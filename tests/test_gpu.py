"""Training and prediction on a CUDA GPU (thinc's `require_gpu`, as
`spacy train --gpu-id 0` does). CI has no GPU: these are skipped there and run
on a machine with CUDA, a CUDA build of torch and cupy (`pip install -e .[gpu]`);
the skip reason names what is missing."""

import json
import os
import subprocess
import sys
from typing import Optional

import numpy as np
import pytest
import spacy
from thinc.api import Adam, require_cpu, require_gpu

from conftest import CATS, TRAIN_DATA, cats_examples, make_examples, ner_config, train
from spacy_bertprod.training.squad import make_examples as qa_examples


def _missing_for_gpu() -> Optional[str]:
    """What keeps these tests from running here, or None: a CUDA device that
    torch sees, and cupy for thinc's GPU ops (which no default requirement
    installs)."""
    try:
        import torch
    except ImportError:
        return "torch is not installed"
    if torch.version.cuda is None:
        return f"no CUDA: torch {torch.__version__} is a CPU-only build (install a CUDA build of torch on a GPU machine)"
    if not torch.cuda.is_available():
        return f"no CUDA device: torch {torch.__version__} (CUDA {torch.version.cuda}) sees none"
    try:
        import cupy  # noqa: F401
    except ImportError:
        return "a CUDA device is there but cupy is not installed: pip install -e .[gpu]"
    return None


MISSING = _missing_for_gpu()
pytestmark = [pytest.mark.gpu, pytest.mark.skipif(MISSING is not None, reason=f"GPU tests skipped: {MISSING}")]

PRECISION_KEY = "components.bertprod_ner.model.encoder.inference_precision"
TEXTS = [text for text, _ in TRAIN_DATA]


@pytest.fixture
def gpu():
    require_gpu(0)
    yield
    require_cpu()


def _ents(nlp):
    return [[(e.start_char, e.end_char, e.label_) for e in doc.ents] for doc in nlp.pipe(TEXTS)]


def _module_device(nlp, pipe="bertprod_ner"):
    module = nlp.get_pipe(pipe).model.get_ref("encoder").get_ref("transformer").shims[0]._model
    return next(module.parameters()).device.type


@pytest.fixture
def trained_on_gpu(gpu, tiny_bert, tmp_path):
    nlp = spacy.blank("en")
    nlp.add_pipe("bertprod_ner", config=ner_config(tiny_bert))
    train(nlp, make_examples(nlp), steps=60)
    nlp.to_disk(tmp_path / "ner")
    return nlp, tmp_path / "ner"


def test_trains_on_gpu_and_loads_on_cpu(trained_on_gpu):
    nlp, path = trained_on_gpu
    assert _module_device(nlp) == "cuda"
    assert nlp.evaluate(make_examples(nlp))["ents_f"] == 1.0
    on_gpu = _ents(nlp)
    # a fresh process that sees no GPU gives the same entities
    script = "import json, sys, spacy\nnlp = spacy.load(sys.argv[1])\nprint(json.dumps([[[e.start_char, e.end_char, e.label_] for e in d.ents] for d in nlp.pipe(json.loads(sys.argv[2]))]))\n"
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="")
    out = subprocess.run([sys.executable, "-c", script, str(path), json.dumps(TEXTS)], capture_output=True, text=True, env=env, check=True)
    on_cpu = [[tuple(e) for e in doc] for doc in json.loads(out.stdout.strip().splitlines()[-1])]
    assert on_cpu == on_gpu


@pytest.mark.parametrize("precision", ["fp16", "bf16"])
def test_half_precision_inference_on_cuda(trained_on_gpu, precision):
    nlp, path = trained_on_gpu
    half = spacy.load(path, config={PRECISION_KEY: precision})
    assert _module_device(half) == "cuda"
    doc = nlp.make_doc(" ".join(TEXTS))
    full = nlp.get_pipe("bertprod_ner").model.get_ref("encoder").predict([doc])[0]
    low = half.get_pipe("bertprod_ner").model.get_ref("encoder").predict([doc])[0]
    full, low = (half.ops.to_numpy(x) for x in (full, low))
    assert low.dtype == np.float32 and low.shape == full.shape
    assert not np.array_equal(low, full)  # it really ran in half precision
    np.testing.assert_allclose(low, full, atol=0.1)
    assert _ents(half) == _ents(nlp)


def test_mixed_precision_training_on_cuda(gpu, tiny_bert):
    nlp = spacy.blank("en")
    nlp.add_pipe("bertprod_ner", config=ner_config(tiny_bert, mixed_precision=True))
    train(nlp, make_examples(nlp), steps=60)
    assert nlp.evaluate(make_examples(nlp))["ents_f"] == 1.0


def test_textcat_and_qa_on_gpu(gpu, tiny_bert):
    nlp = spacy.blank("en")
    encoder = {"name": tiny_bert, "window": 16, "stride": 8, "max_batch_wordpieces": 256}
    nlp.add_pipe("bertprod_textcat", config={"model": {"encoder": encoder}})
    examples = cats_examples(nlp, CATS[:2])
    train(nlp, examples, steps=30)
    assert _module_device(nlp, "bertprod_textcat") == "cuda"
    assert nlp.evaluate(examples)["cats_macro_f"] == 1.0

    context = "Marie Curie was born in Warsaw in 1867. She moved to Paris in 1891."
    rows = [{"id": "1", "question": "where was marie curie born?", "context": context, "answers": [(24, 30, "Warsaw")]}]
    qa_nlp = spacy.blank("en")
    qa = qa_nlp.add_pipe("bertprod_qa", config={"model": {"encoder": {"name": tiny_bert, "window": 48, "stride": 24}, "doc_stride": 16, "max_question_len": 12}})
    qa_ex = list(qa_examples(qa_nlp, rows))
    qa_nlp.initialize(lambda: qa_ex)
    optimizer = Adam(1e-3)
    for _ in range(60):
        qa_nlp.update(qa_ex, sgd=optimizer)
    assert qa.answer(qa_nlp.make_doc(context), rows[0]["question"])[0].text == "Warsaw"
