"""Knowledge distillation: a smaller student pipeline trained to match a
trained teacher pipeline.

The student is a copy of the teacher whose encoders keep a subset of the
transformer layers (DistilBERT-style initialisation: e.g. layers 0, 2 and 5
of a 6-layer teacher), heads and tokenizer included; or the teacher's
pipeline with another (e.g. narrower) pretrained encoder and freshly
initialised heads for the same labels. Each step, for every
bertprod component (NER, textcat, QA):

    loss = soft_weight * T^2 * KL(teacher_T || student_T) + gold_weight * gold loss

where `X_T` are the distributions at temperature T (tag distributions per
token for NER, the label distribution per doc for textcat - per-label
sigmoids when multi-label -, start and end distributions per window for QA).
With `hidden_weight > 0` the loss adds `hidden_weight * MSE` between the
student's and the teacher's last hidden states over every real wordpiece
(students of the teacher's width only).
The gold term is the component's own `get_loss`; examples without
annotation (unlabelled text) give it no gradient, so plain text trains the
soft-target part.
"""

import copy
import random
import time
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np
from spacy.language import Language
from spacy.training import Example
from spacy.training.batchers import minibatch_by_words
from spacy.util import load_model_from_config
from thinc.api import Adam, Model, get_array_module, get_ops, set_dropout_rate, warmup_linear

from .compress import _encoder_blocks, bertprod_encoders
from .errors import Errors
from .layers.batching import hidden_state_hook
from .layers.encoder import is_bertprod_encoder, is_count
from .layers.quantization import is_torch_quantized
from .layers.transformer import hf_module, set_hf_module
from .ner import BertprodNER
from .qa import BertprodQA
from .textcat import BertprodTextCategorizer

DISTILLABLE = (BertprodNER, BertprodTextCategorizer, BertprodQA)


# -- the student ------------------------------------------------------------
def _layer_list(module: Any) -> Tuple[Any, str]:
    """The ModuleList of transformer blocks and the attribute holding it."""
    for owner_name, attr in (("encoder", "layer"), ("transformer", "layer")):
        owner = getattr(module, owner_name, None)
        if owner is not None and hasattr(owner, attr):
            return owner, attr
    raise ValueError(Errors.E023.format(type=type(module).__name__))


def spread_layers(n_teacher: int, n_student: int) -> List[int]:
    """`n_student` teacher layers spread evenly, first and last included."""
    if not is_count(n_student, 1) or n_student > n_teacher:
        raise ValueError(Errors.E063.format(value=n_student, n_teacher=n_teacher))
    return sorted({int(round(i)) for i in np.linspace(0, n_teacher - 1, n_student)})


def keep_layers(module: Any, layers: Sequence[int]) -> Any:
    """A copy of a HF encoder with only the given transformer layers."""
    import torch

    owner, attr = _layer_list(module)
    n = len(getattr(owner, attr))
    if not layers or sorted(set(layers)) != list(layers) or layers[0] < 0 or layers[-1] >= n:
        raise ValueError(Errors.E064.format(value=list(layers), last=n - 1))
    student = copy.deepcopy(module)
    s_owner, _ = _layer_list(student)
    setattr(s_owner, attr, torch.nn.ModuleList([getattr(s_owner, attr)[i] for i in layers]))
    for key in ("num_hidden_layers", "n_layers"):
        if hasattr(student.config, key):
            setattr(student.config, key, len(layers))
    return student


def copy_pipeline(nlp: Language) -> Language:
    """An independent copy of a pipeline, weights included."""
    copied = load_model_from_config(nlp.config, auto_fill=False, validate=False)
    copied.from_bytes(nlp.to_bytes())
    copied.meta.update(copy.deepcopy(nlp.meta))
    return copied


