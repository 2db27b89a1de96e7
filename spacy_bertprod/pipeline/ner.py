"""`bertprod_ner`: named entities from a token classifier on a transformer.

Each token gets a BILUO tag distribution; a constrained Viterbi pass turns
them into valid entities. Entity confidence is the mean probability of the
chosen tags over the entity's tokens, stored as `span._.bertprod_score` and
in `doc.spans[spans_key]` (`SpanGroup.attrs["scores"]`).

Entities already on the doc are kept, as spaCy's own `ner` keeps them (an
`entity_ruler` placed before this component, `doc.set_ents`):
- a preset entity (its tokens' `ent_iob_` is "B"/"I" with a label) stays as
  it is, label (even one the model does not know), `kb_id` and `ent_id`;
- a blocked token (`doc.set_ents(..., blocked=[...])`: `ent_iob_` "B" with
  no label) gets no entity and stays blocked;
- tokens marked "O" or missing ("") are the model's to predict: spaCy's
  `ner` overwrites a preset "O" too (setting `doc.ents` marks every other
  token "O", so a ruler's doc is all "O" around its entities).
The model's tags are decoded with Viterbi around the preset and blocked
tokens, so a predicted entity never overlaps them; it may sit right beside
them. Missing tokens left without an entity become "O". The span group and
`span._.bertprod_score` hold the predicted entities (and the preset ones that
were already in the group from an earlier run); a preset entity keeps
whatever score it had.
"""

from itertools import islice
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np
from spacy.errors import Errors as SpacyErrors
from spacy.language import Language
from spacy.pipeline import TrainablePipe
from spacy.tokens import Doc, Span
from spacy.training import Example, validate_examples, validate_get_examples
from spacy.vocab import Vocab
from thinc.api import Config, Model, SequenceCategoricalCrossentropy
from thinc.types import Floats2d

from ..errors import Errors
from ..layers.encoder import default_encoder_config
from .annotations import span_json
from .config_policy import ConfigWinsOnLoad
from .decoding import NEG, biluo_tag_names, path_to_spans, transition_constraints, viterbi_batch
from .distillation import TeacherStudentMixin, kl, softmax_t
from .extensions import set_scored_spans

DEFAULT_NER_MODEL = """
[model]
@architectures = "bertprod.TokenClassifier.v1"
nO = null
dropout = 0.1
# casing of each token and of its neighbours beside its vectors (the embedded MiniLM is uncased)
case_scale = 10.0
case_window = 1

""" + default_encoder_config("model.encoder", input_casing="auto")
DEFAULT_NER_MODEL_CFG = Config().from_str(DEFAULT_NER_MODEL)["model"]

Decoded = Tuple[List[Tuple[int, int, str]], List[float]]


@Language.factory(
    "bertprod_ner",
    assigns=["doc.ents", "token.ent_iob", "token.ent_type", "doc.spans"],
    default_config={
        "model": DEFAULT_NER_MODEL_CFG,
        "spans_key": "bertprod_ner",
        "scorer": {"@scorers": "spacy.ner_scorer.v1"},
        "label_smoothing": 0.0,
    },
    default_score_weights={"ents_f": 1.0, "ents_p": 0.0, "ents_r": 0.0, "ents_per_type": None},
)
def make_bertprod_ner(nlp: Language, name: str, model: Model, spans_key: str, scorer: Optional[Callable], label_smoothing: float) -> "BertprodNER":
    return BertprodNER(nlp.vocab, model, name, spans_key=spans_key, scorer=scorer, label_smoothing=label_smoothing)


