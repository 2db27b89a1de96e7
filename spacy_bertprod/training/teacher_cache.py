"""The teacher's soft targets, computed once for a distillation.

A student whose inputs are the teacher's own spaCy tokens (a CNN student)
trains for many epochs over the same texts; running a transformer teacher
at every step is most of the cost. `cache_teacher` runs each teacher
component once over every training example (what the student component's
`distillation_inputs` gives it to score) and keeps the scores in memory as
float16, one array per input doc. `CachedTeacher` then stands in for the
teacher pipeline in the loop: its components' `model.predict(docs)` looks the
scores up, so the components' `distill` is unchanged.

With an ensemble (`others`: more teachers trained for the same labels) the
cache holds the mean of the teachers' scores, computed once the same way:
one student distilled from several teachers (Hinton et al.'s ensemble
distillation), at the cost of one teacher at every step.

Teacher predictions have no dropout, so a cached score is the one the
teacher would give at that step (to float16 precision). Hidden-state
matching needs the live teacher and is not cached.

With a file (`.npz`, read without pickle), the scores are written after they
are computed and read back by a later run on the same texts and the same
teacher components (a SHA-256 of the texts, their token counts and the
bytes of every teacher's component says which); otherwise they are computed
again and the file rewritten.
"""

import hashlib
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence

import numpy as np
from spacy.language import Language
from spacy.tokens import Doc
from spacy.training import Example
from spacy.training.batchers import minibatch_by_words

from ..errors import Errors
from ..pipeline.distillation import Distillable


class CachedScores:
    """A teacher component's scores by input doc (`predict` looks them up)."""

    def __init__(self, component: str, ops: Any) -> None:
        self.component = component
        self.ops = ops
        self.per_doc: Dict[int, np.ndarray] = {}
        self.rows = False  # the teacher gave one array with a row per doc, not a list
        self._docs: List[Doc] = []  # keeps the docs (and so their ids) alive

    def add(self, docs: Sequence[Any], scores: Any) -> None:
        if not all(isinstance(doc, Doc) for doc in docs):
            raise ValueError(Errors.E189.format(component=self.component, why="its inputs are not one doc per example"))
        if isinstance(scores, (list, tuple)) and len(scores) == len(docs):
            parts = list(scores)
        elif hasattr(scores, "shape") and len(scores.shape) == 2 and scores.shape[0] == len(docs):
            parts, self.rows = list(scores), True
        else:
            raise ValueError(Errors.E189.format(component=self.component, why="its scores are not one array (or row) per input doc"))
        for doc, part in zip(docs, parts):
            self.per_doc[id(doc)] = self.ops.to_numpy(part).astype("float16")
            self._docs.append(doc)

    def predict(self, docs: Sequence[Doc]) -> Any:
        try:
            parts = [self.per_doc[id(doc)].astype("float32") for doc in docs]
        except KeyError:
            raise ValueError(Errors.E189.format(component=self.component, why="a training doc was not in the cache it was built on")) from None
        if self.rows:
            return self.ops.asarray2f(np.stack(parts))
        return [self.ops.asarray(part) for part in parts]

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in self.per_doc.values())

    def mean_with(self, others: Sequence["CachedScores"]) -> None:
        """Replace each doc's scores by their mean with those of `others`
        (each holding the same docs), summed in float32."""
        for key, part in self.per_doc.items():
            total = part.astype("float32")
            for other in others:
                theirs = other.per_doc[key]
                if theirs.shape != part.shape:
                    raise ValueError(Errors.E189.format(component=self.component, why=f"the teachers' scores of one doc differ in shape ({part.shape} against {theirs.shape})"))
                total += theirs.astype("float32")
            self.per_doc[key] = (total / (1 + len(others))).astype("float16")

    def arrays(self, docs: Sequence[Doc], key: str) -> Dict[str, np.ndarray]:
        """The scores of `docs` (in order) as arrays for an .npz file."""
        parts = [self.per_doc[id(doc)] for doc in docs]
        return {
            "key": np.array(key),
            "rows": np.array(self.rows),
            "lengths": np.array([len(p) if p.ndim == 2 else 1 for p in parts], dtype="int64"),
            "scores": np.concatenate([p.reshape(-1, p.shape[-1]) for p in parts]) if parts else np.zeros((0, 0), dtype="float16"),
        }

    def read(self, docs: Sequence[Doc], arrays: Dict[str, np.ndarray]) -> None:
        """Scores of `docs` from `arrays` (see `arrays`)."""
        self.rows = bool(arrays["rows"])
        ends = np.cumsum(arrays["lengths"])
        for doc, start, end in zip(docs, ends - arrays["lengths"], ends):
            part = arrays["scores"][start:end]
            self.per_doc[id(doc)] = part[0] if self.rows else part
            self._docs.append(doc)


class CachedPipe:
    """A teacher component whose model answers from the cache."""

    def __init__(self, name: str, model: CachedScores) -> None:
        self.name = name
        self.model = model


class CachedTeacher:
    """What the distillation loop asks of the teacher pipeline, answered from
    the cache: `pipe_names`, `get_pipe`, `meta`."""

    def __init__(self, teacher: Language, pipes: Dict[str, CachedPipe]) -> None:
        self.meta = teacher.meta
        self.pipe_names = list(pipes)
        self._pipes = pipes

    def get_pipe(self, name: str) -> CachedPipe:
        return self._pipes[name]

    @property
    def nbytes(self) -> int:
        return sum(pipe.model.nbytes for pipe in self._pipes.values())


