"""Distillation as a component protocol, with spaCy v4's names.

The training loop (`training/distiller.py`) never asks which component it holds: it
calls `distill(teacher_pipe, examples, ...)` on every student component that
implements `Distillable`, as spaCy v4's `TrainablePipe.distill` does. A
component adds itself to distillation by implementing the protocol;
`TeacherStudentMixin` gives the bertprod components one `distill` built from
small per-component steps (which inputs they score, the soft-target loss,
which examples carry gold annotation).

Losses are reported under `{name}_soft`, `{name}_gold` and `{name}_hidden`,
the keys the loop logs.

Unlike spaCy v4, teacher and student score the same inputs (`eg.predicted`):
both pipelines tokenize with the same spaCy tokenizer, and `eg.reference`
holds the gold annotation for the gold term.
"""

import contextlib
from dataclasses import dataclass
from typing import Any, Callable, Dict, Iterable, Iterator, List, Optional, Protocol, Sequence, Tuple, runtime_checkable

import numpy as np
from spacy.language import Language
from spacy.training import Example
from thinc.api import Model, NumpyOps, get_array_module, get_ops, set_dropout_rate

from ..errors import Errors
from ..layers.batching import hidden_state_hook
from ..layers.encoder import is_bertprod_encoder


@dataclass(frozen=True)
class DistillSettings:
    """The loss of one distillation step:
    soft_weight * T^2 * KL(teacher_T || student_T) + gold_weight * gold loss
    (+ hidden_weight * MSE of the last hidden states)."""

    temperature: float = 2.0
    soft_weight: float = 0.5
    gold_weight: float = 0.5
    hidden_weight: float = 0.0


@runtime_checkable
class Distillable(Protocol):
    """What the distillation loop needs of a student component (spaCy v4's
    `TrainablePipe.distill` and `get_teacher_student_loss`)."""

    name: str
    model: Model

    def distill(
        self,
        teacher_pipe: Any,
        examples: Iterable[Example],
        *,
        drop: float = 0.0,
        sgd: Optional[Any] = None,
        losses: Optional[Dict[str, float]] = None,
        settings: Optional[DistillSettings] = None,
    ) -> Dict[str, float]:
        """One update of this (student) component towards `teacher_pipe` on
        `examples`; adds its losses to `losses` and returns them."""
        ...

    def get_teacher_student_loss(self, teacher_scores: Any, student_scores: Any, *, temperature: float = 1.0, inputs: Optional[Sequence[Any]] = None) -> Tuple[float, Any]:
        """The soft-target loss and its gradient with respect to
        `student_scores` (`inputs`: what both scored, for components whose
        targets depend on it)."""
        ...


@runtime_checkable
class InitializesFromTeacher(Protocol):
    """A component whose fresh student (on another encoder) needs the
    teacher's settings, e.g. its labels, to initialize."""

    def initialize_from_teacher(self, teacher_pipe: Any, get_examples: Callable[[], Iterable[Example]], *, nlp: Language) -> None: ...


@runtime_checkable
class TakesTokenEncoder(Protocol):
    """A component whose model can sit on any token encoder (a
    `Model[List[Doc], List[Floats2d]]` such as spaCy's `spacy.Tok2Vec.v2`),
    so a CNN student can replace its transformer."""

    def student_model_config(self, model: Dict[str, Any], encoder: Dict[str, Any]) -> Dict[str, Any]:
        """The config of this component's `model` on `encoder` (both config dicts)."""
        ...


PROTOCOL_METHODS = ("distill", "get_teacher_student_loss")


def missing_protocol(pipe: Any) -> List[str]:
    """The methods of `Distillable` that `pipe` lacks."""
    return [method for method in PROTOCOL_METHODS if not callable(getattr(pipe, method, None))]


def require_distillable(name: str, pipe: Any) -> Distillable:
    """`pipe`, checked to implement the protocol (E078 names what is missing)."""
    missing = missing_protocol(pipe)
    if missing or not isinstance(pipe, Distillable):
        raise ValueError(Errors.E078.format(component=name, type=type(pipe).__name__, missing=", ".join(missing) or "name, model"))
    return pipe


# -- soft targets -------------------------------------------------------------
def softmax_t(x: Any, temperature: float, xp: Any = np) -> Any:
    """Softmax over the last axis at temperature T."""
    ops = NumpyOps() if xp is np else get_ops("cupy")
    return ops.softmax(x, temperature=temperature)


def kl(p_teacher: Any, p_student: Any, xp: Any = np) -> float:
    """KL(teacher || student), summed."""
    eps = 1e-12
    return float((p_teacher * (xp.log(p_teacher + eps) - xp.log(p_student + eps))).sum())


def weighted_sum(a: Any, b: Any, wa: float, wb: float) -> Any:
    """wa * a + wb * b over gradients of any nesting of lists and tuples."""
    if isinstance(a, (list, tuple)):
        return type(a)(weighted_sum(x, y, wa, wb) for x, y in zip(a, b))
    return wa * a + wb * b


