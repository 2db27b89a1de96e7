"""Compress trained pipelines for CPU serving.

`quantize_pipeline` applies int8 dynamic quantization (torch) to the linear
layers of every bertprod encoder in a pipeline. The quantized weights are
saved in the pipeline folder and `spacy.load` rebuilds the quantized encoder
with no extra step; `nlp.meta["bertprod"]["compression"]` records what was done.
"""

from pathlib import Path
from typing import Dict, List, Union

import spacy
from spacy.language import Language
from thinc.api import Model

from .encoder import QUANTIZATION_INT8, quantize_module


def bertprod_encoders(nlp: Language) -> Dict[str, Model]:
    """Every bertprod encoder layer in the pipeline, by component name
    (an encoder shared through listeners is found once, on its owner)."""
    found = {}
    for name, pipe in nlp.components:
        model = getattr(pipe, "model", None)
        if not isinstance(model, Model):
            continue
        for node in model.walk():
            if node.name == "bertprod_encoder" and all(node is not seen for seen in found.values()):
                found[name] = node
    return found


def quantize_pipeline(nlp: Language) -> List[str]:
    """Quantize the pipeline's encoders in place; returns the components done."""
    done = []
    for name, encoder in bertprod_encoders(nlp).items():
        shim = encoder.get_ref("transformer").shims[0]
        if getattr(shim._model, "bertprod_quantization", None):
            continue
        shim._model = quantize_module(shim._model.to("cpu"))
        done.append(name)
    meta = nlp.meta.setdefault("bertprod", {})
    meta["compression"] = {"quantization": QUANTIZATION_INT8, "components": sorted(set(meta.get("compression", {}).get("components", [])) | set(done)), "layers": "torch.nn.Linear", "backend": "torch"}
    return done


def quantize_path(input_path: Union[str, Path], output_path: Union[str, Path]) -> List[str]:
    nlp = spacy.load(input_path)
    done = quantize_pipeline(nlp)
    nlp.to_disk(output_path)
    return done
