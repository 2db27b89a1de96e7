"""`bertprod.ConsoleLogger.v1`: spaCy's console logger with a progress bar
when a terminal is attached, and a guard against an untrained model-best.

spaCy evaluates every `eval_frequency` steps, the first time after step 0.
A run shorter than `eval_frequency` (a small corpus, a few epochs) evaluates
only the model after its first update, saves that as model-best, and ends
without a word: `spacy evaluate` then scores 0.0 and nobody is told why. This
logger counts the steps; when the run ends with no evaluation after step 0,
it removes that model-best and says what to change, so nothing downstream
takes a model that never trained for the best one.
"""

import shutil
import sys
from pathlib import Path
from typing import IO, Any, Callable, Dict, List, Optional, Tuple, Union

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
    spacy_setup = console_logger_v3(progress_bar=bar, console_output=console_output, output_file=output_file)

    def setup(nlp: Language, stdout: IO = sys.stdout, stderr: IO = sys.stderr) -> Tuple[LogStep, Callable[[], None]]:
        log_step, finalize = spacy_setup(nlp, stdout, stderr)
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

        def close() -> None:
            finalize()
            if steps > 1 and evaluated and max(evaluated) == 0:
                best = output[0] / "model-best" if output else None
                if best is not None and best.exists():
                    shutil.rmtree(best)
                warning = Warnings.W003.format(steps=steps, best=best or "model-best", suggestion=max(1, steps // 4))
                stdout.write(Printer(no_print=True).warn(warning) + "\n")

        return log, close

    return setup
