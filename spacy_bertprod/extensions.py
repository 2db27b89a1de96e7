"""Custom attributes set by the bertprod components.

Span attributes with a default are stored in `doc.user_data`, keyed by the
span's characters, label and id, so they survive `Doc.to_bytes` and DocBin.
- `span._.bertprod_score`: confidence of an entity (NER) or answer (QA)
- `span._.bertprod_question`: the question an answer span answers
- `span._.bertprod_answer_chars`: the answer's character offsets as the model
  predicted them, before snapping to spaCy token boundaries
- `doc._.questions`: questions to answer for this doc (`bertprod_qa`)
- `doc._.bertprod_labels`: labels at or above their threshold (multi-label textcat)
"""

from spacy.tokens import Doc, Span

for _name in ("bertprod_score", "bertprod_question", "bertprod_answer_chars"):
    if not Span.has_extension(_name):
        Span.set_extension(_name, default=None)
for _name in ("questions", "bertprod_labels", "bertprod_qa_gold", "bertprod_qa_ids"):
    if not Doc.has_extension(_name):
        Doc.set_extension(_name, default=None)
