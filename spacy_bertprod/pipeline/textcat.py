"""`bertprod_textcat`: exclusive or multi-label text classification.

Built on spaCy's `TextCategorizer` (labels, initialize, scoring), with a
transformer head that outputs logits: exclusive classes are scored with a
softmax and trained with cross-entropy; multi-label with independent sigmoids
and binary cross-entropy. `doc.cats` holds the probabilities; for multi-label
`doc._.bertprod_labels` lists the labels at or above their threshold
(`thresholds[label]`, else `threshold`).

Documents longer than one window: see `layers/pooling.py` (window vectors are pooled
into one doc vector before the classifier). A doc with no text gets 0.0 for
every label.
"""

import warnings
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple, cast

from spacy.language import Language
from spacy.pipeline.textcat import TextCategorizer, textcat_score
from spacy.pipeline.textcat_multilabel import textcat_multilabel_score
from spacy.tokens import Doc
from spacy.training import Example, validate_examples
from spacy.vocab import Vocab
from thinc.api import Config, Model
from thinc.types import Floats2d

from ..errors import Errors, Warnings
from ..layers.encoder import default_encoder_config
from . import extensions  # noqa: F401
from .config_policy import ConfigWinsOnLoad
from .distillation import TeacherStudentMixin, kl, softmax_t

DEFAULT_TEXTCAT_MODEL = """
[model]
@architectures = "bertprod.TextClassifier.v1"
pooling = "cls"
nO = null
dropout = 0.1

""" + default_encoder_config("model.encoder")
DEFAULT_TEXTCAT_MODEL_CFG = Config().from_str(DEFAULT_TEXTCAT_MODEL)["model"]


@Language.factory(
    "bertprod_textcat",
    assigns=["doc.cats"],
    default_config={
        "model": DEFAULT_TEXTCAT_MODEL_CFG,
        "exclusive_classes": True,
        "threshold": 0.5,
        "thresholds": {},
        "scorer": None,
    },
    default_score_weights={
        "cats_score": 1.0,
        "cats_score_desc": None,
        "cats_micro_p": None,
        "cats_micro_r": None,
        "cats_micro_f": None,
        "cats_macro_p": None,
        "cats_macro_r": None,
        "cats_macro_f": None,
        "cats_macro_auc": None,
        "cats_f_per_type": None,
    },
)
def make_bertprod_textcat(
    nlp: Language,
    name: str,
    model: Model,
    exclusive_classes: bool,
    threshold: float,
    thresholds: Dict[str, float],
    scorer: Optional[Callable],
) -> "BertprodTextCategorizer":
    """scorer: null picks spaCy's textcat scorer for exclusive classes and the
    multi-label one otherwise."""
    return BertprodTextCategorizer(
        nlp.vocab,
        model,
        name,
        exclusive_classes=exclusive_classes,
        threshold=threshold,
        thresholds=thresholds,
        scorer=scorer,
    )


