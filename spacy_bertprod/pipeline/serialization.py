"""Reading a saved component's folder (`cfg` and `model`) for the bertprod
components, with coded errors that name the file.

spaCy's own reader takes a missing `cfg` for an empty one and passes the
raw msgpack, tokenizers or safetensors errors of a damaged `model` through;
labels edited in `cfg` load and break only the first prediction. Here each
of these fails in `spacy.load`, naming the file and what to do.
"""

from pathlib import Path
from typing import Any, Callable, Iterable, Optional

import srsly
from spacy import util
from spacy.pipeline import TrainablePipe

from ..errors import Errors, PipelineFileError, describe


def _require(pipe: TrainablePipe, path: Path) -> None:
    if not path.exists():
        raise ValueError(Errors.E046.format(component=pipe.name, name=path.name, path=path))


def _read_cfg(pipe: TrainablePipe, path: Path) -> None:
    _require(pipe, path)
    try:
        cfg = srsly.read_json(path)
    except ValueError as err:
        raise PipelineFileError(Errors.E042, err=describe(err)).in_file(path) from err
    if not isinstance(cfg, dict):
        raise PipelineFileError(Errors.E042, err=f"expected a JSON object, found {type(cfg).__name__}").in_file(path)
    pipe.cfg.update(cfg)


def _read_model(pipe: TrainablePipe, path: Path) -> None:
    _require(pipe, path)
    try:
        pipe.model.from_bytes(path.read_bytes())
    except PipelineFileError as err:
        raise err.in_file(path) from err
    except (ValueError, KeyError, TypeError, IndexError, AttributeError) as err:
        # msgpack ("Unpack failed: incomplete input") and thinc's structure checks
        raise PipelineFileError(Errors.E042, err=describe(err)).in_file(path) from err


def check_output_width(pipe: TrainablePipe, expected: int, cfg_path: Any) -> None:
    """E047 when the labels in the component's cfg need another output width
    than its loaded weights have (an output layer never sized is left alone)."""
    output = pipe.model.get_ref("output")
    found = output.maybe_get_dim("nO")
    if found is not None and found != expected:
        labels = list(pipe.labels)
        raise ValueError(Errors.E047.format(n_labels=len(labels), labels=labels, path=cfg_path, expected=expected, component=pipe.name, found=found))


def pipe_from_disk(
    pipe: TrainablePipe,
    path: Any,
    exclude: Iterable[str],
    output_width: Optional[Callable[[], int]] = None,
) -> TrainablePipe:
    """What `TrainablePipe.from_disk` does, but a missing or damaged `cfg` or
    `model` raises a coded error naming the file (E042-E046), and with
    `output_width` (the output units the loaded labels need) labels that no
    longer match the weights raise E047."""
    path = util.ensure_path(path)
    pipe._validate_serialization_attrs()
    readers = {
        "cfg": lambda p: _read_cfg(pipe, p),
        "vocab": lambda p: pipe.vocab.from_disk(p, exclude=exclude),
        "model": lambda p: _read_model(pipe, p),
    }
    util.from_disk(path, readers, exclude)
    if output_width is not None and "model" not in exclude:
        check_output_width(pipe, output_width(), path / "cfg")
    return pipe
