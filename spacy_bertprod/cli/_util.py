"""The `bertprod` sub-app of spaCy's CLI and what its commands share."""

import re
import sys
from contextlib import contextmanager
from typing import Iterator, NoReturn

import typer
from wasabi import msg

from ..extras import missing_extra_message

HELP = """spacy-bertprod: convert the public datasets, evaluate SQuAD, distil,
quantize and export bertprod pipelines, write their package meta, annotate a
corpus, serve a pipeline over HTTP, and run the demo. Train and evaluate
.spacy corpora with spaCy's own `train` and `evaluate`.
"""

bertprod_cli = typer.Typer(name="bertprod", help=HELP, no_args_is_help=True)

# a message from errors.py: "[E012] ..."
_CODED = re.compile(r"^\[E\d{3}\] ")


def fail(message: str) -> NoReturn:
    """A wasabi failure on stderr (stdout may be the command's output, e.g.
    `init-config -`), then exit status 1."""
    print(msg.text(message, color="red", icon="fail", no_print=True), file=sys.stderr)
    sys.exit(1)


@contextmanager
def coded_errors_exit() -> Iterator[None]:
    """Turn the package's coded errors (the user's mistakes, each saying what
    to do) and a missing extra (an ImportError of a module an extra installs:
    E100, E101, E180) into a wasabi failure and exit status 1, as spaCy's
    commands do; anything else is a bug and keeps its traceback."""
    try:
        yield
    except ImportError as err:
        if _CODED.match(str(err)):
            fail(str(err))
        message = missing_extra_message(err)
        if message is None:
            raise
        fail(message)
    except (ValueError, OSError, RuntimeError) as err:
        if not _CODED.match(str(err)):
            raise
        fail(str(err))
