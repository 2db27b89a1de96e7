"""displaCy draws each CoNLL label in its own colour."""

import re

import spacy
from spacy import displacy
from spacy.tokens import Span

from spacy_bertprod.pipeline.displacy_colors import CONLL_COLORS


def test_conll_labels_get_distinct_colours_through_the_entry_point():
    nlp = spacy.blank("en")
    doc = nlp("Angela Merkel of the CDU visited Munich for the Euro Cup")
    doc.ents = [Span(doc, 0, 2, "PER"), Span(doc, 4, 5, "ORG"), Span(doc, 6, 7, "LOC"), Span(doc, 9, 11, "MISC")]
    html = displacy.render(doc, style="ent", page=False)
    drawn = {label: colour for colour, label in re.findall(r"background: (#[0-9a-f]+).*?(PER|ORG|LOC|MISC)</span>", html, flags=re.S)}
    assert drawn == CONLL_COLORS
    assert len(set(drawn.values())) == 4
