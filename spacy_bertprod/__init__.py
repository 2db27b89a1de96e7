"""spacy-bertprod: small, fast BERT-style transformers as spaCy components."""

from .layers import architectures  # noqa: F401  (registers the architectures)
from .layers.hf_loader import DEFAULT_MODEL
from .pipeline.ner import BertprodNER
from .pipeline.qa import BertprodQA
from .pipeline.textcat import BertprodTextCategorizer
from .training import squad  # noqa: F401  (registers the SQuAD reader)

__version__ = "0.1.0"
__all__ = ["BertprodQA", "BertprodNER", "BertprodTextCategorizer", "DEFAULT_MODEL", "__version__"]
