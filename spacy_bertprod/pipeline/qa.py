"""`bertprod_qa`: extractive question answering as a spaCy component.

Answers are spaCy Spans (label "ANSWER") snapped outward to token boundaries
from the model's character offsets, best first, with `span._.bertprod_score`
(start probability x end probability within the window, as the Hugging Face
pipeline scores them), `span._.bertprod_question` and
`span._.bertprod_answer_chars` (the offsets before snapping).

    qa = nlp.add_pipe("bertprod_qa")
    qa.answer(doc, "Where was Marie Curie born?", top_k=3)
    doc = nlp(text)   # questions from doc._.questions or the `questions` setting
    doc.spans["bertprod_qa"]   # attrs: "scores", "questions"
"""

import warnings
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple, Union

import numpy as np
from spacy.language import Language
from spacy.pipeline import TrainablePipe
from spacy.tokens import Doc, Span
from spacy.training import Example, validate_examples
from spacy.util import registry
from spacy.vocab import Vocab
from thinc.api import Config, Model, NumpyOps, set_dropout_rate

from ..errors import Errors, Warnings
from ..layers.encoder import default_encoder_config, is_count
from ..layers.qa_head import QAScores
from .annotations import span_json
from .config_policy import ConfigWinsOnLoad
from .distillation import TeacherStudentMixin, kl, softmax_t
from .extensions import set_scored_spans
from .squad_metrics import f1_score, squad_scores

DEFAULT_QA_MODEL = """
[model]
@architectures = "bertprod.QuestionAnswerer.v1"
max_question_len = 64
doc_stride = 128

""" + default_encoder_config("model.encoder", window=384, stride=256)
DEFAULT_QA_MODEL_CFG = Config().from_str(DEFAULT_QA_MODEL)["model"]
ANSWER_LABEL = "ANSWER"
#: a gold answer: start and end character, text
Answer = Tuple[int, int, str]


def with_gold(questions: Sequence[str], example: Example) -> List[Tuple[str, List[Answer]]]:
    """Each question paired with its gold answers in `example` (none for
    every question of an example without gold)."""
    gold = example.reference._.bertprod_qa_gold or [[] for _ in questions]
    return list(zip(questions, gold))


#: QA logits are numpy arrays (`layers.qa_head.QAWindow`) whatever the device
_NUMPY_OPS = NumpyOps()


@registry.scorers("bertprod.qa_scorer.v1")
def make_qa_scorer() -> Callable:
    return score_qa


def score_qa(examples: Iterable[Example], *, spans_key: str = "bertprod_qa", **kwargs: Any) -> Dict[str, float]:
    """Official SQuAD exact match and F1 (in 0..1) of each question's best answer."""
    predictions, golds = [], []
    for eg in examples:
        group = eg.predicted.spans.get(spans_key, [])
        best: Dict[str, str] = {}
        for span in group:
            best.setdefault(span._.bertprod_question, span.text)
        for question, answers in with_gold(eg.reference._.questions or [], eg):
            predictions.append(best.get(question, ""))
            golds.append([a[2] for a in answers])
    em, f1 = squad_scores(predictions, golds)
    return {"qa_exact": em, "qa_f1": f1}


@Language.factory(
    "bertprod_qa",
    assigns=["doc.spans"],
    default_config={
        "model": DEFAULT_QA_MODEL_CFG,
        "max_answer_len": 30,
        "top_k": 1,
        "handle_impossible": False,
        "null_threshold": 0.0,
        "questions": [],
        "spans_key": "bertprod_qa",
        "scorer": {"@scorers": "bertprod.qa_scorer.v1"},
    },
    default_score_weights={"qa_f1": 1.0, "qa_exact": 0.0},
)
def make_bertprod_qa(
    nlp: Language,
    name: str,
    model: Model,
    max_answer_len: int,
    top_k: int,
    handle_impossible: bool,
    null_threshold: float,
    questions: Union[str, List[str]],
    spans_key: str,
    scorer: Optional[Callable],
) -> "BertprodQA":
    """questions: asked of docs whose `doc._.questions` is not set; one
    string is one question."""
    return BertprodQA(
        nlp.vocab,
        model,
        name,
        max_answer_len=max_answer_len,
        top_k=top_k,
        handle_impossible=handle_impossible,
        null_threshold=null_threshold,
        questions=questions,
        spans_key=spans_key,
        scorer=scorer,
    )


