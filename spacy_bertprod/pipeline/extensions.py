"""Custom attributes set by the bertprod components.

The span attributes are stored in `doc.user_data`, keyed by the span's
characters, label and id (`span.id_`, the question for QA answers), so they
survive `Doc.to_bytes` and DocBin. spaCy's own span extensions are keyed by
the characters only, so two questions with the same answer span would
overwrite each other's question and score.
- `span._.bertprod_score`: confidence of an entity (NER) or answer (QA)
- `span._.bertprod_question`: the question an answer span answers
- `span._.bertprod_answer_chars`: the answer's character offsets as the model
  predicted them, before snapping to spaCy token boundaries
- `doc._.questions`: questions to answer for this doc (`bertprod_qa`)
- `doc._.bertprod_labels`: labels at or above their threshold (multi-label textcat)
"""

from functools import partial
from typing import Any, Dict, List, Sequence, Tuple, cast

from spacy.tokens import Doc, Span, SpanGroup

SPAN_ATTRS = ("bertprod_score", "bertprod_question", "bertprod_answer_chars")
#: attributes stored as tuples: msgpack (`Doc.to_bytes`, `n_process`) gives
#: them back as lists, so the getter restores the type
TUPLE_ATTRS = ("bertprod_answer_chars",)


def _key(name: str, span: Span) -> Tuple[str, str, int, int, int, int]:
    return ("bertprod._.", name, span.start_char, span.end_char, span.label, span.id)


def _user_data(span: Span) -> Dict[Any, Any]:
    """The doc's `user_data`: spaCy's stub says `Dict[str, Any]`, but spaCy's own
    extensions key it by tuples too, as `_key` does."""
    return cast(Dict[Any, Any], span.doc.user_data)


# Getters and setters are module-level functions bound with `partial`, not
# closures: spaCy pickles every extension for `nlp.pipe(n_process=...)`
# under the "spawn" start method, and a closure cannot be pickled.
def get_span_attr(name: str, span: Span) -> Any:
    value = _user_data(span).get(_key(name, span))
    if name in TUPLE_ATTRS and isinstance(value, list):
        return tuple(value)
    return value


def set_span_attr(name: str, span: Span, value: Any) -> None:
    _user_data(span)[_key(name, span)] = value


for _name in SPAN_ATTRS:
    if not Span.has_extension(_name):
        Span.set_extension(_name, getter=partial(get_span_attr, _name), setter=partial(set_span_attr, _name))
for _name in ("questions", "bertprod_labels", "bertprod_qa_gold", "bertprod_qa_ids"):
    if not Doc.has_extension(_name):
        Doc.set_extension(_name, default=None)


def set_scored_spans(doc: Doc, key: str, spans: List[Span], scores: Sequence[float], **attrs: List[Any]) -> None:
    """Write `spans` as `doc.spans[key]`, each score on `span._.bertprod_score`
    and all of them in the group's `attrs["scores"]` (with any other
    per-span `attrs`), the way NER and QA report their confidence."""
    for span, score in zip(spans, scores):
        span._.bertprod_score = score
    doc.spans[key] = SpanGroup(doc, name=key, spans=spans, attrs={"scores": list(scores), **attrs})
