"""Any Hugging Face encoder: tiny random models of each family (conftest's
`build_tiny_family`: BERT uncased and cased, RoBERTa with byte-level BPE,
XLM-R with a SentencePiece unigram vocabulary, DeBERTa-v2 with wordpieces and
v3-style with relative attention and SentencePiece, ELECTRA, DistilBERT,
ModernBERT with byte-level BPE), each saved as a local Hugging Face folder as a user's own model
would be.

What is covered, per family:
- `input_casing = "auto"` resolves from the model (every family);
- NER (every family): trains, predicts varying scores, round-trips through
  bytes and disk; exports to ONNX fp32 (fused where ONNX Runtime's
  optimizer applies: which fusions apply is pinned per family) within the
  torch backend's outputs; int8 inference-only folders run in the lean runtime
  (one process without torch for all families);
- textcat and QA (every family, torch): train, predict, round-trip through
  bytes; textcat's int8 ONNX keeps its labels; QA's fp32 ONNX gives its
  logits;
- the window limit with RoBERTa-style position offsets; distillation
  across vocabularies (RoBERTa teacher, BERT student).

Pipelines are trained once per module and family (a few steps: the
encoders are random, the scores only need to depend on them).
"""

import json
import warnings
from pathlib import Path
from typing import Callable, Dict, List

import numpy as np
import pytest
import spacy
from test_lean import run_without_torch

from conftest import CATS, FAMILIES, QA_CONTEXT, QA_ROWS, TRAIN_DATA, assert_varies, build_tiny_family, cats_examples, make_examples, ner_config, random_text, train
from spacy_bertprod.compression.onnx_fusion import fused_op_types
from spacy_bertprod.compression.pipelines import onnx_path, onnx_pipeline
from spacy_bertprod.layers.architectures import encoder_v1
from spacy_bertprod.training.squad import make_examples as squad_examples

#: the ONNX tolerance of tests/test_onnx.py
ATOL = 1e-4
#: texts with accents, emoji and a ZWJ sequence, CJK, and one over several windows
TEXTS = [t for t, _ in TRAIN_DATA] + ["Zürich 東京 👩‍👩‍👧 naïve CAFÉ, жизнь.", random_text(40, seed=1)]
#: input_casing = "auto": on for uncased vocabularies with token type embeddings
CASING = {"bert": True, "electra": True}
#: ONNX Runtime's BERT fusions that apply to each family's exported fp32
#: graph: no fused attention for DeBERTa (disentangled attention) or
#: ModernBERT (rotary positions, local attention), no fused embeddings where
#: positions are offset or absent; a graph nothing matches is kept unfused,
#: with W010 (tests/test_onnx_fusion.py)
_BERT_FUSED = {"Attention", "BiasGelu", "EmbedLayerNormalization", "SkipLayerNormalization"}
FUSED = {
    "bert": _BERT_FUSED,
    "bert-cased": _BERT_FUSED,
    "roberta": {"Attention", "BiasGelu", "SkipLayerNormalization"},
    "xlm-roberta": {"Attention", "BiasGelu", "SkipLayerNormalization"},
    "deberta-v2": {"BiasGelu", "SkipLayerNormalization"},
    "deberta-v3": {"BiasGelu", "SkipLayerNormalization"},
    "electra": _BERT_FUSED,
    "distilbert": _BERT_FUSED,
    "modernbert": {"Gelu", "SkipLayerNormalization"},
}
NER_STEPS = 6


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny models: thread hand-offs cost more than they save."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _encoder(nlp, name: str):
    return nlp.get_pipe(name).model.get_ref("encoder")


def _probs(nlp, texts: List[str] = TEXTS) -> List[np.ndarray]:
    return nlp.get_pipe("bertprod_ner").model.predict([nlp.make_doc(t) for t in texts])


def _same(a: List[np.ndarray], b: List[np.ndarray], atol: float = 0.0) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b):
        np.testing.assert_allclose(x, y, atol=atol, rtol=0)


@pytest.fixture(scope="module")
def family_paths(tmp_path_factory) -> Dict[str, str]:
    root = tmp_path_factory.mktemp("families")
    return {family: str(build_tiny_family(root / family, family)) for family in FAMILIES}


def _cached(build: Callable[[str], object]) -> Callable[[str], object]:
    cache: Dict[str, object] = {}

    def get(family: str) -> object:
        if family not in cache:
            cache[family] = build(family)
        return cache[family]

    return get


