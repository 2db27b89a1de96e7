"""Knowledge distillation: a smaller student pipeline trained to match a
trained teacher pipeline.

`students.py` builds the student (teacher layers kept, or another encoder);
this module runs the loop. Each step, every student component that
implements the distillation protocol (`pipeline/distillation.py`, spaCy v4's
`distill` / `get_teacher_student_loss`) takes one update towards its teacher
component:

    loss = soft_weight * T^2 * KL(teacher_T || student_T) + gold_weight * gold loss

where `X_T` are the distributions at temperature T (tag distributions per
token for NER, the label distribution per doc for textcat - per-label
sigmoids when multi-label -, start and end distributions per window for QA;
each component says in its `get_teacher_student_loss`).
With `hidden_weight > 0` the loss adds `hidden_weight * MSE` between the
student's and the teacher's last hidden states over every real wordpiece
(students of the teacher's width only).
With `cache_teacher` the teacher scores every training example once before
the loop (`teacher_cache.py`) and the steps read its scores from memory: for
students much cheaper than their teacher (a CNN student), trained over the
same texts for many epochs. With `ensemble` (more teachers trained for the
same labels) the cached targets are the mean of all the teachers' scores.
The gold term is the component's own `get_loss`; examples without
annotation (unlabelled text) give it no gradient, so plain text trains the
soft-target part. The loop knows nothing of the components it trains.
"""

import random
import sys
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Union

from spacy.language import Language
from spacy.training import Example
from spacy.training.batchers import minibatch_by_words
from thinc.api import Adam, warmup_linear
from tqdm import tqdm

from ..errors import Errors
from ..layers.encoder import is_count
from ..pipeline.distillation import Distillable, DistillSettings, encoder_of
from .students import check_distillable, copy_pipeline, keep_layers, make_student, spread_layers
from .teacher_cache import CachedTeacher, cache_teacher, check_ensemble

# the student builders, where callers of this module have always found them
__all__ = ["copy_pipeline", "distill", "distill_step", "keep_layers", "make_student", "spread_layers", "weighted_score"]


def distill_step(
    teacher: Union[Language, CachedTeacher],
    student: Language,
    examples: List[Example],
    *,
    temperature: float,
    soft_weight: float,
    gold_weight: float,
    drop: float,
    sgd: Optional[Any],
    losses: Dict[str, float],
    hidden_weight: float = 0.0,
) -> Dict[str, float]:
    """One update of every distillable student component on `examples`."""
    settings = DistillSettings(temperature=temperature, soft_weight=soft_weight, gold_weight=gold_weight, hidden_weight=hidden_weight)
    for name, pipe in student.components:
        if isinstance(pipe, Distillable) and name in teacher.pipe_names:
            pipe.distill(teacher.get_pipe(name), examples, drop=drop, sgd=sgd, losses=losses, settings=settings)
    return losses


def _check_hidden(student: Language, hidden_weight: float, cached: bool) -> None:
    """Hidden-state matching needs a transformer student (E187) and the live
    teacher (E189)."""
    for name, pipe in student.components:
        if isinstance(pipe, Distillable) and encoder_of(pipe.model) is None:
            raise ValueError(Errors.E187.format(value=hidden_weight, component=name))
        if isinstance(pipe, Distillable) and cached:
            raise ValueError(Errors.E189.format(component=name, why="hidden-state matching (hidden_weight > 0) needs the live teacher's hidden states"))


# -- the loop -----------------------------------------------------------------
def weighted_score(nlp: Language, scores: Dict[str, Any]) -> float:
    weights = nlp.config["training"]["score_weights"]
    return float(sum(w * (scores.get(k) or 0.0) for k, w in weights.items() if w))


