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
from dataclasses import asdict, dataclass
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple, cast

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
from ..layers.wordpiece_vectors import LAYER_NAME as WORDPIECE_LAYER
from ..layers.wordpiece_vectors import set_wordpiece_table, table_from_embeddings
from ..pipeline.distillation import Distillable, InitializesFromTeacher, TakesTokenEncoder, encoder_of, require_distillable


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
    student = _fresh_student(teacher, config, get_examples, fresh=lambda _name, pipe: isinstance(pipe, Distillable))
    info = student.meta.setdefault("bertprod", {}).setdefault("distillation", {})
    info["encoder"] = name
    return student


def _fresh_student(
    teacher: Language,
    config: Any,
    get_examples: Callable[[], Iterable[Example]],
    fresh: Callable[[str, Any], bool],
    prepare: Callable[[Language], None] = lambda student: None,
) -> Language:
    """The pipeline of `config` (the teacher's, edited), its `fresh`
    components initialised anew (with the teacher's settings where they
    implement `InitializesFromTeacher`), the others copied from the teacher;
    `prepare` sees the student before anything is initialised."""
    student = load_model_from_config(config, auto_fill=False, validate=False)
    student.meta.update(copy.deepcopy(teacher.meta))
    prepare(student)
    for comp_name, component in student.components:
        # spaCy types components as `Callable[[Doc], Doc]`; the checks below
        # ask what else each one is
        pipe: object = component
        source: Any = teacher.get_pipe(comp_name)
        if fresh(comp_name, pipe) and isinstance(pipe, InitializesFromTeacher):
            pipe.initialize_from_teacher(source, get_examples, nlp=student)
        elif fresh(comp_name, pipe):
            # every distillable component is a TrainablePipe
            pipe.initialize(get_examples, nlp=student)  # type: ignore[attr-defined]
        elif hasattr(pipe, "from_bytes"):
            pipe.from_bytes(source.to_bytes())
    return student


# -- the CNN student ------------------------------------------------------------
#: where a CNN student's wordpiece vectors come from: the teacher's input
#: embeddings (PCA-reduced), or seeded random rows of the same shape (a control)
WORDPIECE_TABLES = ("teacher", "random")