@pytest.fixture(scope="module")
def ner_path(family_paths, tmp_path_factory) -> Callable[[str], Path]:
    """family -> a saved NER pipeline trained on it (default config, so
    `input_casing = "auto"`)."""

    def build(family: str) -> Path:
        nlp = spacy.blank("en")
        nlp.add_pipe("bertprod_ner", config=ner_config(family_paths[family]))
        train(nlp, make_examples(nlp), steps=NER_STEPS)
        path = tmp_path_factory.mktemp(f"ner-{family}")
        nlp.to_disk(path)
        return path

    return _cached(build)  # type: ignore[return-value]


@pytest.fixture(scope="module")
def int8_path(ner_path, tmp_path_factory) -> Callable[[str], Path]:
    """family -> the NER pipeline as an inference-only int8 ONNX folder."""

    def build(family: str) -> Path:
        path = tmp_path_factory.mktemp(f"int8-{family}")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # W010 where fusion does not apply
            assert onnx_path(ner_path(family), path, int8=True, inference_only=True) == ["bertprod_ner"]
        return path

    return _cached(build)  # type: ignore[return-value]


@pytest.mark.parametrize("family", FAMILIES)
def test_input_casing_auto_follows_the_model(family, family_paths, caplog):
    encoder = encoder_v1(name=family_paths[family], window=16, stride=8, max_batch_wordpieces=64, input_casing="auto")
    with caplog.at_level("INFO", logger="spacy_bertprod"):
        encoder.initialize()
    expected = CASING.get(family, False)
    assert encoder.attrs["input_casing"] is expected
    assert f"input_casing = auto: {'on' if expected else 'off'} for" in caplog.text
    if expected:  # the casing classes reach the transformer as token types
        assert encoder.get_ref("transformer").shims[0]._model.config.type_vocab_size > 2


@pytest.mark.parametrize("family", FAMILIES)
def test_ner_trains_and_round_trips(family, ner_path, family_paths):
    nlp = spacy.load(ner_path(family))
    assert nlp.config["components"]["bertprod_ner"]["model"]["encoder"]["input_casing"] == "auto"
    assert _encoder(nlp, "bertprod_ner").attrs["input_casing"] is CASING.get(family, False)
    probs = _probs(nlp)
    assert_varies(probs)
    assert [len(p) for p in probs] == [len(nlp.make_doc(t)) for t in TEXTS]
    # through bytes into a pipeline built from the config
    again = spacy.blank("en")
    again.add_pipe("bertprod_ner", config=ner_config(family_paths[family]))
    again.from_bytes(nlp.to_bytes())
    _same(_probs(again), probs)
    assert [[(e.start, e.end, e.label_) for e in d.ents] for d in again.pipe(TEXTS)] == [[(e.start, e.end, e.label_) for e in d.ents] for d in nlp.pipe(TEXTS)]
    # the saved decision of "auto" holds: the config may name it, not the other
    key = "components.bertprod_ner.model.encoder.input_casing"
    casing = CASING.get(family, False)
    _same(_probs(spacy.load(ner_path(family), config={key: casing})), probs)
    with pytest.raises(ValueError, match=r"\[E069\]"):
        spacy.load(ner_path(family), config={key: not casing})


@pytest.mark.parametrize("family", FAMILIES)
def test_ner_onnx_fp32_fused(family, ner_path):
    torch_probs = _probs(spacy.load(ner_path(family)))
    nlp = spacy.load(ner_path(family))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert onnx_pipeline(nlp) == ["bertprod_ner"]
    fused = set(fused_op_types(_encoder(nlp, "bertprod_ner").attrs["onnx"].data))
    assert fused == FUSED[family]
    assert not [w for w in caught if "W010" in str(w.message)]
    _same(_probs(nlp), torch_probs, atol=ATOL)


@pytest.mark.parametrize("family", FAMILIES)
def test_ner_int8_inference_only(family, ner_path, int8_path):
    torch_probs = _probs(spacy.load(ner_path(family)))
    lean = spacy.load(int8_path(family))
    assert lean.meta["bertprod"]["compression"]["inference_only"] is True
    probs = _probs(lean)
    assert_varies(probs)
    diff = max(float(np.abs(a - b).max()) for a, b in zip(probs, torch_probs) if a.size)
    assert 0 < diff < 0.1  # int8 ran, and stayed close


