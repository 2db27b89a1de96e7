"""A processed Doc as plain JSON data, for the HTTP service and batch annotation.

Each bertprod component says what it produced through `annotations(doc)`
(the `Annotating` protocol), so the service and the annotate command need no
`isinstance` chain: a pipe that has no such method (a tokenizer-only pipe, a
spaCy built-in) contributes nothing. Scores are plain floats, character
offsets index `doc.text`.
"""

from typing import Any, Dict, Optional, Protocol, Sequence, runtime_checkable

from spacy.language import Language
from spacy.tokens import Doc, Span


@runtime_checkable
class Annotating(Protocol):
    """A component that reports its predictions on `doc` as JSON data."""

    def annotations(self, doc: Doc) -> Dict[str, Any]: ...


def span_json(span: Span, **extra: Any) -> Dict[str, Any]:
    """One scored span: its text, label, character offsets and score."""
    score = span._.bertprod_score
    return {"text": span.text, "label": span.label_, "start": span.start_char, "end": span.end_char, "score": None if score is None else float(score), **extra}


def doc_annotations(nlp: Language, doc: Doc, *, pipes: Optional[Sequence[str]] = None) -> Dict[str, Any]:
    """What every annotating component of `nlp` (or only those in `pipes`)
    wrote on `doc`. Two components with the same key (two NER pipes) add up:
    lists are joined, dicts merged."""
    result: Dict[str, Any] = {}
    for name, pipe in nlp.pipeline:
        if (pipes is None or name in pipes) and isinstance(pipe, Annotating):
            for key, value in pipe.annotations(doc).items():
                if key in result:
                    value = result[key] + value if isinstance(value, list) else {**result[key], **value}
                result[key] = value
    return result