def make_student(
    teacher: Language,
    *,
    layers: Optional[Sequence[int]] = None,
    n_layers: Optional[int] = None,
    encoder: Optional[str] = None,
    get_examples: Optional[Callable[[], Iterable[Example]]] = None,
) -> Language:
    """A student pipeline: the teacher copied, each bertprod encoder cut to
    `layers` (teacher indices) or to `n_layers` spread evenly; or, with
    `encoder` (a HF name or local path, e.g. a narrower model), the teacher's
    pipeline on that pretrained encoder, its heads initialised for the
    teacher's labels on `get_examples` (the training examples)."""
    _check_distillable(teacher)
    for name, enc in bertprod_encoders(teacher).items():
        if is_torch_quantized(hf_module(enc)) or enc.attrs.get("backend", "torch") != "torch":
            raise ValueError(Errors.E024.format(component=name))
    if encoder is not None:
        if layers is not None or n_layers is not None:
            raise ValueError(Errors.E065.format(value=encoder))
        return _student_on_encoder(teacher, encoder, get_examples)
    student = copy_pipeline(teacher)
    for name, encoder_layer in bertprod_encoders(student).items():
        module = hf_module(encoder_layer)
        owner, attr = _layer_list(module)
        keep = list(layers) if layers is not None else spread_layers(len(getattr(owner, attr)), n_layers or len(getattr(owner, attr)))
        set_hf_module(encoder_layer, keep_layers(module, keep))
        info = student.meta.setdefault("bertprod", {}).setdefault("distillation", {})
        info.setdefault("layers", {})[name] = keep
    return student


def _student_on_encoder(teacher: Language, name: str, get_examples: Optional[Callable[[], Iterable[Example]]]) -> Language:
    """The teacher's pipeline with encoder `name` in every bertprod encoder
    block; distillable heads initialised fresh for the teacher's labels,
    other components copied."""
    if get_examples is None:
        raise ValueError(Errors.E034.format(name=name))
    config = teacher.config.copy()
    for component in config["components"].values():
        for block in _encoder_blocks(component):
            block["name"] = name
    student = load_model_from_config(config, auto_fill=False, validate=False)
    student.meta.update(copy.deepcopy(teacher.meta))
    for comp_name, pipe in student.components:
        source = teacher.get_pipe(comp_name)
        if isinstance(pipe, BertprodQA):
            pipe.initialize(get_examples, nlp=student)
        elif isinstance(pipe, BertprodNER):
            pipe.initialize(get_examples, nlp=student, labels=list(source.labels))
        elif isinstance(pipe, BertprodTextCategorizer):
            pipe.initialize(get_examples, nlp=student, labels=list(source.labels), positive_label=source.cfg.get("positive_label"))
        elif hasattr(pipe, "from_bytes"):
            pipe.from_bytes(source.to_bytes())
    for comp_name, pipe in student.components:
        if isinstance(pipe, BertprodQA):
            # QA soft targets are per wordpiece: both must cut text the same way
            vocab = lambda nlp: nlp.get_pipe(comp_name).model.get_ref("encoder").attrs["tokenizer"].tokenizer.get_vocab()
            if vocab(student) != vocab(teacher):
                raise ValueError(Errors.E035.format(component=comp_name, name=name))
    info = student.meta.setdefault("bertprod", {}).setdefault("distillation", {})
    info["encoder"] = name
    return student


def _check_distillable(nlp: Language) -> None:
    found = False
    for name, pipe in nlp.components:
        if isinstance(pipe, DISTILLABLE):
            if not any(is_bertprod_encoder(node) for node in pipe.model.walk()):
                raise ValueError(Errors.E025.format(component=name))
            found = True
    if not found:
        raise ValueError(Errors.E026.format(pipeline=nlp.pipe_names))


# -- soft targets -------------------------------------------------------------
def _softmax_t(x: Any, temperature: float, xp: Any = np) -> Any:
    return get_ops("cupy" if xp is not np else "numpy").softmax(x, temperature=temperature)


def _kl(p_teacher: Any, p_student: Any, xp: Any = np) -> float:
    eps = 1e-12
    return float((p_teacher * (xp.log(p_teacher + eps) - xp.log(p_student + eps))).sum())


def ner_soft_loss(student: List[Any], teacher: List[Any], docs: List[Any], temperature: float, xp: Any) -> Tuple[float, List[Any]]:
    """Per-token KL between tag distributions at temperature T.

    The token classifier outputs probabilities and its softmax takes the
    gradient with respect to its logits; softmax(log p / T) is the
    distribution at temperature T, so probabilities are enough.
    """
    loss, grads = 0.0, []
    for p_s, p_t, doc in zip(student, teacher, docs):
        keep = xp.asarray([not t.is_space for t in doc], dtype="float32")[:, None]
        q_s = _softmax_t(xp.log(p_s + 1e-12), temperature, xp)
        q_t = _softmax_t(xp.log(p_t + 1e-12), temperature, xp)
        loss += temperature ** 2 * _kl(q_t * keep, q_s * keep + (1 - keep), xp)
        grads.append((temperature * (q_s - q_t) * keep).astype("float32"))
    return loss, grads