#: Loads each inference-only folder named in argv[1:] without torch and
#: prints its NER probabilities on TEXTS.
PREDICT_ALL = f"""
import json, sys, spacy
texts = {TEXTS!r}
out = {{}}
for path in sys.argv[1:]:
    nlp = spacy.load(path)
    out[path] = [p.tolist() for p in nlp.get_pipe("bertprod_ner").model.predict([nlp.make_doc(t) for t in texts])]
out["loaded"] = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "transformers", "safetensors"))
print(json.dumps(out))
"""


def test_every_family_runs_in_the_lean_runtime(int8_path, tmp_path):
    paths = [str(int8_path(family)) for family in FAMILIES]
    out = run_without_torch(PREDICT_ALL, tmp_path, *paths)
    assert out.returncode == 0, out.stderr[-3000:]
    got = json.loads(out.stdout.splitlines()[-1])
    assert got["loaded"] == []
    for path in paths:
        _same([np.asarray(p, dtype="float32") for p in got[path]], _probs(spacy.load(path)), atol=1e-6)


@pytest.fixture(scope="module")
def textcat_nlp(family_paths) -> Callable[[str], spacy.Language]:
    def build(family: str) -> spacy.Language:
        nlp = spacy.blank("en")
        encoder = {"name": family_paths[family], "window": 16, "stride": 8, "max_batch_wordpieces": 256}
        nlp.add_pipe("bertprod_textcat", config={"model": {"encoder": encoder, "pooling": "cls"}})
        return train(nlp, cats_examples(nlp), steps=10)

    return _cached(build)  # type: ignore[return-value]


@pytest.mark.parametrize("family", FAMILIES)
def test_textcat_trains_round_trips_and_exports(family, textcat_nlp, family_paths, tmp_path):
    nlp = textcat_nlp(family)
    texts = [t for t, _ in CATS] + [TEXTS[-2], TEXTS[-1]]
    expected = [d.cats for d in nlp.pipe(texts)]
    assert_varies([[c["POS"]] for c in expected])
    nlp.to_disk(tmp_path / "fp32")
    assert [d.cats for d in spacy.load(tmp_path / "fp32").pipe(texts)] == expected
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # W010 where fusion does not apply
        assert onnx_path(tmp_path / "fp32", tmp_path / "int8", int8=True) == ["bertprod_textcat"]
    got = [d.cats for d in spacy.load(tmp_path / "int8").pipe(texts)]
    diff = max(abs(g[k] - r[k]) for g, r in zip(got, expected) for k in r)
    assert 0 < diff < 0.05


@pytest.fixture(scope="module")
def qa_nlp(family_paths) -> Callable[[str], spacy.Language]:
    def build(family: str) -> spacy.Language:
        nlp = spacy.blank("en")
        model = {"encoder": {"name": family_paths[family], "window": 48, "stride": 24}, "doc_stride": 16, "max_question_len": 12}
        nlp.add_pipe("bertprod_qa", config={"model": model})
        return train(nlp, list(squad_examples(nlp, QA_ROWS)), steps=10)

    return _cached(build)  # type: ignore[return-value]


def _qa_logits(nlp) -> List[np.ndarray]:
    context = random_text(50, seed=3) + " " + QA_CONTEXT  # several windows
    pairs = [(nlp.make_doc(c), r["question"]) for c in (QA_CONTEXT, context) for r in QA_ROWS]
    return [np.concatenate([w.start_logits, w.end_logits]) for s in nlp.get_pipe("bertprod_qa").model.predict(pairs) for w in s.windows]


@pytest.mark.parametrize("family", FAMILIES)
def test_qa_trains_round_trips_and_exports(family, qa_nlp, family_paths):
    from spacy_bertprod.training.students import copy_pipeline

    nlp = qa_nlp(family)
    assert _encoder(nlp, "bertprod_qa").attrs["input_casing"] is False  # the token types mark question and context
    expected = _qa_logits(nlp)
    assert_varies([np.concatenate(expected)[None, :], np.concatenate(expected)[None, ::-1]])
    answers = nlp.get_pipe("bertprod_qa").answer(nlp.make_doc(QA_CONTEXT), QA_ROWS[0]["question"], top_k=2)
    assert answers and all(a.text.strip() for a in answers)
    again = copy_pipeline(nlp)  # through the config and bytes
    _same(_qa_logits(again), expected)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # W010 where fusion does not apply
        onnx_pipeline(again)
    _same(_qa_logits(again), expected, atol=ATOL)