def zeros_like(grads: Any) -> Any:
    """Zeros shaped like gradients of any nesting of lists and tuples."""
    if isinstance(grads, (list, tuple)):
        return type(grads)(zeros_like(g) for g in grads)
    return get_array_module(grads).zeros_like(grads)


# -- hidden states --------------------------------------------------------------
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
        self.loss += float((diff**2).sum()) / n
        d_hidden = (self.weight * 2.0 / n) * diff

        def backprop_matched(d_flat: Any) -> Any:
            return backprop(d_flat + d_hidden)

        return backprop_matched


def encoder_of(model: Model) -> Optional[Model]:
    """The bertprod encoder layer inside `model`, if it has one."""
    return next((node for node in model.walk() if is_bertprod_encoder(node)), None)


def teacher_student_scores(teacher: Model, student: Model, inputs: Any, hidden: Optional[HiddenMatch]) -> Tuple[Any, Any, Callable]:
    """The teacher's scores, the student's scores and their backprop; with
    `hidden`, the student's encoder is also pulled towards the teacher's
    last hidden states."""
    if hidden is None:
        return teacher.predict(inputs), *student.begin_update(inputs)
    with _hooked(teacher, hidden.record):
        t_scores = teacher.predict(inputs)
    with _hooked(student, hidden.match):
        s_scores, backprop = student.begin_update(inputs)
    return t_scores, s_scores, backprop


@contextlib.contextmanager
def _hooked(model: Model, hook: Callable) -> Iterator[None]:
    encoder = encoder_of(model)
    if encoder is None:
        raise ValueError(Errors.E079.format(model=model.name))
    with hidden_state_hook(encoder, hook):
        yield


class TeacherStudentMixin:
    """`Distillable.distill` for components built on a bertprod encoder,
    from per-component steps: `distillation_inputs` (what teacher and student
    score), `get_teacher_student_loss`, `has_gold_annotation` and
    `get_gold_loss` (the component's own loss on the gold examples).

    The gold term is the component's own loss; examples without annotation
    (unlabelled text) give it no gradient, so plain text trains the
    soft-target part."""

    name: str
    model: Model
    # given by each component and by spaCy's TrainablePipe
    has_gold_annotation: Callable[[Example], bool]
    get_teacher_student_loss: Callable[..., Tuple[float, Any]]
    get_loss: Callable[[List[Example], Any], Tuple[float, Any]]
    finish_update: Callable[[Any], None]

    def distillation_inputs(self, examples: Sequence[Example]) -> Tuple[List[Example], List[Any]]:
        """The examples this component learns from and what its model scores
        for them: the student docs with text."""
        kept = [eg for eg in examples if eg.predicted.text.strip()]
        return kept, [eg.predicted for eg in kept]

    def get_gold_loss(self, examples: List[Example], scores: Any) -> Tuple[float, Any]:
        """The gold loss of a batch whose examples are not all annotated
        (those that are not give no gradient)."""
        return self.get_loss(examples, scores)

    def distill(
        self,
        teacher_pipe: Any,
        examples: Iterable[Example],
        *,
        drop: float = 0.0,
        sgd: Optional[Any] = None,
        losses: Optional[Dict[str, float]] = None,
        settings: Optional[DistillSettings] = None,
    ) -> Dict[str, float]:
        """One update towards `teacher_pipe` on `examples` (see the module)."""
        losses = {} if losses is None else losses
        settings = settings or DistillSettings()
        egs, inputs = self.distillation_inputs(list(examples))
        if not inputs:
            return losses
        set_dropout_rate(self.model, drop)
        hidden = HiddenMatch(settings.hidden_weight, self.name) if settings.hidden_weight > 0 else None
        t_scores, s_scores, backprop = teacher_student_scores(teacher_pipe.model, self.model, inputs, hidden)
        if hidden is not None:
            losses[f"{self.name}_hidden"] = losses.get(f"{self.name}_hidden", 0.0) + hidden.loss
        soft, d_soft = self.get_teacher_student_loss(t_scores, s_scores, temperature=settings.temperature, inputs=inputs)
        n_gold = sum(1 for eg in egs if self.has_gold_annotation(eg))
        if settings.gold_weight > 0 and n_gold:
            gold, d_gold = self.get_loss(egs, s_scores) if n_gold == len(egs) else self.get_gold_loss(egs, s_scores)
            d_scores = weighted_sum(d_soft, d_gold, settings.soft_weight, settings.gold_weight)
        else:
            gold, d_scores = 0.0, weighted_sum(d_soft, zeros_like(d_soft), settings.soft_weight, settings.gold_weight)
        backprop(d_scores)
        if sgd is not None:
            self.finish_update(sgd)
        losses[f"{self.name}_soft"] = losses.get(f"{self.name}_soft", 0.0) + soft
        losses[f"{self.name}_gold"] = losses.get(f"{self.name}_gold", 0.0) + gold
        return losses