def textcat_soft_loss(student: Any, teacher: Any, exclusive: bool, temperature: float, xp: Any) -> Tuple[float, Any]:
    """KL between label distributions (exclusive) or between each label's
    sigmoid and the teacher's (multi-label), at T."""
    n = max(len(student), 1)
    if exclusive:
        q_s, q_t = _softmax_t(student, temperature, xp), _softmax_t(teacher, temperature, xp)
        loss = temperature ** 2 * _kl(q_t, q_s, xp)
    else:
        q_s = 1.0 / (1.0 + xp.exp(-student / temperature))
        q_t = 1.0 / (1.0 + xp.exp(-teacher / temperature))
        # per-label Bernoulli KL (binary cross-entropy less the teacher's entropy)
        loss = temperature ** 2 * (_kl(q_t, q_s, xp) + _kl(1 - q_t, 1 - q_s, xp))
    return loss / n, (temperature * (q_s - q_t) / n).astype("float32")


def qa_soft_loss(student: List[Any], teacher: List[Any], temperature: float) -> Tuple[float, List[List[Tuple[np.ndarray, np.ndarray]]]]:
    """KL between start and between end distributions of each window,
    scaled like `BertprodQA.get_loss` (mean over windows and the two ends)."""
    n_windows = sum(len(s.windows) for s in student)
    scale = 1.0 / max(2 * n_windows, 1)
    loss, grads = 0.0, []
    for s_pair, t_pair in zip(student, teacher):
        per_pair = []
        for w_s, w_t in zip(s_pair.windows, t_pair.windows):
            d = []
            for s_logits, t_logits in ((w_s.start_logits, w_t.start_logits), (w_s.end_logits, w_t.end_logits)):
                q_s, q_t = _softmax_t(s_logits, temperature), _softmax_t(t_logits, temperature)
                loss += temperature ** 2 * _kl(q_t, q_s) * scale
                d.append((temperature * (q_s - q_t) * scale).astype("float32"))
            per_pair.append(tuple(d))
        grads.append(per_pair)
    return loss, grads


def _add_grads(pipe: Any, a: Any, b: Any, wa: float, wb: float) -> Any:
    if isinstance(pipe, BertprodQA):
        return [[(wa * sa + wb * sb, wa * ea + wb * eb) for (sa, ea), (sb, eb) in zip(pa, pb)] for pa, pb in zip(a, b)]
    if isinstance(pipe, BertprodNER):
        return [wa * x + wb * y for x, y in zip(a, b)]
    return wa * a + wb * b


def _zeros_like(pipe: Any, scores: Any, xp: Any) -> Any:
    if isinstance(pipe, BertprodQA):
        return [[(np.zeros_like(w.start_logits), np.zeros_like(w.end_logits)) for w in s.windows] for s in scores]
    if isinstance(pipe, BertprodNER):
        return [xp.zeros_like(s) for s in scores]
    return xp.zeros_like(scores)


class HiddenMatch:
    """Hidden-state matching for one distillation step: records the
    teacher encoder's batches, then adds `weight * MSE(student, teacher)`
    over real wordpieces (padding excluded) to the student's gradient."""

    def __init__(self, weight: float, component: str):
        self.weight = weight
        self.component = component
        self.targets: List[Any] = []
        self.loss = 0.0

    def record(self, flat: Any, valid: np.ndarray, backprop: Callable) -> Callable:
        self.targets.append(flat.copy())
        return backprop

    def match(self, flat: Any, valid: np.ndarray, backprop: Callable) -> Callable:
        target = self.targets.pop(0)
        if target.shape != flat.shape:
            raise ValueError(Errors.E036.format(component=self.component, student=tuple(flat.shape), teacher=tuple(target.shape)))
        xp = get_array_module(flat)
        keep = xp.asarray(valid, dtype="float32")[:, None]
        n = max(float(valid.sum()) * flat.shape[1], 1.0)
        diff = (flat - target) * keep
        self.loss += float((diff ** 2).sum()) / n
        d_hidden = (self.weight * 2.0 / n) * diff

        def backprop_matched(d_flat: Any) -> Any:
            return backprop(d_flat + d_hidden)

        return backprop_matched


