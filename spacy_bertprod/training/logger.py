"""`bertprod.ConsoleLogger.v1`: spaCy's console logger with a progress bar
when a terminal is attached, and a guard against an untrained model-best.

spaCy evaluates every `eval_frequency` steps, the first time after step 0.
A run shorter than `eval_frequency` (a small corpus, a few epochs) evaluates
only the model after its first update, saves that as model-best, and ends
without a word: `spacy evaluate` then scores 0.0 and nobody is told why. This
logger counts the steps; when the run ends with no evaluation after step 0,
it removes that model-best and says what to change, so nothing downstream
takes a model that never trained for the best one.

`output_file` gets spaCy's JSON lines (epoch, step, losses, scores, score),
each flushed when written: spaCy's own logger leaves them in a buffer until
training ends, so a long run could not be followed with `tail -f`.
"""

import shutil
import sys
from pathlib import Path
from typing import IO, Any, Callable, Dict, List, Optional, Tuple, Union

import srsly
from spacy.language import Language
from spacy.training.loggers import console_logger_v3
from wasabi import Printer

from ..errors import Warnings

LogStep = Callable[[Optional[Dict[str, Any]]], None]


def console_logger(progress_bar: Union[bool, str] = "auto", console_output: bool = True, output_file: Optional[str] = None) -> Callable[..., Tuple[LogStep, Callable[[], None]]]:
    """`progress_bar`: "auto" (spaCy's "eval" bar when stderr is a terminal,
    none in logs and CI), "eval", "train", or false."""
    if progress_bar == "auto":
        progress_bar = "eval" if sys.stderr.isatty() else False
    bar: Optional[str] = "eval" if progress_bar is True else (progress_bar or None)
    spacy_setup = console_logger_v3(progress_bar=bar, console_output=console_output, output_file=None)

    def setup(nlp: Language, stdout: IO = sys.stdout, stderr: IO = sys.stderr) -> Tuple[LogStep, Callable[[], None]]:
        log_step, finalize = spacy_setup(nlp, stdout, stderr)
        write_line, close_file = _json_lines(nlp, output_file, stdout)
        steps = 0
        evaluated: List[int] = []
        output: List[Path] = []

        def log(info: Optional[Dict[str, Any]]) -> None:
            nonlocal steps
            steps += 1
            if info is not None:
                evaluated.append(info["step"])
                if info.get("output_path"):
                    output[:] = [Path(info["output_path"]).parent]
            log_step(info)
            if info is not None:
                write_line(info)

        def close() -> None:
            finalize()
            close_file()
            if steps > 1 and evaluated and max(evaluated) == 0:
                best = output[0] / "model-best" if output else None
                if best is not None and best.exists():
                    shutil.rmtree(best)
                warning = Warnings.W003.format(steps=steps, best=best or "model-best", suggestion=max(1, steps // 4))
                stdout.write(Printer(no_print=True).warn(warning) + "\n")

        return log, close

    return setup


def _json_lines(nlp: Language, output_file: Optional[str], stdout: IO) -> Tuple[Callable[[Dict[str, Any]], None], Callable[[], None]]:
    """Writes each evaluation as spaCy's ConsoleLogger.v3 does (losses of the
    trainable components, the weighted scores x 100), flushed at once; like
    spaCy's, it will not overwrite an existing log."""
    if not output_file:
        return (lambda info: None), (lambda: None)
    path = Path(output_file)
    if path.exists():
        stdout.write(Printer(no_print=True).warn(f"Saving logs is disabled because {path} already exists.") + "\n")
        return (lambda info: None), (lambda: None)
    path.parent.mkdir(parents=True, exist_ok=True)
    stdout.write(Printer(no_print=True).info(f"Saving results to {path}") + "\n")
    stream = path.open("w", encoding="utf8")
    pipes = [name for name, proc in nlp.pipeline if getattr(proc, "is_trainable", False)]
    cols = [col for col, weight in nlp.config["training"]["score_weights"].items() if weight is not None]

    def write(info: Dict[str, Any]) -> None:
        scores = {col: float(info["other_scores"].get(col, 0.0)) * (1 if col == "speed" else 100) for col in cols}
        losses = {name: float(info["losses"][name]) for name in pipes}
        line = {"epoch": info["epoch"], "step": info["step"], "losses": losses, "scores": scores, "score": float(info["score"])}
        stream.write(srsly.json_dumps(line) + "\n")
        stream.flush()

    return write, stream.close
