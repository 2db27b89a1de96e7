"""spacy-bertprod: small, fast BERT-style transformers as spaCy components."""

from . import architectures  # noqa: F401  (registers the architectures)
from .hf_loader import DEFAULT_MODEL
from .ner import BertprodNER
from .textcat import BertprodTextCategorizer
from .qa import BertprodQA
from . import squad  # noqa: F401  (registers the SQuAD reader)

__version__ = "0.1.0"
__all__ = ["BertprodQA", "BertprodNER", "BertprodTextCategorizer", "DEFAULT_MODEL", "__version__"]
