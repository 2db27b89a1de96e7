"""displaCy colours for the CoNLL-2003 labels.

spaCy's defaults are for OntoNotes (PERSON, GPE, ...): PER and MISC have no
colour there and are both drawn in the same grey. displaCy reads extra
colours from the `spacy_displacy_colors` entry point, so `spacy evaluate
--displacy-path` and `displacy.render` pick these up after install.
"""

from typing import Dict

#: PER and LOC as spaCy draws PERSON and LOC, ORG as ORG; MISC in its own colour
CONLL_COLORS: Dict[str, str] = {"PER": "#aa9cfc", "ORG": "#7aecec", "LOC": "#ff9561", "MISC": "#c5e1a5"}


def conll_colors() -> Dict[str, str]:
    return dict(CONLL_COLORS)