def _encoder_of(model: Model) -> Model:
    return next(node for node in model.walk() if is_bertprod_encoder(node))


def _has_gold(pipe: Any, eg: Example) -> bool:
    if isinstance(pipe, BertprodNER):
        return eg.reference.has_annotation("ENT_IOB")
    if isinstance(pipe, BertprodTextCategorizer):
        return bool(eg.reference.cats)
    return bool(eg.reference._.bertprod_qa_gold)


def distill_step(
    teacher: Language,
    student: Language,
    examples: List[Example],
    *,
    temperature: float,
    soft_weight: float,
    gold_weight: float,
    drop: float,
    sgd: Optional[Any],
    losses: Dict[str, float],
    hidden_weight: float = 0.0,
) -> Dict[str, float]:
    """One update of every distillable student component on `examples`."""
    for name, pipe in student.components:
        if not isinstance(pipe, DISTILLABLE) or name not in teacher.pipe_names:
            continue
        t_model: Model = teacher.get_pipe(name).model
        xp = pipe.model.ops.xp
        egs = [eg for eg in examples if eg.predicted.text.strip()]
        if isinstance(pipe, BertprodQA):
            egs = [eg for eg in egs if pipe._pairs([eg.predicted])[0]]
            inputs = pipe._pairs([eg.predicted for eg in egs])[0]
        else:
            inputs = [eg.predicted for eg in egs]
        if not inputs:
            continue
        set_dropout_rate(pipe.model, drop)
        if hidden_weight > 0:
            hidden = HiddenMatch(hidden_weight, name)
            with hidden_state_hook(_encoder_of(t_model), hidden.record):
                t_scores = t_model.predict(inputs)
            with hidden_state_hook(_encoder_of(pipe.model), hidden.match):
                s_scores, backprop = pipe.model.begin_update(inputs)
            losses[f"{name}_hidden"] = losses.get(f"{name}_hidden", 0.0) + hidden.loss
        else:
            t_scores = t_model.predict(inputs)
            s_scores, backprop = pipe.model.begin_update(inputs)
        if isinstance(pipe, BertprodNER):
            soft, d_soft = ner_soft_loss(s_scores, t_scores, inputs, temperature, xp)
        elif isinstance(pipe, BertprodTextCategorizer):
            soft, d_soft = textcat_soft_loss(s_scores, t_model.ops.asarray(t_scores), pipe.exclusive, temperature, xp)
        else:
            soft, d_soft = qa_soft_loss(s_scores, t_scores, temperature)
        gold_egs = [eg for eg in egs if _has_gold(pipe, eg)]
        if gold_weight > 0 and len(gold_egs) == len(egs):
            gold, d_gold = pipe.get_loss(egs, s_scores)
        elif gold_weight > 0 and gold_egs:
            # mixed batch: the gold loss of the labelled part only
            gold, d_gold = _partial_gold(pipe, egs, s_scores, xp)
        else:
            gold, d_gold = 0.0, _zeros_like(pipe, s_scores, xp)
        backprop(_add_grads(pipe, d_soft, d_gold, soft_weight, gold_weight))
        if sgd is not None:
            pipe.finish_update(sgd)
        losses[f"{name}_soft"] = losses.get(f"{name}_soft", 0.0) + soft
        losses[f"{name}_gold"] = losses.get(f"{name}_gold", 0.0) + gold
    return losses


def _partial_gold(pipe: Any, egs: List[Example], scores: Any, xp: Any) -> Tuple[float, Any]:
    """Gold loss over a batch mixing labelled and unlabelled examples."""
    if isinstance(pipe, BertprodTextCategorizer):
        rows = [i for i, eg in enumerate(egs) if eg.reference.cats]
        loss, d_part = pipe.get_loss([egs[i] for i in rows], scores[pipe.model.ops.asarray1i(rows)])
        d = xp.zeros_like(scores)
        d[pipe.model.ops.asarray1i(rows)] = d_part * len(rows) / len(egs)
        return loss, d
    # NER and QA: unannotated examples already give no gradient
    return pipe.get_loss(egs, scores)