class BertprodNER(TeacherStudentMixin, ConfigWinsOnLoad, TrainablePipe):
    """Named entity recognition with a fine-tuned transformer. Preset
    entities and blocked tokens are kept, as by spaCy's `ner` (see the
    module docstring)."""

    def __init__(
        self,
        vocab: Vocab,
        model: Model,
        name: str = "bertprod_ner",
        *,
        spans_key: str = "bertprod_ner",
        scorer: Optional[Callable] = None,
        label_smoothing: float = 0.0,
    ) -> None:
        if not 0.0 <= label_smoothing < 0.5:
            raise ValueError(Errors.E190.format(value=label_smoothing, component=name))
        self.vocab = vocab
        self.model = model
        self.name = name
        self.scorer = scorer
        self.cfg: Dict[str, Any] = {"labels": [], "spans_key": spans_key, "label_smoothing": label_smoothing}
        self.keep_settings({"spans_key": spans_key, "label_smoothing": label_smoothing})
        self._constraints = None

    @property
    def labels(self) -> Tuple[str, ...]:
        return tuple(self.cfg["labels"])

    @property
    def tag_names(self) -> List[str]:
        return biluo_tag_names(self.labels)

    @property
    def is_initialized(self) -> bool:
        return self.model.get_ref("output").has_dim("nO") is True

    def add_label(self, label: str) -> int:
        if not isinstance(label, str) or not label or "-" in label or label != label.strip() or " " in label:
            raise ValueError(Errors.E010.format(label=label))
        if label in self.cfg["labels"]:
            return 0
        if self.is_initialized:
            raise ValueError(Errors.E008.format(label=label, component=self.name, n=len(self.labels)))
        self.cfg["labels"].append(label)
        self._constraints = None
        return 1

    def initialize(
        self,
        get_examples: Callable[[], Iterable[Example]],
        *,
        nlp: Optional[Language] = None,
        labels: Optional[List[str]] = None,
    ) -> None:
        validate_get_examples(get_examples, "BertprodNER.initialize")
        if labels is not None:
            for label in labels:
                self.add_label(label)
        elif not self.labels:
            found = sorted({ent.label_ for eg in get_examples() for ent in eg.reference.ents})
            for label in found:
                self.add_label(label)
        if not self.labels:
            raise ValueError(Errors.E009.format(component=self.name))
        output = self.model.get_ref("output")
        if not output.has_dim("nO"):
            output.set_dim("nO", len(self.tag_names))
        doc_sample = [eg.x for eg in islice(get_examples(), 10)]
        self.model.initialize(X=doc_sample)

    def _get_constraints(self):
        if self._constraints is None:
            self._constraints = transition_constraints(self.tag_names)
        return self._constraints

    def predict(self, docs: Iterable[Doc]) -> List[Decoded]:
        docs = list(docs)
        if not docs:
            return []
        probs = [self.model.ops.to_numpy(p) for p in self.model.predict(docs)]
        allowed, may_start, may_end = self._get_constraints()
        inputs = [self._decoder_input(doc, p) for doc, p in zip(docs, probs)]
        paths = viterbi_batch([log_probs for log_probs, _, _ in inputs], allowed, may_start, may_end, [fixed for _, fixed, _ in inputs])
        return [self._spans(path, p, space) for path, p, (_, _, space) in zip(paths, probs, inputs)]

    def _decoder_input(self, doc: Doc, probs: np.ndarray) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The log-probabilities to decode, the tags fixed in advance and the whitespace tokens of one doc."""
        log_probs = np.log(np.clip(probs, 1e-12, 1.0))
        space = doc.to_array("IS_SPACE").astype(bool)
        if space.any():
            # Whitespace tokens may sit inside an entity but never start or end one.
            inside = np.array([t == "O" or t.startswith("I-") for t in self.tag_names])
            log_probs[np.ix_(space, ~inside)] = NEG
            log_probs[np.ix_(space, inside)] = 0.0
        # Preset entities and blocked tokens are fixed to "O" in the model's tag
        # space: a predicted entity closes before them and opens after them.
        fixed = np.where(_preset_tokens(doc), self.tag_names.index("O"), -1)
        return log_probs, fixed, space

    def _spans(self, path: np.ndarray, probs: np.ndarray, space: np.ndarray) -> Decoded:
        spans = path_to_spans(path, self.tag_names)
        chosen = probs[np.arange(len(path)), path]
        scores = [float(chosen[s:e][~space[s:e]].mean()) for s, e, _ in spans]
        return spans, scores

    def set_annotations(self, docs: Iterable[Doc], predictions: List[Decoded]) -> None:
        """Add the predicted entities beside the preset ones (see the module
        docstring); blocked and "O" tokens outside them keep their marks."""
        key = self.cfg["spans_key"]
        for doc, (spans, scores) in zip(docs, predictions):
            ents = [Span(doc, s, e, label=label) for s, e, label in spans]
            missing = doc.to_array("ENT_IOB") == 0
            for ent in ents:
                missing[ent.start : ent.end] = False
            kept = _kept_scored_spans(doc, key)
            doc.set_ents(ents, outside=_runs(doc, missing), default="unmodified")
            scored = sorted(list(zip(ents, scores)) + kept, key=lambda pair: (pair[0].start, pair[0].end))
            set_scored_spans(doc, key, [span for span, _ in scored], [score for _, score in scored])

    def annotations(self, doc: Doc) -> Dict[str, Any]:
        """The entities this component found, as JSON data (`Annotating`)."""
        return {"entities": [span_json(span) for span in doc.spans.get(self.cfg["spans_key"], [])]}

    def get_loss(self, examples: Iterable[Example], scores: List[Floats2d]) -> Tuple[float, List[Floats2d]]:
        validate_examples(examples, "BertprodNER.get_loss")
        label_set = set(self.labels)
        truths = []
        for eg in examples:
            gold: List[Optional[str]] = []
            for token, tag in zip(eg.predicted, eg.get_aligned_ner()):
                if tag is None or tag == "-" or token.is_space:
                    gold.append(None)
                    continue
                if tag != "O" and tag.split("-", 1)[1] not in label_set:
                    raise ValueError(Errors.E007.format(label=tag.split("-", 1)[1], component=self.name, labels=list(self.labels)))
                gold.append(tag)
            truths.append(gold)
        loss_func = SequenceCategoricalCrossentropy(names=self.tag_names, normalize=False, missing_value=None, label_smoothing=float(self.cfg["label_smoothing"]))
        # thinc types the truths without the `missing_value` (None) it accepts
        d_scores, loss = loss_func(scores, truths)  # type: ignore[arg-type]
        if self.model.ops.xp.isnan(loss):
            raise ValueError(SpacyErrors.E910.format(name=self.name))  # spaCy's own check, as its tagger raises it
        return float(loss), d_scores

    # -- distillation (see distillation.py) -------------------------------------
    def has_gold_annotation(self, example: Example) -> bool:
        return example.reference.has_annotation("ENT_IOB")

    def get_teacher_student_loss(
        self, teacher_scores: List[Floats2d], student_scores: List[Floats2d], *, temperature: float = 1.0, inputs: Optional[Sequence[Doc]] = None
    ) -> Tuple[float, List[Floats2d]]:
        """Per-token KL between tag distributions at temperature T, summed
        over the non-whitespace tokens of `inputs` (every token without).

        The token classifier outputs probabilities and its softmax takes the
        gradient with respect to its logits; softmax(log p / T) is the
        distribution at temperature T, so probabilities are enough.
        """
        xp = self.model.ops.xp
        loss, grads = 0.0, []
        for i, (p_s, p_t) in enumerate(zip(student_scores, teacher_scores)):
            space = [t.is_space for t in inputs[i]] if inputs is not None else [False] * len(p_s)
            keep = xp.asarray([not s for s in space], dtype="float32")[:, None]
            q_s = softmax_t(xp.log(p_s + 1e-12), temperature, xp)
            q_t = softmax_t(xp.log(p_t + 1e-12), temperature, xp)
            loss += temperature**2 * kl(q_t * keep, q_s * keep + (1 - keep), xp)
            grads.append((temperature * (q_s - q_t) * keep).astype("float32"))
        return loss, grads

    def initialize_from_teacher(self, teacher_pipe: "BertprodNER", get_examples: Callable[[], Iterable[Example]], *, nlp: Language) -> None:
        """A fresh student head for the teacher's labels."""
        self.initialize(get_examples, nlp=nlp, labels=list(teacher_pipe.labels))

    def student_model_config(self, model: Dict[str, Any], encoder: Dict[str, Any]) -> Dict[str, Any]:
        """The token classifier takes any token encoder (`TakesTokenEncoder`)."""
        return {**model, "encoder": encoder}

    def _before_load(self) -> None:
        self._constraints = None

    def _output_width(self) -> Callable[[], int]:
        """Labels in cfg must fit the tagger's weights."""
        return lambda: len(self.tag_names)


def _preset_tokens(doc: Doc) -> np.ndarray:
    """Tokens inside a preset entity or blocked (`ent_iob_` "B" or "I"): the
    ones spaCy's `ner` may not give an entity of its own."""
    return np.isin(doc.to_array("ENT_IOB"), (1, 3))


def _runs(doc: Doc, mask: np.ndarray) -> List[Span]:
    """The runs of consecutive tokens where `mask` is true, as spans."""
    edges = np.flatnonzero(np.diff(np.concatenate(([0], mask.astype("int8"), [0]))))
    return [doc[int(start) : int(end)] for start, end in zip(edges[::2], edges[1::2])]


def _kept_scored_spans(doc: Doc, key: str) -> List[Tuple[Span, float]]:
    """Spans (and scores) of the group `key` that are still preset entities:
    running the component again on its own output keeps them in the group."""
    group = doc.spans.get(key)
    if group is None:
        return []
    ents = {(ent.start, ent.end, ent.label) for ent in doc.ents}
    scores = group.attrs.get("scores", [])
    return [(span, score) for span, score in zip(group, scores) if (span.start, span.end, span.label) in ents]
