"""The distillation protocol (distillation.py): a component that implements
it distils with no change to the loop; one on a bertprod encoder that does
not gets a coded error."""

from typing import Any, Dict, Iterable, List, Optional

import numpy as np
import pytest
import spacy
from spacy.language import Language
from spacy.pipeline import TrainablePipe
from spacy.tokens import Doc
from spacy.training import Example
from thinc.api import Model, set_dropout_rate

from conftest import make_examples, ner_config, train
from spacy_bertprod.pipeline.distillation import Distillable, DistillSettings, kl
from spacy_bertprod.training.distiller import distill, distill_step, make_student


class EntityFlagger(TrainablePipe):
    """A fourth kind of component: per token, P(inside an entity), from a
    softmax on a bertprod encoder. Knows nothing of distillation."""

    def __init__(self, vocab: Any, model: Model, name: str) -> None:
        self.vocab, self.model, self.name, self.cfg = vocab, model, name, {}

    def initialize(self, get_examples: Any, *, nlp: Optional[Language] = None) -> None:
        self.model.initialize(X=[eg.predicted for eg in get_examples()])

    def predict(self, docs: Iterable[Doc]) -> List[Any]:
        return self.model.predict(list(docs))

    def set_annotations(self, docs: Iterable[Doc], scores: List[Any]) -> None:
        for doc, probs in zip(docs, scores):
            doc.user_data["in_entity"] = probs[:, 1].tolist()

    def get_loss(self, examples: Iterable[Example], scores: List[Any]) -> Any:
        """Cross-entropy against "the token is in an entity" (B or I)."""
        loss, grads = 0.0, []
        for eg, probs in zip(examples, scores):
            iob = eg.get_aligned("ENT_IOB")  # 1: I, 3: B
            truth = np.eye(2, dtype="float32")[[int(v in (1, 3)) for v in iob]]
            loss -= float((truth * np.log(probs + 1e-12)).sum())
            grads.append(probs - truth)
        return loss, grads


class DistillableFlagger(EntityFlagger):
    """The same component with the protocol: spaCy v4's plain `distill`."""

    def distill(
        self, teacher_pipe: Any, examples: Iterable[Example], *, drop: float = 0.0, sgd: Any = None, losses: Optional[Dict[str, float]] = None, settings: Optional[DistillSettings] = None
    ) -> Dict[str, float]:
        losses = {} if losses is None else losses
        docs = [eg.predicted for eg in examples]
        set_dropout_rate(self.model, drop)
        teacher_scores = teacher_pipe.model.predict(docs)
        student_scores, backprop = self.model.begin_update(docs)
        loss, d_scores = self.get_teacher_student_loss(teacher_scores, student_scores)
        backprop(d_scores)
        if sgd is not None:
            self.finish_update(sgd)
        losses[f"{self.name}_soft"] = losses.get(f"{self.name}_soft", 0.0) + loss
        return losses

    def get_teacher_student_loss(self, teacher_scores: List[Any], student_scores: List[Any], *, temperature: float = 1.0, inputs: Any = None) -> Any:
        """KL(teacher || student) per token; the softmax takes p_s - p_t as
        the gradient of its logits."""
        loss = sum(kl(t, s) for t, s in zip(teacher_scores, student_scores))
        return loss, [s - t for t, s in zip(teacher_scores, student_scores)]


@Language.factory("test_entity_flagger")
def make_entity_flagger(nlp: Language, name: str, model: Model) -> EntityFlagger:
    return EntityFlagger(nlp.vocab, model, name)


@Language.factory("test_distillable_flagger")
def make_distillable_flagger(nlp: Language, name: str, model: Model) -> DistillableFlagger:
    return DistillableFlagger(nlp.vocab, model, name)


def flagger_config(tiny_bert: str) -> dict:
    encoder = {"@architectures": "bertprod.Encoder.v1", "name": tiny_bert, "window": 16, "stride": 8, "max_batch_wordpieces": 256}
    return {"model": {"@architectures": "bertprod.TokenClassifier.v1", "nO": 2, "encoder": encoder}}


def _soft_loss(teacher: Language, student: Language, examples: List[Example]) -> float:
    losses: Dict[str, float] = {}
    distill_step(teacher, student, examples, temperature=2.0, soft_weight=1.0, gold_weight=0.0, drop=0.0, sgd=None, losses=losses)
    return losses["flagger_soft"]


def test_a_fourth_component_distils_through_the_protocol(tiny_bert):
    nlp = spacy.blank("en")
    nlp.add_pipe("test_distillable_flagger", name="flagger", config=flagger_config(tiny_bert))
    teacher = train(nlp, make_examples(nlp), steps=30)
    assert isinstance(teacher.get_pipe("flagger"), Distillable)
    # the student builder cuts its encoder like any other
    student = make_student(teacher, n_layers=1)
    assert student.meta["bertprod"]["distillation"]["layers"] == {"flagger": [0]}
    examples = make_examples(student)
    start = _soft_loss(teacher, student, examples)
    distill(teacher, student, examples, [], steps=30, batch_words=200, learn_rate=1e-3, eval_every=100, log=lambda _: None)
    assert _soft_loss(teacher, student, examples) < 0.5 * start
    # and it flags the tokens the teacher flags
    docs = [student.make_doc(eg.reference.text) for eg in examples]

    def flags(nlp: Language) -> List[List[int]]:
        return [p.argmax(axis=1).tolist() for p in nlp.get_pipe("flagger").predict(docs)]

    assert any(any(f) for f in flags(teacher)) and flags(student) == flags(teacher)


def test_a_component_without_the_protocol_gets_a_coded_error(tiny_bert):
    nlp = spacy.blank("en")
    nlp.add_pipe("bertprod_ner", config=ner_config(tiny_bert))
    nlp.add_pipe("test_entity_flagger", name="flagger", config=flagger_config(tiny_bert))
    nlp.initialize(lambda: make_examples(nlp))
    assert not isinstance(nlp.get_pipe("flagger"), Distillable)
    # its encoder would be cut and never trained
    with pytest.raises(ValueError, match=r"E078.*'flagger' \(EntityFlagger\).*distill, get_teacher_student_loss"):
        make_student(nlp, n_layers=1)
    with pytest.raises(ValueError, match="E078.*'flagger'"):
        distill(nlp, nlp, make_examples(nlp), [], steps=1, log=lambda _: None)
