"""`bertprod meta`: the meta.json a pipeline is packaged with.

`spacy package` copies meta.json into the wheel and its README's accuracy
table. A trained pipeline's meta carries the training run's dev scores and
losses; a quantized or distilled copy should carry its own scores, from
`spacy evaluate --output`, and a package its description, licence, author
and name.
"""

from pathlib import Path
from typing import Any, Dict, List, Optional

import srsly
from spacy.cli._util import Arg, Opt
from wasabi import msg

from ..errors import Errors
from ._util import bertprod_cli, coded_errors_exit

#: keys of `spacy evaluate`'s output that are not accuracy
NOT_ACCURACY = ("speed",)


def accuracy(scores: Dict[str, Any]) -> Dict[str, Any]:
    """The accuracy figures of `spacy evaluate`'s JSON: no speed, no losses."""
    return {key: value for key, value in scores.items() if key not in NOT_ACCURACY and not key.endswith("_loss") and value is not None}


def update_meta(pipeline: Path, *, scores: Optional[Path] = None, fields: Optional[Dict[str, Any]] = None, output: Optional[Path] = None) -> Dict[str, Any]:
    """The pipeline's meta with `fields` and the accuracy of `scores`, written
    to `output` (default: the pipeline's own meta.json)."""
    meta_path = pipeline / "meta.json"
    if not meta_path.is_file():
        raise FileNotFoundError(Errors.E086.format(path=pipeline))
    meta = srsly.read_json(meta_path)
    meta.update({key: value for key, value in (fields or {}).items() if value})
    if scores is not None:
        if not scores.is_file():
            raise FileNotFoundError(Errors.E087.format(path=scores))
        meta["performance"] = accuracy(srsly.read_json(scores))
    srsly.write_json(output or meta_path, meta)
    return meta


@bertprod_cli.command("meta")
def meta_cli(
    pipeline: Path = Arg(..., help="Pipeline folder whose meta.json to update (in place)", exists=True, file_okay=False),
    scores: Optional[Path] = Opt(None, "--scores", "-s", help="`spacy evaluate --output` JSON of this pipeline: becomes its performance (no speed, no losses). Default: keep", dir_okay=False),
    name: str = Opt("", "--name", help="Package name (spaCy prefixes the language). Default: keep"),
    description: str = Opt("", "--description", help="One-line description. Default: keep"),
    license: str = Opt("", "--license", help="Licence of the weights and data. Default: keep"),
    author: str = Opt("", "--author", help="Author. Default: keep"),
    requirement: Optional[List[str]] = Opt(None, "--requirement", "-r", help="Requirement of the package (repeat for more), e.g. 'spacy-bertprod[train]>=0.1'. Default: keep"),
    output: Optional[Path] = Opt(None, "--output", "-o", help="Write the meta here (for `spacy package --meta-path`) and leave PIPELINE as it is. Default: PIPELINE/meta.json", dir_okay=False),
) -> None:
    """Write scores, name, description, licence, author and requirements into
    PIPELINE/meta.json (or --output), for `spacy package`."""
    fields: Dict[str, Any] = {"name": name, "description": description, "license": license, "author": author, "requirements": list(requirement or [])}
    with coded_errors_exit():
        update_meta(pipeline, scores=scores, fields=fields, output=output)
    changed = [key for key, value in fields.items() if value] + (["performance"] if scores else [])
    msg.good(f"Wrote {output or pipeline / 'meta.json'}", ", ".join(changed))