def _expanded_span(doc: Doc, start: int, end: int) -> Span:
    """The tokens covering a predicted answer's characters: they come from the
    doc's own wordpiece offsets, so "expand" always finds tokens."""
    span = doc.char_span(start, end, alignment_mode="expand")
    assert span is not None, (start, end)
    return span


def _distinct_spans(doc: Doc, ranked: List[Tuple[int, int, float]]) -> List[Tuple[int, int, float]]:
    """The first (best) candidate of each token span the candidates snap to."""
    seen, kept = set(), []
    for start, end, score in ranked:
        span = doc.char_span(start, end, alignment_mode="expand")
        if span is None or (span.start, span.end) in seen:
            continue
        seen.add((span.start, span.end))
        kept.append((start, end, score))
    return kept


def gold_wordpieces(offsets: np.ndarray, start_char: int, end_char: int) -> Optional[Tuple[int, int]]:
    """First and last context wordpiece overlapping the answer's characters,
    or None when tokenization lost the answer (e.g. it is only whitespace)."""
    if len(offsets) == 0:
        return None
    hits = np.flatnonzero((offsets[:, 1] > start_char) & (offsets[:, 0] < end_char) & (offsets[:, 1] > offsets[:, 0]))
    if len(hits) == 0:
        return None
    return int(hits[0]), int(hits[-1])


def _wordpiece_vocab(pipe: Any) -> Dict[str, int]:
    return pipe.model.get_ref("encoder").attrs["tokenizer"].tokenizer.get_vocab()


def validate_top_k(top_k: Any) -> None:
    if not is_count(top_k, 1):
        raise ValueError(Errors.E060.format(value=top_k))


def as_questions(value: Any, source: str) -> List[str]:
    """The questions in `value`: a string is one question; otherwise a list
    (or tuple) of strings. Anything else is an error, not a sequence of
    characters or a raw TypeError."""
    if isinstance(value, str):
        return [value]
    if not isinstance(value, (list, tuple)):
        raise TypeError(Errors.E049.format(source=source, type=type(value).__name__))
    for question in value:
        if not isinstance(question, str):
            raise TypeError(Errors.E021.format(type=type(question).__name__))
    return list(value)