def distill(
    teacher: Language,
    student: Language,
    train: List[Example],
    dev: List[Example],
    *,
    output: Optional[Path] = None,
    steps: int = 1000,
    batch_words: int = 1000,
    learn_rate: float = 1e-4,
    warmup: Optional[int] = None,
    temperature: float = 2.0,
    soft_weight: float = 0.5,
    gold_weight: float = 0.5,
    hidden_weight: float = 0.0,
    drop: float = 0.1,
    eval_every: int = 200,
    seed: int = 0,
    log: Callable[[str], None] = print,
    progress: bool = False,
    cache_teacher_scores: bool = False,
    cache_file: Optional[Path] = None,
    ensemble: Sequence[Language] = (),
) -> Dict[str, Any]:
    """Train `student` against `teacher` for `steps` updates; evaluates on
    `dev` every `eval_every` steps and saves `output/model-best` and
    `output/model-last`. Returns the best dev scores. `progress` shows a bar
    of the steps on stderr (for a terminal: the evaluations can be minutes
    apart). `cache_teacher_scores` runs the teacher once over `train` first
    (see the module), kept in (and read again from) `cache_file` if given;
    `ensemble` adds teachers whose scores are averaged with `teacher`'s in
    that cache."""
    for setting, value, ok, why in (
        ("temperature", temperature, temperature > 0, "the softening temperature must be above 0"),
        ("soft_weight", soft_weight, soft_weight >= 0, "a loss weight must be 0 or more"),
        ("gold_weight", gold_weight, gold_weight >= 0, "a loss weight must be 0 or more"),
        ("hidden_weight", hidden_weight, hidden_weight >= 0, "a loss weight must be 0 or more"),
        ("steps", steps, is_count(steps, 1), "the number of updates must be a whole number of at least 1"),
    ):
        if not ok:
            raise ValueError(Errors.E066.format(setting=setting, value=value, why=why))
    if soft_weight == 0 and gold_weight == 0 and hidden_weight == 0:
        raise ValueError(Errors.E067)
    if not train:
        raise ValueError(Errors.E027)
    check_distillable(student)
    if cache_file is not None and not cache_teacher_scores:
        raise ValueError(Errors.E186.format(why="a cache file keeps the teacher cache, which is off (--no-cache-teacher): leave one of them out"))
    if ensemble and not cache_teacher_scores:
        raise ValueError(Errors.E186.format(why="an ensemble's soft targets are the mean of its teachers' cached scores, and the cache is off (--no-cache-teacher): leave it on"))
    check_ensemble(teacher, student, ensemble)
    if hidden_weight > 0:
        _check_hidden(student, hidden_weight, cache_teacher_scores)
    warmup = max(steps // 10, 1) if warmup is None else warmup
    # thinc annotates warmup_linear as Iterable[float] but returns the generator Adam asks for
    sgd = Adam(learn_rate=warmup_linear(learn_rate, warmup, steps), L2=0.01, L2_is_weight_decay=True, grad_clip=1.0, use_averages=False)  # type: ignore[arg-type]
    rng = random.Random(seed)
    if output is not None:
        Path(output).mkdir(parents=True, exist_ok=True)
    info = student.meta.setdefault("bertprod", {}).setdefault("distillation", {})
    info.update({"temperature": temperature, "soft_weight": soft_weight, "gold_weight": gold_weight, "hidden_weight": hidden_weight, "steps": steps, "teacher": teacher.meta.get("name", "")})
    if ensemble:
        info["ensemble"] = 1 + len(ensemble)
    best: Dict[str, Any] = {"score": -1.0}
    losses: Dict[str, float] = {}
    source: Union[Language, CachedTeacher] = teacher
    if cache_teacher_scores:
        began = time.perf_counter()
        n_words = sum(len(eg.predicted) for eg in train)
        source = cache_teacher(teacher, student, train, batch_words=max(batch_words, 2000), log=log, path=cache_file, others=ensemble)
        seconds = time.perf_counter() - began
        info["teacher_cache"] = {"words": n_words, "seconds": round(seconds, 1), "mbytes": round(source.nbytes / 2**20, 1)}
        log(f"teacher scores cached: {n_words:,} words in {seconds:.0f} s ({source.nbytes / 2**20:.0f} MB, float16)")
    step, start = 0, time.perf_counter()
    bar = tqdm(total=steps, desc="distilling", unit="step", disable=not progress, leave=False, file=sys.stderr, dynamic_ncols=True)
    log(f"{'step':>6}  {'soft':>10}  {'gold':>10}  {'hidden':>10}  {'score':>6}  {'seconds':>7}")
    while step < steps:
        order = list(train)
        rng.shuffle(order)
        for batch in minibatch_by_words(order, size=batch_words, discard_oversize=False, get_length=lambda eg: len(eg.predicted)):
            distill_step(source, student, batch, temperature=temperature, soft_weight=soft_weight, gold_weight=gold_weight, hidden_weight=hidden_weight, drop=drop, sgd=sgd, losses=losses)
            sgd.step_schedules()
            step += 1
            bar.update(1)
            if step % eval_every == 0 or step == steps:
                scores = student.evaluate(dev) if dev else {}
                score = weighted_score(student, scores) if dev else float(step)
                soft = sum(v for k, v in losses.items() if k.endswith("_soft"))
                gold = sum(v for k, v in losses.items() if k.endswith("_gold"))
                hidden = sum(v for k, v in losses.items() if k.endswith("_hidden"))
                with bar.external_write_mode():
                    log(f"{step:>6}  {soft:>10.2f}  {gold:>10.2f}  {hidden:>10.4f}  {score:>6.4f}  {time.perf_counter() - start:>7.0f}")
                losses = {}
                if score > best["score"]:
                    best = {"score": score, "step": step, **{k: v for k, v in scores.items() if isinstance(v, float)}}
                    if output is not None:
                        student.meta["performance"] = {k: v for k, v in scores.items() if not k.startswith("token_")}
                        student.to_disk(Path(output) / "model-best")
            if step >= steps:
                break
    bar.close()
    if output is not None:
        student.to_disk(Path(output) / "model-last")
    return best
