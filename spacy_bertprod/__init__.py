"""spacy-bertprod: small, fast BERT-style transformers as spaCy components.

Importing the package imports nothing else (no spaCy, torch, transformers
or onnxruntime): a Ray read worker or a CLI that only reads files pays for
none of them. spaCy finds the factories, architectures, reader, logger and
scorer through the package's entry points; the names below are imported on
first use (PEP 562).

pipeline/     the components and what they predict with
layers/       the thinc layers of the shared encoder and the architectures
training/     distillation, the SQuAD reader, corpus converters, the logger
compression/  torch int8, ONNX export, Hugging Face export
serve/        the HTTP service
annotate/     batch annotation of a corpus (local or Ray)
cli/          `python -m spacy bertprod COMMAND`
errors.py     every coded error and warning
extras.py     which optional extras are installed
memory.py     glibc's allocator: mmap threshold and trimming
threads.py    the encoders' thread count, and one thread in forked workers
"""

import importlib
from typing import Any

__version__ = "0.1.0"
__all__ = ["BertprodQA", "BertprodNER", "BertprodTextCategorizer", "DEFAULT_MODEL", "__version__"]

#: name -> module that defines it, imported on first access
_LAZY = {
    "BertprodNER": ".pipeline.ner",
    "BertprodQA": ".pipeline.qa",
    "BertprodTextCategorizer": ".pipeline.textcat",
    "DEFAULT_MODEL": ".layers.hf_loader",
}


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name], __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list:
    return sorted(set(globals()) | set(__all__))