# -- the loop -----------------------------------------------------------------
def weighted_score(nlp: Language, scores: Dict[str, Any]) -> float:
    weights = nlp.config["training"]["score_weights"]
    return float(sum(w * (scores.get(k) or 0.0) for k, w in weights.items() if w))


def distill(
    teacher: Language,
    student: Language,
    train: List[Example],
    dev: List[Example],
    *,
    output: Optional[Path] = None,
    steps: int = 1000,
    batch_words: int = 1000,
    learn_rate: float = 1e-4,
    warmup: Optional[int] = None,
    temperature: float = 2.0,
    soft_weight: float = 0.5,
    gold_weight: float = 0.5,
    hidden_weight: float = 0.0,
    drop: float = 0.1,
    eval_every: int = 200,
    seed: int = 0,
    log: Callable[[str], None] = print,
) -> Dict[str, Any]:
    """Train `student` against `teacher` for `steps` updates; evaluates on
    `dev` every `eval_every` steps and saves `output/model-best` and
    `output/model-last`. Returns the best dev scores."""
    for setting, value, ok, why in (
        ("temperature", temperature, temperature > 0, "the softening temperature must be above 0"),
        ("soft_weight", soft_weight, soft_weight >= 0, "a loss weight must be 0 or more"),
        ("gold_weight", gold_weight, gold_weight >= 0, "a loss weight must be 0 or more"),
        ("hidden_weight", hidden_weight, hidden_weight >= 0, "a loss weight must be 0 or more"),
        ("steps", steps, is_count(steps, 1), "the number of updates must be a whole number of at least 1"),
    ):
        if not ok:
            raise ValueError(Errors.E066.format(setting=setting, value=value, why=why))
    if soft_weight == 0 and gold_weight == 0 and hidden_weight == 0:
        raise ValueError(Errors.E067)
    if not train:
        raise ValueError(Errors.E027)
    warmup = max(steps // 10, 1) if warmup is None else warmup
    sgd = Adam(learn_rate=warmup_linear(learn_rate, warmup, steps), L2=0.01, L2_is_weight_decay=True, grad_clip=1.0, use_averages=False)
    rng = random.Random(seed)
    if output is not None:
        Path(output).mkdir(parents=True, exist_ok=True)
    info = student.meta.setdefault("bertprod", {}).setdefault("distillation", {})
    info.update({"temperature": temperature, "soft_weight": soft_weight, "gold_weight": gold_weight, "hidden_weight": hidden_weight, "steps": steps, "teacher": teacher.meta.get("name", "")})
    best: Dict[str, Any] = {"score": -1.0}
    step, losses, start = 0, {}, time.perf_counter()
    log(f"{'step':>6}  {'soft':>10}  {'gold':>10}  {'hidden':>10}  {'score':>6}  {'seconds':>7}")
    while step < steps:
        order = list(train)
        rng.shuffle(order)
        for batch in minibatch_by_words(order, size=batch_words, discard_oversize=False, get_length=lambda eg: len(eg.predicted)):
            distill_step(teacher, student, batch, temperature=temperature, soft_weight=soft_weight, gold_weight=gold_weight, hidden_weight=hidden_weight, drop=drop, sgd=sgd, losses=losses)
            sgd.step_schedules()
            step += 1
            if step % eval_every == 0 or step == steps:
                scores = student.evaluate(dev) if dev else {}
                score = weighted_score(student, scores) if dev else float(step)
                soft = sum(v for k, v in losses.items() if k.endswith("_soft"))
                gold = sum(v for k, v in losses.items() if k.endswith("_gold"))
                hidden = sum(v for k, v in losses.items() if k.endswith("_hidden"))
                log(f"{step:>6}  {soft:>10.2f}  {gold:>10.2f}  {hidden:>10.4f}  {score:>6.3f}  {time.perf_counter() - start:>7.0f}")
                losses = {}
                if score > best["score"]:
                    best = {"score": score, "step": step, **{k: v for k, v in scores.items() if isinstance(v, float)}}
                    if output is not None:
                        student.meta["performance"] = {k: v for k, v in scores.items() if not k.startswith("token_")}
                        student.to_disk(Path(output) / "model-best")
            if step >= steps:
                break
    if output is not None:
        student.to_disk(Path(output) / "model-last")
    return best
