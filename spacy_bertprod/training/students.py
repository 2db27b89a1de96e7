"""Building a student pipeline for distillation.

The student is a copy of the teacher whose encoders keep a subset of the
transformer layers (DistilBERT-style initialisation: e.g. layers 0, 2 and 5
of a 6-layer teacher), heads and tokenizer included; or the teacher's
pipeline on another (e.g. narrower) pretrained encoder, with the distilled
components initialised fresh (`InitializesFromTeacher` gives them the
teacher's labels) and the others copied.

Which components are distilled is decided by the protocol in
`pipeline/distillation.py`, never by their class.
"""

import copy
from typing import Any, Callable, Iterable, List, Optional, Sequence, Tuple

import numpy as np
from spacy.language import Language
from spacy.pipeline.tok2vec import Tok2VecListener
from spacy.training import Example
from spacy.util import load_model_from_config
from thinc.api import Model

from ..errors import Errors
from ..layers.encoder import bertprod_encoders, encoder_blocks, is_count
from ..layers.int8_state import is_torch_quantized
from ..layers.transformer import hf_module, set_hf_module
from ..pipeline.distillation import Distillable, InitializesFromTeacher, encoder_of, require_distillable


def _layer_list(module: Any) -> Tuple[Any, str]:
    """The ModuleList of transformer blocks and the attribute holding it."""
    for owner_name, attr in (("encoder", "layer"), ("transformer", "layer")):
        owner = getattr(module, owner_name, None)
        if owner is not None and hasattr(owner, attr):
            return owner, attr
    raise ValueError(Errors.E023.format(type=type(module).__name__))


def spread_layers(n_teacher: int, n_student: int) -> List[int]:
    """`n_student` teacher layers spread evenly, first and last included."""
    if not is_count(n_student, 1) or n_student > n_teacher:
        raise ValueError(Errors.E063.format(value=n_student, n_teacher=n_teacher))
    return sorted({int(round(i)) for i in np.linspace(0, n_teacher - 1, n_student)})


def keep_layers(module: Any, layers: Sequence[int]) -> Any:
    """A copy of a HF encoder with only the given transformer layers."""
    import torch

    owner, attr = _layer_list(module)
    n = len(getattr(owner, attr))
    if not layers or sorted(set(layers)) != list(layers) or layers[0] < 0 or layers[-1] >= n:
        raise ValueError(Errors.E064.format(value=list(layers), last=n - 1))
    student = copy.deepcopy(module)
    s_owner, _ = _layer_list(student)
    setattr(s_owner, attr, torch.nn.ModuleList([getattr(s_owner, attr)[i] for i in layers]))
    for key in ("num_hidden_layers", "n_layers"):
        if hasattr(student.config, key):
            setattr(student.config, key, len(layers))
    return student


def copy_pipeline(nlp: Language) -> Language:
    """An independent copy of a pipeline, weights included."""
    copied = load_model_from_config(nlp.config, auto_fill=False, validate=False)
    copied.from_bytes(nlp.to_bytes())
    copied.meta.update(copy.deepcopy(nlp.meta))
    return copied


def _listens(model: Model) -> bool:
    return any(isinstance(node, Tok2VecListener) for node in model.walk())


def check_distillable(nlp: Language) -> None:
    """Refuse a pipeline distillation cannot train: a distillable component
    that listens to a shared encoder (E025: its encoder is not its own to
    cut), a component on a bertprod encoder without the protocol (E078),
    nothing to distil (E026)."""
    found = False
    for name, pipe in nlp.components:
        if isinstance(pipe, Distillable):
            if encoder_of(pipe.model) is None and _listens(pipe.model):
                raise ValueError(Errors.E025.format(component=name))
            found = True
    for name, pipe in nlp.components:
        model = getattr(pipe, "model", None)
        if isinstance(model, Model) and encoder_of(model) is not None:
            require_distillable(name, pipe)
    if not found:
        raise ValueError(Errors.E026.format(pipeline=nlp.pipe_names))


def make_student(
    teacher: Language,
    *,
    layers: Optional[Sequence[int]] = None,
    n_layers: Optional[int] = None,
    encoder: Optional[str] = None,
    get_examples: Optional[Callable[[], Iterable[Example]]] = None,
) -> Language:
    """A student pipeline: the teacher copied, each bertprod encoder cut to
    `layers` (teacher indices) or to `n_layers` spread evenly; or, with
    `encoder` (a HF name or local path, e.g. a narrower model), the teacher's
    pipeline on that pretrained encoder, its distilled components
    initialised for the teacher's labels on `get_examples` (the training
    examples)."""
    check_distillable(teacher)
    for name, enc in bertprod_encoders(teacher).items():
        if is_torch_quantized(hf_module(enc)) or enc.attrs.get("backend", "torch") != "torch":
            raise ValueError(Errors.E024.format(component=name))
    if encoder is not None:
        if layers is not None or n_layers is not None:
            raise ValueError(Errors.E065.format(value=encoder))
        return _student_on_encoder(teacher, encoder, get_examples)
    student = copy_pipeline(teacher)
    for name, encoder_layer in bertprod_encoders(student).items():
        module = hf_module(encoder_layer)
        owner, attr = _layer_list(module)
        n_teacher = len(getattr(owner, attr))
        keep = list(layers) if layers is not None else spread_layers(n_teacher, n_layers or n_teacher)
        set_hf_module(encoder_layer, keep_layers(module, keep))
        info = student.meta.setdefault("bertprod", {}).setdefault("distillation", {})
        info.setdefault("layers", {})[name] = keep
    return student


def _student_on_encoder(teacher: Language, name: str, get_examples: Optional[Callable[[], Iterable[Example]]]) -> Language:
    """The teacher's pipeline with encoder `name` in every bertprod encoder
    block; distilled components initialised fresh (with the teacher's
    settings where they implement `InitializesFromTeacher`), other
    components copied."""
    if get_examples is None:
        raise ValueError(Errors.E034.format(name=name))
    config = teacher.config.copy()
    for component in config["components"].values():
        for block in encoder_blocks(component):
            block["name"] = name
    student = load_model_from_config(config, auto_fill=False, validate=False)
    student.meta.update(copy.deepcopy(teacher.meta))
    for comp_name, component in student.components:
        # spaCy types components as `Callable[[Doc], Doc]`; the checks below
        # ask what else each one is
        pipe: object = component
        source: Any = teacher.get_pipe(comp_name)
        if isinstance(pipe, InitializesFromTeacher):
            pipe.initialize_from_teacher(source, get_examples, nlp=student)
        elif isinstance(pipe, Distillable):
            # the protocol leaves `initialize` out: every distillable component is a TrainablePipe
            pipe.initialize(get_examples, nlp=student)  # type: ignore[attr-defined]
        elif hasattr(pipe, "from_bytes"):
            pipe.from_bytes(source.to_bytes())
    info = student.meta.setdefault("bertprod", {}).setdefault("distillation", {})
    info["encoder"] = name
    return student