@pytest.mark.parametrize("family", ["roberta", "xlm-roberta"])
def test_window_limit_counts_the_position_offset(family, tmp_path, nlp):
    """RoBERTa-style position ids start after the padding index: a model with
    130 position embeddings and padding index 1 takes 128 wordpieces."""
    path = build_tiny_family(tmp_path / family, family, max_pos=128)
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(path)
    assert config.max_position_embeddings - config.pad_token_id - 1 == 128
    with pytest.raises(ValueError, match=r"\[E006\] The window of 129 wordpieces is larger than the 128 positions"):
        encoder_v1(name=str(path), window=129, stride=64).initialize()
    encoder = encoder_v1(name=str(path), window=128, stride=64)
    encoder.initialize()
    doc = nlp.make_doc(random_text(300, seed=4))  # fills whole windows
    (vectors,) = encoder.predict([doc])
    assert vectors.shape == (len(doc), 32) and np.isfinite(vectors).all()


def test_distillation_across_vocabularies(family_paths, ner_path, qa_nlp):
    """A RoBERTa (byte-level BPE) teacher, a BERT (wordpiece) student: NER and
    textcat targets are per spaCy token and per doc, so they cross
    vocabularies; QA's are per wordpiece (E035)."""
    from spacy.training import Example

    from spacy_bertprod.training.distiller import distill_step
    from spacy_bertprod.training.students import make_student

    teacher = spacy.load(ner_path("roberta"))
    teacher.add_pipe("bertprod_textcat", config={"model": {"encoder": {"name": family_paths["roberta"], "window": 16, "stride": 8}}})
    examples = make_examples(teacher)
    for eg, (_, label) in zip(examples, CATS + CATS):
        eg.reference.cats = {"POS": float(label == "POS"), "NEG": float(label == "NEG")}
    teacher.get_pipe("bertprod_textcat").initialize(lambda: examples, nlp=teacher)
    student = make_student(teacher, encoder=family_paths["bert"], get_examples=lambda: examples)
    assert _encoder(student, "bertprod_ner").attrs["tokenizer"].tokenizer.get_vocab() != _encoder(teacher, "bertprod_ner").attrs["tokenizer"].tokenizer.get_vocab()
    texts = [eg.reference.text for eg in examples]
    before = ([d.cats for d in student.pipe(texts)], _probs(student, texts))
    plain = [Example(student.make_doc(t), student.make_doc(t)) for t in texts]  # unlabelled: soft targets only
    losses: Dict[str, float] = {}
    from thinc.api import Adam

    optimizer = Adam(1e-3)
    for _ in range(3):
        distill_step(teacher, student, plain, temperature=2.0, soft_weight=1.0, gold_weight=0.0, drop=0.0, sgd=optimizer, losses=losses)
    assert losses["bertprod_ner_soft"] > 0 and losses["bertprod_textcat_soft"] > 0
    after = ([d.cats for d in student.pipe(texts)], _probs(student, texts))
    assert after[0] != before[0]
    assert any(not np.allclose(a, b) for a, b in zip(after[1], before[1]))
    qa_teacher = qa_nlp("roberta")
    rows = list(squad_examples(qa_teacher, QA_ROWS))
    with pytest.raises(ValueError, match=r"\[E035\].*wordpiece vocabulary"):
        make_student(qa_teacher, encoder=family_paths["bert"], get_examples=lambda: rows)


def test_window_override_on_load_is_held_to_the_real_limit(ner_path):
    """A saved RoBERTa pipeline keeps the limit its weights have (128 of 130
    position embeddings), so a config override past it fails on load."""
    override = {"components.bertprod_ner.model.encoder.window": 129}
    with pytest.raises(ValueError, match=r"\[E006\] The window of 129 wordpieces is larger than the 128 positions"):
        spacy.load(ner_path("roberta"), config=override)
    loaded = spacy.load(ner_path("roberta"), config={"components.bertprod_ner.model.encoder.window": 128})
    assert _encoder(loaded, "bertprod_ner").attrs["window"] == 128
    assert_varies(_probs(loaded, [random_text(300, seed=5), TEXTS[0]]))