@dataclass(frozen=True)
class CnnSettings:
    """spaCy's `spacy.Tok2Vec.v2` for a CNN student: MultiHashEmbed over
    NORM, PREFIX, SUFFIX and SHAPE (`embed_rows` rows for NORM, spaCy's
    proportions for the others) and a MaxoutWindowEncoder of `depth` layers.
    The defaults are the tok2vec of spaCy's own `ner` (width 96, depth 4, rows
    5000/1000/2500/2500): the student runs the encoder spaCy's CNN pipeline runs.
    `wordpiece_dims` > 0 adds static wordpiece vectors from the teacher's
    input embeddings, reduced to that many columns
    (`bertprod.WordpieceHashEmbed.v1`); `wordpiece_table="random"` fills
    that table with seeded random rows instead, the control that says how
    much of their gain is the teacher's pretrained knowledge rather than
    the wordpiece ids alone."""

    width: int = 96
    depth: int = 4
    embed_rows: int = 5000
    window_size: int = 1
    wordpiece_dims: int = 0
    wordpiece_table: str = "teacher"

    def tok2vec_config(self) -> Dict[str, Any]:
        """The encoder's config block (spaCy's default `ner` tok2vec, sized)."""
        for setting, minimum in (("width", 1), ("depth", 1), ("embed_rows", 10), ("window_size", 0), ("wordpiece_dims", 0)):
            value = getattr(self, setting)
            if not is_count(value, minimum):
                raise ValueError(Errors.E066.format(setting=f"cnn {setting}", value=value, why=f"it must be a whole number of at least {minimum}"))
        if self.wordpiece_table not in WORDPIECE_TABLES:
            raise ValueError(Errors.E066.format(setting="cnn wordpiece_table", value=self.wordpiece_table, why=f"it must be one of {', '.join(WORDPIECE_TABLES)}"))
        if self.wordpiece_table != "teacher" and not self.wordpiece_dims:
            raise ValueError(Errors.E066.format(setting="cnn wordpiece_table", value=self.wordpiece_table, why="it chooses the wordpiece vectors' table: set wordpiece_dims > 0 too"))
        rows = self.embed_rows
        hashed = {"width": self.width, "attrs": ["NORM", "PREFIX", "SUFFIX", "SHAPE"], "rows": [rows, max(rows // 5, 1), max(rows // 2, 1), max(rows // 2, 1)]}
        embed: Dict[str, Any] = (
            {"@architectures": "bertprod.WordpieceHashEmbed.v1", **hashed, "wordpiece_dims": self.wordpiece_dims}
            if self.wordpiece_dims
            else {"@architectures": "spacy.MultiHashEmbed.v2", **hashed, "include_static_vectors": False}
        )
        return {
            "@architectures": "spacy.Tok2Vec.v2",
            "embed": embed,
            "encode": {"@architectures": "spacy.MaxoutWindowEncoder.v2", "width": self.width, "depth": self.depth, "window_size": self.window_size, "maxout_pieces": 3},
        }


def make_cnn_student(teacher: Language, settings: CnnSettings, get_examples: Callable[[], Iterable[Example]]) -> Language:
    """The teacher's pipeline with every component on a bertprod encoder
    rebuilt on a fresh spaCy CNN tok2vec (`settings`), written in the
    student's config; those components start fresh with the teacher's labels,
    the others (and the tokenizer) are copied. A component that cannot take
    another encoder is refused (E188)."""
    check_distillable(teacher)
    encoder = settings.tok2vec_config()
    config = teacher.config.copy()
    rebuilt: List[str] = []
    for name, pipe in teacher.components:
        model = getattr(pipe, "model", None)
        if not (isinstance(model, Model) and encoder_of(model) is not None):
            continue
        if not isinstance(pipe, TakesTokenEncoder):
            raise ValueError(Errors.E188.format(component=name, type=type(pipe).__name__))
        section = config["components"][name]
        section["model"] = pipe.student_model_config(dict(section["model"]), copy.deepcopy(encoder))
        rebuilt.append(name)

    def wordpiece_tables(student: Language) -> None:
        for name in rebuilt:
            layers = [node for node in student.get_pipe(name).model.walk() if node.name == WORDPIECE_LAYER]  # type: ignore[attr-defined]
            if layers:
                holder, table = teacher_wordpiece_table(teacher.get_pipe(name).model, settings.wordpiece_dims)  # type: ignore[attr-defined]
                if settings.wordpiece_table == "random":
                    table = random_wordpiece_table(table.shape)
                for layer in layers:
                    set_wordpiece_table(layer, holder, table)

    student = _fresh_student(teacher, config, get_examples, fresh=lambda name, _pipe: name in rebuilt, prepare=wordpiece_tables)
    info = student.meta.setdefault("bertprod", {}).setdefault("distillation", {})
    info.update({"student": "cnn", "cnn": asdict(settings), "components": rebuilt})
    return student


def random_wordpiece_table(shape: Tuple[int, int], seed: int = 0) -> np.ndarray:
    """Standard normal rows, seeded: the teacher's table's shape and column
    scale (`table_from_embeddings` scales each column to unit variance)
    without its knowledge."""
    return np.random.default_rng(seed).standard_normal(shape).astype("float32")


def teacher_wordpiece_table(model: Model, dims: int) -> Tuple[Any, np.ndarray]:
    """The tokenizer of the teacher's encoder in `model` and its fine-tuned
    input embeddings reduced to `dims` columns (from its torch weights:
    `hf_module` refuses an inference-only export, E102)."""
    encoder = cast(Model, encoder_of(model))  # a rebuilt component has one
    weights = hf_module(encoder).get_input_embeddings().weight.detach().float().cpu().numpy()
    return encoder.attrs["tokenizer"], table_from_embeddings(weights, dims)
