"""`bertprod init-config`: a complete training config for one task, written
from the configs shipped in the package (spacy_bertprod/configs; the
repository's configs/ links there), as `spacy init config` writes spaCy's.
A pip install has no repository: this is where its configs come from."""

import sys
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Tuple

from spacy.cli._util import COMMAND, Arg, Opt, show_validation_error
from spacy.util import load_config, load_model_from_config
from thinc.api import Config
from wasabi import msg

from ..errors import Errors
from ..layers.hf_loader import load_hf_config, max_sequence_length
from ._util import bertprod_cli, coded_errors_exit

#: the configs shipped as package data, one per task
CONFIGS_DIR = Path(__file__).resolve().parent.parent / "configs"
TASKS = ("ner", "textcat", "textcat_multilabel", "qa", "ner_textcat")
ENCODER = "bertprod.Encoder.v1"
LISTENER = "spacy.Tok2VecListener.v1"
#: --gpu: a GPU is fastest on large calls; these multiply the padded
#: wordpieces per transformer call and the texts per `nlp.pipe` batch
GPU_WORDPIECES_FACTOR = 4
GPU_PIPE_BATCH_FACTOR = 4
#: what each task's corpora are, for the next command printed
CORPUS_FILES = {"qa": ("train-v1.1.json", "dev-v1.1.json")}


def shipped_config_path(task: str) -> Path:
    """The shipped config of `task` (E181 for an unknown task)."""
    if task not in TASKS:
        raise ValueError(Errors.E181.format(task=task, tasks=", ".join(TASKS)))
    return CONFIGS_DIR / f"{task}.cfg"


def _model_blocks(config: Config) -> Iterator[Dict[str, Any]]:
    """Every architecture block of the components' models (the model and
    its encoder), where the encoder and listener settings sit."""
    for component in config["components"].values():
        model = component.get("model", {})
        yield model
        if isinstance(model.get("encoder"), dict):
            yield model["encoder"]


def _scaled(value: int, ratio: float) -> int:
    return max(1, int(value * ratio))


def fit_to_encoder(config: Config, hf_config: Dict[str, Any], name: str) -> Optional[str]:
    """Fit the encoder windows to the positions the encoder supports and the
    listeners' widths to its hidden size; returns what was changed, if a
    window was (a window larger than the model's positions fails in
    `initialize`, E006)."""
    width = next((hf_config[k] for k in ("hidden_size", "dim", "d_model") if isinstance(hf_config.get(k), int)), None)
    max_pos = max_sequence_length(hf_config)  # the limit the encoder checks (E006), position offsets counted
    note = None
    for block in _model_blocks(config):
        if block.get("@architectures") == LISTENER:
            if width is None:
                raise ValueError(Errors.E182.format(name=name))
            block["width"] = width
        if block.get("@architectures") != ENCODER or not isinstance(max_pos, int) or block["window"] <= max_pos:
            continue
        ratio = max_pos / block["window"]
        note = f"window {block['window']} -> {max_pos} wordpieces (the positions of '{name}'), stride and question lengths scaled alike"
        block["window"] = max_pos
        block["stride"] = min(_scaled(block["stride"], ratio), max_pos - 2)
    if note is not None:
        for block in _model_blocks(config):
            for key in ("max_question_len", "doc_stride"):
                if isinstance(block.get(key), int):
                    block[key] = _scaled(block[key], ratio)
    return note


def init_config(task: str, *, encoder: Optional[str] = None, gpu: bool = False, lang: str = "en") -> Tuple[Config, List[str]]:
    """The shipped config of `task` for `encoder` (the config's own, the
    embedded MiniLM, by default), language `lang` and, with `gpu`, mixed
    precision and larger calls, auto-filled and validated as spaCy's
    `init config` does (building the pipeline needs the `train` extra);
    with notes on what was fitted to the encoder."""
    config = load_config(shipped_config_path(task), interpolate=False)
    config["nlp"]["lang"] = lang
    names = set()
    for block in _model_blocks(config):
        if block.get("@architectures") == ENCODER:
            if encoder is not None:
                block["name"] = encoder
            names.add(block["name"])
            if gpu:
                block["mixed_precision"] = True
                block["max_batch_wordpieces"] *= GPU_WORDPIECES_FACTOR
    if gpu:
        config["nlp"]["batch_size"] *= GPU_PIPE_BATCH_FACTOR
    notes = [note for name in sorted(names) if (note := fit_to_encoder(config, load_hf_config(name), name)) is not None]
    with show_validation_error(hint_fill=False):
        nlp = load_model_from_config(config, auto_fill=True, validate=False)
    # a second time with validation, as `spacy init fill-config` does
    return load_model_from_config(nlp.config).config, notes


def header(task: str, output_file: Path) -> str:
    """The comment on top of the written config: what it is and how to train it."""
    train, dev = CORPUS_FILES.get(task, ("train.spacy", "dev.spacy"))
    name = "config.cfg" if str(output_file) == "-" else output_file.name
    return (
        f"# spacy-bertprod config for the task {task!r}, written by `{COMMAND} bertprod init-config`.\n"
        f"# Train with:\n#   {COMMAND} train {name} --output training --paths.train {train} --paths.dev {dev} [--gpu-id 0]\n\n"
    )


@bertprod_cli.command("init-config")
def init_config_cli(
    output_file: Path = Arg(..., help="File to write the config to, or - for stdout", allow_dash=True),
    task: str = Opt("ner", "--task", "-t", help=f"One of: {', '.join(TASKS)}"),
    encoder: Optional[str] = Opt(None, "--encoder", "-e", help="HF hub name or local directory of the encoder (default: the embedded MiniLM)"),
    gpu: bool = Opt(False, "--gpu", "-G", help="For a GPU: mixed precision, larger transformer calls and nlp.pipe batches"),
    lang: str = Opt("en", "--lang", "-l", help="Language code of the pipeline"),
) -> None:
    """Write a complete training config for TASK with bertprod components,
    from the configs shipped in the package (as `spacy init config` does for
    spaCy's own components). Check it with `spacy debug config`, train it
    with `spacy train`."""
    is_stdout = str(output_file) == "-"
    with coded_errors_exit():
        config, notes = init_config(task, encoder=encoder, gpu=gpu, lang=lang)
    for note in notes:  # stdout may be the config itself
        print(msg.text(note, icon="info", no_print=True), file=sys.stderr)
    text = header(task, output_file) + config.to_str()
    if is_stdout:
        print(text)
        return
    output_file.parent.mkdir(parents=True, exist_ok=True)
    output_file.write_text(text, encoding="utf8")
    msg.good("Saved config", str(output_file))
    train, dev = CORPUS_FILES.get(task, ("train.spacy", "dev.spacy"))
    print(f"{COMMAND} train {output_file} --output training --paths.train {train} --paths.dev {dev}")