def cache_teacher(
    teacher: Language,
    student: Language,
    examples: List[Example],
    *,
    batch_words: int = 2000,
    log: Callable[[str], None] = print,
    path: Optional[Path] = None,
    others: Sequence[Language] = (),
) -> CachedTeacher:
    """Run each teacher component once over `examples` (what the student
    component scores for them) and keep its scores; logs progress about
    every tenth of the words. With `others`, keep the mean of the scores of
    `teacher` and of each of them (an ensemble). With `path`, read them from
    that .npz file where it holds these texts and these teachers, and write
    them there otherwise (see the module)."""
    pipes: Dict[str, CachedPipe] = {}
    saved = _read_file(path)
    arrays: Dict[str, Any] = {}
    for name, pipe in student.components:
        if not isinstance(pipe, Distillable) or name not in teacher.pipe_names:
            continue
        inputs_of = getattr(pipe, "distillation_inputs", None)
        if not callable(inputs_of):
            raise ValueError(Errors.E189.format(component=name, why="it does not say what it scores (distillation_inputs)"))
        _, docs = inputs_of(examples)
        teacher_pipe = teacher.get_pipe(name)
        other_pipes = [_ensemble_pipe(teacher_pipe, other, name, number) for number, other in enumerate(others, start=2)]
        cached = CachedScores(name, teacher_pipe.model.ops)
        if not all(isinstance(doc, Doc) for doc in docs):
            raise ValueError(Errors.E189.format(component=name, why="its inputs are not one doc per example"))
        key = _key([teacher_pipe, *other_pipes], docs) if path is not None else ""
        if path is not None and saved.get(f"{name}/key") == key:
            cached.read(docs, {field: saved[f"{name}/{field}"] for field in ("rows", "lengths", "scores")})
            log(f"teacher cache {name}: {len(docs):,} texts read from {path}")
        else:
            _predict_all(cached, teacher_pipe.model, docs, batch_words, log)
            extra = []
            for number, pipe in enumerate(other_pipes, start=2):
                log(f"teacher cache {name}: ensemble teacher {number} of {len(other_pipes) + 1}")
                extra.append(CachedScores(name, pipe.model.ops))
                _predict_all(extra[-1], pipe.model, docs, batch_words, log)
            if extra:
                cached.mean_with(extra)
        pipes[name] = CachedPipe(name, cached)
        arrays.update({f"{name}/{field}": value for field, value in cached.arrays(docs, key).items()} if path is not None else {})
    if path is not None and any(saved.get(k) != str(arrays[k]) for k in arrays if k.endswith("/key")):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        with Path(path).open("wb") as f:
            np.savez(f, **arrays)
        log(f"teacher cache written to {path}")
    return CachedTeacher(teacher, pipes)


def _predict_all(cached: CachedScores, model: Any, docs: List[Doc], batch_words: int, log: Callable[[str], None]) -> None:
    """The teacher's scores of `docs`, in batches of about `batch_words` words."""
    total = sum(len(doc) for doc in docs)
    done, next_log, start = 0, total / 10, time.perf_counter()
    for batch in minibatch_by_words(docs, size=batch_words, discard_oversize=False, get_length=len):
        cached.add(batch, model.predict(batch))
        done += sum(len(doc) for doc in batch)
        if done >= next_log or done == total:
            seconds = time.perf_counter() - start
            log(f"teacher cache {cached.component}: {done:,}/{total:,} words, {done / max(seconds, 1e-9):,.0f} words/s")
            next_log += total / 10


def check_ensemble(teacher: Language, student: Language, others: Sequence[Language]) -> None:
    """Refuse (E197), before any work, an ensemble whose teachers lack a
    distilled component or score other labels than the first teacher."""
    for name, pipe in student.components:
        if isinstance(pipe, Distillable) and name in teacher.pipe_names:
            for number, other in enumerate(others, start=2):
                _ensemble_pipe(teacher.get_pipe(name), other, name, number)


def _ensemble_pipe(teacher_pipe: Any, other: Language, name: str, number: int) -> Any:
    """Teacher `number`'s component `name`, which must score the same labels
    in the same order as the first teacher's (E197)."""
    if name not in other.pipe_names:
        raise ValueError(Errors.E197.format(teacher=number, component=name, why="is missing"))
    pipe = other.get_pipe(name)
    if type(pipe) is not type(teacher_pipe):
        raise ValueError(Errors.E197.format(teacher=number, component=name, why=f"is a {type(pipe).__name__}, not a {type(teacher_pipe).__name__}"))
    ours, theirs = tuple(getattr(teacher_pipe, "labels", ())), tuple(getattr(pipe, "labels", ()))
    if ours != theirs:
        raise ValueError(Errors.E197.format(teacher=number, component=name, why=f"has the labels {list(theirs)}, not {list(ours)}"))
    return pipe


def _key(teacher_pipes: Sequence[Any], docs: Sequence[Doc]) -> str:
    """What the scores depend on: the texts, their tokens and the teacher
    components (one, or an ensemble's in order; a one-teacher key is the
    same as before ensembles, so older cache files still read)."""
    first, *others = teacher_pipes
    digest = hashlib.sha256(first.to_bytes())
    for pipe in others:
        digest.update(hashlib.sha256(pipe.to_bytes()).digest())
    for doc in docs:
        digest.update(f"{len(doc)}\x00{doc.text}\x00".encode("utf8"))
    return digest.hexdigest()


def _read_file(path: Optional[Path]) -> Dict[str, Any]:
    """The arrays of a cache file (keys as str), or none where there is no file."""
    if path is None or not Path(path).exists():
        return {}
    with np.load(path, allow_pickle=False) as data:
        return {k: (str(data[k]) if k.endswith("/key") else data[k]) for k in data.files}