class BertprodQA(TeacherStudentMixin, ConfigWinsOnLoad, TrainablePipe):
    """Extractive question answering with a fine-tuned transformer."""

    def __init__(
        self,
        vocab: Vocab,
        model: Model,
        name: str = "bertprod_qa",
        *,
        max_answer_len: int = 30,
        top_k: int = 1,
        handle_impossible: bool = False,
        null_threshold: float = 0.0,
        questions: Union[str, Sequence[str]] = (),
        spans_key: str = "bertprod_qa",
        scorer: Optional[Callable] = score_qa,
    ) -> None:
        if not is_count(max_answer_len, 1):
            raise ValueError(Errors.E059.format(value=max_answer_len))
        validate_top_k(top_k)
        if not isinstance(handle_impossible, bool):
            raise ValueError(Errors.E072.format(value=handle_impossible))
        if isinstance(null_threshold, bool) or not isinstance(null_threshold, (int, float)):
            raise ValueError(Errors.E073.format(value=null_threshold))
        questions = as_questions(questions, "the `questions` setting")
        self.vocab = vocab
        self.model = model
        self.name = name
        self.scorer = scorer
        # from the config: they win on load (see config_policy.py)
        self._settings: Dict[str, Any] = {
            "max_answer_len": max_answer_len,
            "top_k": top_k,
            "handle_impossible": handle_impossible,
            "null_threshold": null_threshold,
            "questions": questions,
            "spans_key": spans_key,
        }
        self.cfg: Dict[str, Any] = dict(self._settings, questions=list(questions))
        self.keep_settings(self._settings)
        self.lost_answers = 0  # training answers that tokenization lost

    @property
    def labels(self) -> Tuple[str, ...]:
        return (ANSWER_LABEL,)

    def add_label(self, label: str) -> int:
        raise NotImplementedError("bertprod_qa has no labels to add: answers are spans of the context.")

    def initialize(self, get_examples: Optional[Callable[[], Iterable[Example]]] = None, *, nlp: Optional[Language] = None) -> None:
        """Load the pretrained encoder and size the span head; answers need
        no labels, so examples are optional."""
        self.model.initialize()

    # -- prediction ---------------------------------------------------------
    def _questions(self, doc: Doc) -> List[str]:
        """`doc._.questions` when set, else the `questions` setting."""
        if doc._.questions is None:
            return self.cfg["questions"]
        return as_questions(doc._.questions, "doc._.questions")

    def _pairs(self, docs: Sequence[Doc]) -> Tuple[List[Tuple[Doc, str]], List[int]]:
        pairs, owners = [], []
        for i, doc in enumerate(docs):
            for question in self._questions(doc):
                pairs.append((doc, question))
                owners.append(i)
        return pairs, owners

    def predict(self, docs: Iterable[Doc]) -> Tuple[List[int], List[Tuple[str, List[Tuple[int, int, float]]]]]:
        docs = list(docs)
        pairs, owners = self._pairs(docs)
        pairs_to_run = [(d, q) for d, q in pairs if d.text.strip()]
        scores = iter(self.model.predict(pairs_to_run)) if pairs_to_run else iter(())
        answers = []
        for doc, question in pairs:
            found = self.decode(next(scores), self.cfg["top_k"], doc) if doc.text.strip() else []
            answers.append((question, found))
        return owners, answers

    def decode(self, scores: QAScores, top_k: int, doc: Optional[Doc] = None) -> List[Tuple[int, int, float]]:
        """Best (start_char, end_char, score) answers over all windows: per
        window, softmax over [CLS] + context for start and for end, spans of
        at most max_answer_len wordpieces scored p(start) * p(end). With
        `handle_impossible`, no answer when the null score ([CLS] as start and
        end, lowest over windows) beats the best answer by over
        `null_threshold`. With `doc` (the context), candidates that snap to
        the same token span are one answer, with the best candidate's score
        and offsets, so the `top_k` answers are distinct spans."""
        n_candidates = top_k
        while True:
            ranked, null_score = self._candidates(scores, n_candidates)
            if self.cfg["handle_impossible"] and (not ranked or null_score - ranked[0][2] > self.cfg["null_threshold"]):
                return []
            if doc is None:
                return ranked
            distinct = _distinct_spans(doc, ranked)
            if len(distinct) >= top_k or len(ranked) < n_candidates:
                return distinct[:top_k]
            n_candidates *= 4  # merged candidates: look further down the ranking

    def _candidates(self, scores: QAScores, top_k: int) -> Tuple[List[Tuple[int, int, float]], float]:
        max_len = self.cfg["max_answer_len"]
        best: Dict[Tuple[int, int], float] = {}
        null_score = 1.0
        for win in scores.windows:
            p_start, p_end = _NUMPY_OPS.softmax(win.start_logits), _NUMPY_OPS.softmax(win.end_logits)
            null_score = min(null_score, float(p_start[0] * p_end[0]))
            outer = np.triu(np.outer(p_start[1:], p_end[1:]))
            outer = np.tril(outer, max_len - 1)
            flat = outer.ravel()
            k = min(top_k, len(flat))
            top = np.argpartition(-flat, k - 1)[:k] if k < len(flat) else np.arange(len(flat))
            for idx in top:
                s, e = divmod(int(idx), outer.shape[1])
                if flat[idx] <= 0:
                    continue
                chars = (int(scores.offsets[win.ctx_start + s][0]), int(scores.offsets[win.ctx_start + e][1]))
                best[chars] = max(best.get(chars, 0.0), float(flat[idx]))
        ranked = sorted(((s, e, p) for (s, e), p in best.items()), key=lambda x: -x[2])[:top_k]
        return ranked, null_score

    def calibrate_null_threshold(self, examples: Iterable[Example]) -> Tuple[float, float]:
        """Set `null_threshold` to the value that maximises SQuAD F1 on
        `examples` (SQuAD 2.0-style dev data, questions without answers
        included; see `bertprod.SquadCorpus.v1`), as the official SQuAD 2.0
        script's best-F1 threshold does. Turns `handle_impossible` on and
        returns (threshold, F1 at it). The threshold sits in the middle of
        the gap between the last question answered and the first one left
        null (null-minus-answer differences lie in [-1, 1]), so float noise
        of another batch composition cannot flip a question at the edge."""
        diffs, f1_answer, f1_null = [], [], []
        for eg in examples:
            doc = eg.predicted
            questions = self._questions(doc)
            if not questions or not doc.text.strip():
                continue
            for scores, (_, answers) in zip(self.model.predict([(doc, q) for q in questions]), with_gold(questions, eg)):
                ranked, null_score = self._candidates(scores, 1)
                texts = [a[2] for a in answers]
                text = _expanded_span(doc, ranked[0][0], ranked[0][1]).text if ranked else ""
                diffs.append(null_score - ranked[0][2] if ranked else np.inf)
                f1_answer.append(max((f1_score(text, t) for t in texts), default=0.0) if ranked else float(not texts))
                f1_null.append(float(not texts))
        if not diffs:
            raise ValueError(Errors.E031)
        order = np.argsort(diffs)
        d = np.clip(np.asarray(diffs)[order], -1.0, 1.0)  # no candidate (inf): always null
        a, n = np.asarray(f1_answer)[order], np.asarray(f1_null)[order]
        # threshold just at or above d[i]: the first i+1 questions answered, the rest null
        totals = np.concatenate(([0.0], np.cumsum(a))) + np.concatenate((np.cumsum(n[::-1])[::-1], [0.0]))
        best = int(np.argmax(totals))
        below = d[best - 1] if best > 0 else -1.0
        above = d[best] if best < len(d) else 1.0
        threshold = float(below + above) / 2
        self.cfg["handle_impossible"] = True
        self.cfg["null_threshold"] = threshold
        return threshold, float(totals[best] / len(d))

    def _spans(self, doc: Doc, question: str, found: List[Tuple[int, int, float]]) -> List[Span]:
        spans = []
        for start, end, score in found:
            span = doc.char_span(start, end, label=ANSWER_LABEL, alignment_mode="expand", span_id=question)
            if span is None:
                continue
            span._.bertprod_score = score  # also for `answer`, which writes no span group
            span._.bertprod_question = question
            span._.bertprod_answer_chars = (start, end)
            spans.append(span)
        return spans

    def set_annotations(self, docs: Iterable[Doc], predictions: Any) -> None:
        docs = list(docs)
        owners, answers = predictions
        per_doc: List[List[Span]] = [[] for _ in docs]
        for i, (question, found) in zip(owners, answers):
            per_doc[i].extend(self._spans(docs[i], question, found))
        for doc, spans in zip(docs, per_doc):
            scores = [s._.bertprod_score for s in spans]
            set_scored_spans(doc, self.cfg["spans_key"], spans, scores, questions=[s._.bertprod_question for s in spans])

    def annotations(self, doc: Doc) -> Dict[str, Any]:
        """The answers found in `doc`, each with its question (`Annotating`)."""
        return {"answers": [span_json(span, question=span._.bertprod_question) for span in doc.spans.get(self.cfg["spans_key"], [])]}

    def answer(self, doc: Doc, question: str, top_k: Optional[int] = None) -> List[Span]:
        """The `top_k` best answers to `question` in `doc`, best first."""
        if not isinstance(doc, Doc):
            raise TypeError(Errors.E011.format(type=type(doc).__name__))
        top_k = self.cfg["top_k"] if top_k is None else top_k
        validate_top_k(top_k)
        (scores,) = self.model.predict([(doc, question)])
        return self._spans(doc, question, self.decode(scores, top_k, doc))

    # -- training -------------------------------------------------------------
    def update(self, examples: Iterable[Example], *, drop: float = 0.0, sgd: Optional[Any] = None, losses: Optional[Dict[str, float]] = None) -> Dict[str, float]:
        if losses is None:
            losses = {}
        losses.setdefault(self.name, 0.0)
        examples = list(examples)
        validate_examples(examples, "BertprodQA.update")
        pairs, _ = self._pairs([eg.predicted for eg in examples])
        if not pairs:
            return losses
        set_dropout_rate(self.model, drop)
        scores, backprop = self.model.begin_update(pairs)
        loss, d_scores = self.get_loss(examples, scores)
        backprop(d_scores)
        if sgd is not None:
            self.finish_update(sgd)
        losses[self.name] += loss
        return losses

    def get_loss(self, examples: Iterable[Example], scores: List[QAScores]) -> Tuple[float, List[List[Tuple[np.ndarray, np.ndarray]]]]:
        """Cross-entropy of the gold start and end over each window ([CLS] when
        the answer is not inside the window or the question has none). The
        first gold answer is the target."""
        targets: List[Optional[Answer]] = []
        for eg in examples:
            targets.extend(answers[0] if answers else None for _, answers in with_gold(self._questions(eg.predicted), eg))
        n_windows = sum(len(s.windows) for s in scores)
        loss, d_scores, lost = 0.0, [], 0
        for sc, target in zip(scores, targets):
            span = gold_wordpieces(sc.offsets, target[0], target[1]) if target else None
            if target and span is None:
                lost += 1
            per_pair = []
            for win in sc.windows:
                if span is None:
                    ts = te = 0
                    if target:  # lost answer: no gradient from this pair
                        per_pair.append((np.zeros_like(win.start_logits), np.zeros_like(win.end_logits)))
                        continue
                elif win.ctx_start <= span[0] and span[1] < win.ctx_end:
                    ts, te = 1 + span[0] - win.ctx_start, 1 + span[1] - win.ctx_start
                else:
                    ts = te = 0
                grads = []
                for logits, t in ((win.start_logits, ts), (win.end_logits, te)):
                    p = _NUMPY_OPS.softmax(logits)
                    loss -= float(np.log(max(p[t], 1e-12)))
                    d = p.astype("float32")
                    d[t] -= 1.0
                    grads.append(d / (2 * n_windows))
                d_start, d_end = grads
                per_pair.append((d_start, d_end))
            d_scores.append(per_pair)
        if lost:
            self.lost_answers += lost
            warnings.warn(Warnings.W002.format(lost=lost, name=self.name, total=self.lost_answers), stacklevel=1)
        return loss / max(2 * n_windows, 1), d_scores

    # -- distillation (see distillation.py) -------------------------------------
    def distillation_inputs(self, examples: Sequence[Example]) -> Tuple[List[Example], List[Tuple[Doc, str]]]:
        """The examples with text and questions, and their (doc, question)
        pairs: the model scores pairs."""
        kept = [eg for eg in examples if eg.predicted.text.strip() and self._pairs([eg.predicted])[0]]
        return kept, self._pairs([eg.predicted for eg in kept])[0]

    def has_gold_annotation(self, example: Example) -> bool:
        return bool(example.reference._.bertprod_qa_gold)

    def get_teacher_student_loss(
        self, teacher_scores: List[QAScores], student_scores: List[QAScores], *, temperature: float = 1.0, inputs: Optional[Sequence[Any]] = None
    ) -> Tuple[float, List[List[Tuple[np.ndarray, np.ndarray]]]]:
        """KL between the start and between the end distributions of each
        window at temperature T, scaled like `get_loss` (mean over windows
        and the two ends)."""
        n_windows = sum(len(s.windows) for s in student_scores)
        scale = 1.0 / max(2 * n_windows, 1)
        loss, grads = 0.0, []
        for s_pair, t_pair in zip(student_scores, teacher_scores):
            per_pair = []
            for w_s, w_t in zip(s_pair.windows, t_pair.windows):
                d = []
                for s_logits, t_logits in ((w_s.start_logits, w_t.start_logits), (w_s.end_logits, w_t.end_logits)):
                    q_s, q_t = softmax_t(s_logits, temperature), softmax_t(t_logits, temperature)
                    loss += temperature**2 * kl(q_t, q_s) * scale
                    d.append((temperature * (q_s - q_t) * scale).astype("float32"))
                per_pair.append((d[0], d[1]))
            grads.append(per_pair)
        return loss, grads

    def initialize_from_teacher(self, teacher_pipe: "BertprodQA", get_examples: Callable[[], Iterable[Example]], *, nlp: Language) -> None:
        """A fresh span head; refuses a student encoder whose wordpieces
        differ from the teacher's (E035): the soft targets are per wordpiece."""
        self.initialize(get_examples, nlp=nlp)
        if _wordpiece_vocab(self) != _wordpiece_vocab(teacher_pipe):
            name = str(self.model.get_ref("encoder").attrs["name"])
            raise ValueError(Errors.E035.format(component=self.name, name=name))
