"""`python -m spacy bertprod COMMAND`: what spaCy's own CLI cannot do for
bertprod pipelines, plugged into spaCy's `spacy` command.

init-config     a complete training config for a task, from the shipped
                configs (as `spacy init config`)
convert-all     a dataset folder laid out like assets/ -> corpus/ner,
                corpus/textcat (.spacy) and corpus/qa (SQuAD JSON)
evaluate-squad  SQuAD exact match and F1 of a bertprod_qa pipeline
distill         train a smaller student against a trained teacher pipeline
quantize        int8-quantize the encoders of a trained pipeline
onnx            run a trained pipeline's encoders on ONNX Runtime
meta            fill a pipeline's meta.json (own scores, description,
                licence, author, requirements) before `spacy package`
demo            train bertprod_ner on the shipped sample and tag a few sentences
annotate        a trained pipeline over a corpus into JSONL / DocBin shards (local or Ray)
serve           a pipeline as an HTTP service with dynamic batching

One module per command group: convert.py (convert-all), evaluate.py
(evaluate-squad), distill.py, compress.py (quantize, onnx), meta.py, demo.py,
annotating.py (annotate), serving.py (serve); _util.py holds the sub-app and
the coded-error exit.

Training, single-file conversion and evaluation of .spacy corpora are spaCy's
own commands (`python -m spacy train|convert|evaluate`). spaCy finds this
sub-app through the `spacy_cli` entry point: `registry.cli.get_all()` imports
this module, whose import adds the sub-app to spaCy's `app`.
"""

from spacy.cli._util import app

from . import annotating, compress, convert, demo, distill, evaluate, init_config, meta, serving  # noqa: F401  (each registers its commands)
from ._util import bertprod_cli

app.add_typer(bertprod_cli)

__all__ = ["bertprod_cli"]
