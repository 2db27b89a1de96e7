"""spacy-bertprod: small, fast BERT-style transformers as spaCy components."""

from . import (
    architectures,  # noqa: F401  (registers the architectures)
    squad,  # noqa: F401  (registers the SQuAD reader)
)
from .hf_loader import DEFAULT_MODEL
from .ner import BertprodNER
from .qa import BertprodQA
from .textcat import BertprodTextCategorizer

__version__ = "0.1.0"
__all__ = ["BertprodQA", "BertprodNER", "BertprodTextCategorizer", "DEFAULT_MODEL", "__version__"]
