"""Optional dependencies. The core install runs ONNX pipelines (spaCy, thinc,
numpy, tokenizers, onnxruntime); torch, transformers, safetensors and onnx
come with the `train` extra. Code that needs them imports them here, inside
the function that needs them, so `import spacy_bertprod` and an ONNX
pipeline's `spacy.load` never do."""

import importlib
from typing import Any

from .errors import Errors


def require_train_extra(module: str) -> Any:
    """Import `module` (torch, transformers, ...), or say which extra installs it (E100)."""
    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise ImportError(Errors.E100.format(module=module)) from err


def torch_installed() -> bool:
    """Whether torch can be imported (thinc has imported it already where it is
    installed, so asking costs nothing)."""
    try:
        import torch
    except ImportError:
        return False
    # a folder named "torch" on sys.path (say, a pipeline saved in the
    # working directory) imports as an empty namespace package
    return getattr(torch, "__file__", None) is not None
