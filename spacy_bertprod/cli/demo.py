"""`bertprod demo` (`make demo`, the README's first command): convert the
shipped CoNLL-2003-format sample, train bertprod_ner on it for a few steps
with `spacy train`, and print what the trained pipeline finds in a few
sentences. The sample and the config are package data, so the demo runs in
an empty folder after `pip install "spacy-bertprod[train]"`."""

import time
from pathlib import Path
from typing import Any, Dict, Optional

import spacy
import typer
from spacy.cli._util import Opt, parse_config_overrides
from spacy.cli.train import train
from wasabi import msg

from ..training.converters import conll_to_docs, write_docbin
from ._util import bertprod_cli, coded_errors_exit
from .convert import SAMPLES_DIR
from .init_config import shipped_config_path

#: the CoNLL-2003-format sample shipped in the package (made up by
#: scripts/make_samples.py; the repository's assets/conll2003 links here)
SAMPLE_DIR = SAMPLES_DIR / "conll2003"

DEMO_TEXTS = [
    "Angela Merkel visited the Siemens plant in Munich.",
    "Kenji Tanaka told Reuters that talks would resume in Oslo.",
    "Shares of Nokia rose 3 percent in Toronto trading.",
]


def demo_overrides(corpus: Path, steps: int) -> Dict[str, Any]:
    """A short run: `steps` updates at a learning rate that moves a head
    starting at zero in that time (the config's warm-up is 100 steps)."""
    return {
        "paths.train": str(corpus / "train.spacy"),
        "paths.dev": str(corpus / "dev.spacy"),
        "training.max_epochs": 0,
        "training.max_steps": steps,
        "training.eval_frequency": max(steps // 4, 1),
        "training.batcher.size": 300,
        "training.optimizer.learn_rate.warmup_steps": max(steps // 10, 1),
        "training.optimizer.learn_rate.total_steps": steps,
        "training.optimizer.learn_rate.initial_rate": 2e-4,
    }


@bertprod_cli.command("demo", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def demo_cli(
    ctx: typer.Context,  # extra options: config overrides, e.g. --training.batcher.size 500
    config_path: Optional[Path] = Opt(None, "--config", "-c", help="NER training config (default: the shipped ner config)", exists=True, dir_okay=False),
    assets: Optional[Path] = Opt(None, "--assets", help="Folder with CoNLL-2003-format train.txt and dev.txt (default: the shipped sample)", exists=True, file_okay=False),
    corpus: Path = Opt(Path("corpus/ner-sample"), "--corpus", help="Where the converted sample goes"),
    output_path: Path = Opt(Path("training/ner-demo"), "--output", "-o", help="Output folder of `spacy train`"),
    steps: int = Opt(120, "--steps", help="Training steps"),
    use_gpu: int = Opt(-1, "--gpu-id", "-g", help="GPU ID or -1 for CPU"),
) -> None:
    """Train bertprod_ner on the shipped CoNLL-2003 sample with the embedded
    MiniLM and print the entities of a few sentences. Extra --section.key
    options override the config, as in `spacy train`."""
    overrides = {**demo_overrides(corpus, steps), **parse_config_overrides(ctx.args)}
    config_path = config_path or shipped_config_path("ner")
    assets = assets or SAMPLE_DIR
    for split in ("train", "dev"):
        write_docbin(conll_to_docs(assets / f"{split}.txt"), corpus / f"{split}.spacy")
    start = time.perf_counter()
    with coded_errors_exit():
        train(config_path, output_path, use_gpu=use_gpu, overrides=overrides)
    msg.good(f"trained in {time.perf_counter() - start:.0f} s")
    nlp = spacy.load(output_path / "model-best")
    for doc in nlp.pipe(DEMO_TEXTS):
        ents = ", ".join(f"{e.text} [{e.label_} {e._.bertprod_score:.2f}]" for e in doc.ents)
        print(f"{doc.text}\n    -> {ents or '(no entities)'}")