class BertprodTextCategorizer(TeacherStudentMixin, ConfigWinsOnLoad, TextCategorizer):
    """Text classification with a fine-tuned transformer."""

    def __init__(
        self,
        vocab: Vocab,
        model: Model,
        name: str = "bertprod_textcat",
        *,
        exclusive_classes: bool = True,
        threshold: float = 0.5,
        thresholds: Optional[Dict[str, float]] = None,
        scorer: Optional[Callable] = None,
    ) -> None:
        if not isinstance(exclusive_classes, bool):
            raise ValueError(Errors.E057.format(value=exclusive_classes, component=name))
        for key, value in [("threshold", threshold)] + [(f"thresholds.{k}", v) for k, v in (thresholds or {}).items()]:
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
                raise ValueError(Errors.E058.format(setting=key, value=value, component=name))
        if scorer is None:
            scorer = textcat_score if exclusive_classes else textcat_multilabel_score
        super().__init__(vocab, model, name, threshold=threshold, scorer=scorer)
        self.cfg["exclusive_classes"] = exclusive_classes
        self.cfg["thresholds"] = dict(thresholds or {})
        self.keep_settings({"threshold": threshold, "thresholds": dict(thresholds or {})})

    @property
    def exclusive(self) -> bool:
        return self.cfg["exclusive_classes"]

    @property
    def support_missing_values(self) -> bool:
        return not self.exclusive

    def _min_labels(self) -> int:
        return 2 if self.exclusive else 1

    def initialize(self, get_examples: Callable[[], Iterable[Example]], *, nlp: Optional[Language] = None, labels: Optional[Iterable[str]] = None, positive_label: Optional[str] = None) -> None:
        if labels is None:
            labels = sorted({cat for eg in get_examples() for cat in eg.y.cats})
        labels = list(labels)
        if len(labels) < self._min_labels():
            raise ValueError(Errors.E017.format(component=self.name, n=self._min_labels(), labels=labels))
        seen = {cat for eg in get_examples() for cat, v in eg.y.cats.items() if v == 1.0}
        missing = [label for label in labels if label not in seen]
        if missing:
            warnings.warn(Warnings.W001.format(missing=missing, name=self.name), stacklevel=1)
        if self.exclusive:
            super().initialize(get_examples, nlp=nlp, labels=labels, positive_label=positive_label)
        else:
            self._validate_categories(get_examples())
            for label in labels:
                self.add_label(label)
            doc_sample = [eg.reference for eg in get_examples()][:10]
            label_sample = self.model.ops.alloc2f(len(doc_sample), len(self.labels))
            self.model.initialize(X=doc_sample, Y=label_sample)

    def _validate_categories(self, examples: Iterable[Example]) -> None:
        labels = set(self.labels)
        for eg in examples:
            cats = eg.reference.cats
            for label, value in cats.items():
                if value not in (0.0, 1.0):
                    raise ValueError(Errors.E016.format(value=value, label=label))
                if labels and label not in labels:
                    raise ValueError(Errors.E015.format(label=label, component=self.name, labels=list(self.labels)))
            if self.exclusive and cats:
                n_pos = list(cats.values()).count(1.0)
                if n_pos != 1:
                    raise ValueError(Errors.E014.format(component=self.name, n=n_pos, cats=cats))

    def _normalize(self, logits: Any) -> Any:
        xp = self.model.ops.xp
        if self.exclusive:
            return self.model.ops.softmax(logits, axis=1)
        return 1.0 / (1.0 + xp.exp(-logits))

    def predict(self, docs: Iterable[Doc]) -> Any:
        docs = list(docs)
        scores = self.model.ops.alloc2f(len(docs), len(self.labels))
        filled = [i for i, doc in enumerate(docs) if len(doc) and doc.text.strip()]
        if filled:
            logits = self.model.predict([docs[i] for i in filled])
            scores[self.model.ops.asarray1i(filled)] = self._normalize(logits)
        return scores

    def set_annotations(self, docs: Iterable[Doc], scores: Any) -> None:
        scores = self.model.ops.to_numpy(scores)
        thresholds = [self.cfg["thresholds"].get(label, self.cfg["threshold"]) for label in self.labels]
        for doc, row in zip(docs, scores):
            for label, value in zip(self.labels, row):
                doc.cats[label] = float(value)
            if not self.exclusive:
                doc._.bertprod_labels = [label for label, v, t in zip(self.labels, row, thresholds) if v >= t and doc.text.strip()]

    def annotations(self, doc: Doc) -> Dict[str, Any]:
        """The category scores (and, multi-label, the labels at or above their
        thresholds) of `doc` (`Annotating`)."""
        result: Dict[str, Any] = {"cats": {label: float(doc.cats[label]) for label in self.labels if label in doc.cats}}
        if not self.exclusive:
            result["labels"] = list(doc._.bertprod_labels or [])
        return result

    def _has_gold(self, eg: Example) -> bool:
        """Whether `eg` gives a value for any of the labels: an example
        without gold cats teaches nothing (spaCy's textcat masks missing
        labels the same way)."""
        cats = eg.reference.cats
        return any(label in cats for label in self.labels)

    def update(self, examples: Iterable[Example], *, drop: float = 0.0, sgd: Optional[Any] = None, losses: Optional[Dict[str, float]] = None) -> Dict[str, float]:
        """spaCy's update on the examples with gold cats only: unlabelled
        examples would cost a forward pass for no gradient, and a batch of
        them only must not step the optimizer (its momentum would still move
        the weights)."""
        if losses is None:
            losses = {}
        losses.setdefault(self.name, 0.0)
        examples = list(examples)
        validate_examples(examples, "BertprodTextCategorizer.update")
        self._validate_categories(examples)
        labelled = [eg for eg in examples if self._has_gold(eg)]
        if not labelled:
            return losses
        return super().update(labelled, drop=drop, sgd=sgd, losses=losses)

    def get_loss(self, examples: Iterable[Example], scores: Any) -> Tuple[float, Any]:
        """Cross-entropy (exclusive) or binary cross-entropy (multi-label) on
        the logits in `scores`; the gradient is probabilities - truths.
        Labels an example gives no value for (all of them, for an exclusive
        example without cats) add neither loss nor gradient; both are
        averaged over the examples with gold cats, so the loss reported is
        the loss whose gradient is returned."""
        examples = list(examples)
        validate_examples(examples, "BertprodTextCategorizer.get_loss")
        self._validate_categories(examples)
        truths, gold_mask = self._examples_to_truth(examples)
        for i, eg in enumerate(examples):
            if not self._has_gold(eg):
                gold_mask[i] = 0.0
        n_gold = max(int((gold_mask.sum(axis=1) > 0).sum()), 1)
        xp = self.model.ops.xp
        # spaCy's `_examples_to_truth` is typed as numpy arrays; the mask is a float32 2d array
        not_missing = self.model.ops.asarray(cast(Floats2d, gold_mask))
        probs = self._normalize(scores)
        d_scores = (probs - truths) * not_missing
        eps = 1e-8
        if self.exclusive:
            loss = -(truths * xp.log(probs + eps) * not_missing).sum()
        else:
            loss = -((truths * xp.log(probs + eps) + (1 - truths) * xp.log(1 - probs + eps)) * not_missing).sum()
        return float(loss) / n_gold, d_scores / n_gold

    # -- distillation (see distillation.py) -------------------------------------
    def has_gold_annotation(self, example: Example) -> bool:
        return bool(example.reference.cats)

    def get_teacher_student_loss(self, teacher_scores: Any, student_scores: Any, *, temperature: float = 1.0, inputs: Optional[Sequence[Doc]] = None) -> Tuple[float, Any]:
        """KL between the label distributions (exclusive) or between each
        label's sigmoid and the teacher's (multi-label) at temperature T, on
        the logits, averaged over the docs."""
        xp = self.model.ops.xp
        student, teacher = student_scores, self.model.ops.asarray(teacher_scores)
        n = max(len(student), 1)
        if self.exclusive:
            q_s, q_t = softmax_t(student, temperature, xp), softmax_t(teacher, temperature, xp)
            loss = temperature**2 * kl(q_t, q_s, xp)
        else:
            q_s = 1.0 / (1.0 + xp.exp(-student / temperature))
            q_t = 1.0 / (1.0 + xp.exp(-teacher / temperature))
            # per-label Bernoulli KL (binary cross-entropy less the teacher's entropy)
            loss = temperature**2 * (kl(q_t, q_s, xp) + kl(1 - q_t, 1 - q_s, xp))
        return loss / n, (temperature * (q_s - q_t) / n).astype("float32")

    def get_gold_loss(self, examples: List[Example], scores: Any) -> Tuple[float, Any]:
        """The gold loss of the labelled rows of a mixed batch, its gradient
        averaged over the whole batch as the soft term's is."""
        rows = self.model.ops.asarray1i([i for i, eg in enumerate(examples) if eg.reference.cats])
        loss, d_part = self.get_loss([examples[i] for i in rows], scores[rows])
        d = self.model.ops.xp.zeros_like(scores)
        d[rows] = d_part * len(rows) / len(examples)
        return loss, d

    def initialize_from_teacher(self, teacher_pipe: "BertprodTextCategorizer", get_examples: Callable[[], Iterable[Example]], *, nlp: Language) -> None:
        """A fresh student classifier for the teacher's labels."""
        self.initialize(get_examples, nlp=nlp, labels=list(teacher_pipe.labels), positive_label=teacher_pipe.cfg.get("positive_label"))

    def _before_load(self) -> bool:
        return self.exclusive

    def _after_load(self, exclusive_classes: bool) -> None:
        """After `cfg` was loaded: the classifier was trained for its saved
        `exclusive_classes`; the config decides the thresholds."""
        if self.cfg["exclusive_classes"] != exclusive_classes:
            kind = "one label per text (a softmax)" if self.cfg["exclusive_classes"] else "independent labels (sigmoids)"
            stored, value = (str(v).lower() for v in (self.cfg["exclusive_classes"], exclusive_classes))
            raise ValueError(Errors.E070.format(component=self.name, stored=stored, value=value, kind=kind))
        self._restore_floats()

    def _restore_floats(self) -> None:
        # srsly's JSON reader parses "0.3" as 0.30000000000000004; 15
        # significant digits give back the decimal that was written.
        self.cfg["threshold"] = float(f"{self.cfg['threshold']:.15g}")
        self.cfg["thresholds"] = {k: float(f"{v:.15g}") for k, v in self.cfg.get("thresholds", {}).items()}

    def _output_width(self) -> Callable[[], int]:
        """Labels in cfg must fit the classifier's weights."""
        return lambda: len(self.labels)
