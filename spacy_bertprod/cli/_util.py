"""The `bertprod` sub-app of spaCy's CLI and what its commands share."""

import re
from contextlib import contextmanager
from typing import Iterator

import typer
from wasabi import msg

HELP = """spacy-bertprod: convert the public datasets, evaluate SQuAD, distil,
quantize and export bertprod pipelines, write their package meta, annotate a
corpus, serve a pipeline over HTTP, and run the demo. Train and evaluate
.spacy corpora with spaCy's own `train` and `evaluate`.
"""

bertprod_cli = typer.Typer(name="bertprod", help=HELP, no_args_is_help=True)

# a message from errors.py: "[E012] ..."
_CODED = re.compile(r"^\[E\d{3}\] ")


@contextmanager
def coded_errors_exit() -> Iterator[None]:
    """Turn the package's coded errors (the user's mistakes, each saying what
    to do) into a wasabi failure and exit status 1, as spaCy's commands do;
    anything else is a bug and keeps its traceback."""
    try:
        yield
    except (ValueError, OSError, RuntimeError) as err:
        if not _CODED.match(str(err)):
            raise
        msg.fail(str(err), exits=1)
