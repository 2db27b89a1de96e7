"""`bertprod distill`: a smaller copy of a trained pipeline. The work is done
by training/distiller.py; this command reads the data, checks what the user
asked for and reports."""

import sys
import time
from pathlib import Path
from typing import List, Optional, Sequence

import spacy
from spacy.cli._util import Arg, Opt, setup_gpu
from spacy.language import Language
from spacy.training import Corpus, Example
from wasabi import msg

from ..errors import Errors
from ..training.distiller import distill, make_student
from ..training.squad import squad_corpus
from ..training.students import CnnSettings, make_cnn_student
from ._util import bertprod_cli, coded_errors_exit


def read_examples(nlp: Language, path: Path, limit: int = 0) -> List[Example]:
    """Examples from a .spacy corpus, SQuAD-format JSON, or plain text (one
    text per line, unlabelled: soft targets only)."""
    if path.suffix == ".json":
        examples = list(squad_corpus(str(path), limit=limit)(nlp))
    elif path.suffix == ".spacy":
        examples = list(Corpus(str(path), limit=limit)(nlp))
    else:
        lines = [line.strip() for line in path.read_text(encoding="utf8").splitlines() if line.strip()]
        examples = [Example(nlp.make_doc(t), nlp.make_doc(t)) for t in lines]
    return examples[:limit] if limit else examples


def parse_layers(value: Optional[str]) -> Optional[List[int]]:
    """`--layers 0,2,5` -> [0, 2, 5]."""
    if not value:
        return None
    try:
        return [int(x) for x in value.split(",")]
    except ValueError:
        raise ValueError(Errors.E075.format(value=value)) from None


def _in_corpus(corpus: Optional[Path], split: str) -> Optional[Path]:
    """CORPUS/<split>.spacy, else CORPUS/<split>.json, if there."""
    if corpus is None:
        return None
    return next((p for p in (corpus / f"{split}.spacy", corpus / f"{split}.json") if p.exists()), None)


STUDENTS = ("cnn",)
CNN_FLAGS = {
    "--cnn-width": "width",
    "--cnn-depth": "depth",
    "--cnn-embed-rows": "embed_rows",
    "--cnn-window": "window_size",
    "--cnn-wordpiece-dims": "wordpiece_dims",
    "--cnn-wordpiece-table": "wordpiece_table",
}


def check_student(kind: Optional[str], layers: Optional[str], n_layers: Optional[int], encoder: Optional[str], cnn_flags: Sequence[str] = ()) -> bool:
    """Whether `--student` asks for a CNN student (alone: E186); `cnn_flags`
    are the --cnn-* options given, refused without it."""
    if kind is None:
        if cnn_flags:
            raise ValueError(Errors.E186.format(why=f"{', '.join(cnn_flags)} only shape a CNN student: add `--student cnn`, or leave them out"))
        return False
    if kind not in STUDENTS:
        raise ValueError(Errors.E186.format(why=f"--student takes {', '.join(STUDENTS)}, not {kind!r}"))
    if layers is not None or n_layers is not None or encoder is not None:
        raise ValueError(Errors.E186.format(why="a `--student cnn` takes none of --layers, --n-layers or --encoder (those build a transformer student): leave them out"))
    return True


@bertprod_cli.command("distill")
def distill_cli(
    teacher_path: Path = Arg(..., help="Trained teacher pipeline folder", exists=True, file_okay=False),
    output_path: Path = Arg(..., help="Folder for model-best and model-last"),
    corpus: Optional[Path] = Opt(None, "--corpus", "-c", help="Folder with train and dev .spacy or .json (e.g. corpus/ner)", exists=True, file_okay=False),
    train_path: Optional[Path] = Opt(None, "--train", help=".spacy corpus or SQuAD-format JSON (gold and soft targets)", exists=True, dir_okay=False),
    unlabelled_path: Optional[Path] = Opt(None, "--unlabelled", help="Plain text, one text per line (soft targets only)", exists=True, dir_okay=False),
    dev_path: Optional[Path] = Opt(None, "--dev", help=".spacy corpus or SQuAD-format JSON for model-best", exists=True, dir_okay=False),
    train_limit: int = Opt(0, "--train-limit", help="Training examples to read from each file (0: all)"),
    dev_limit: int = Opt(0, "--dev-limit", help="Dev examples to read (0: all)"),
    layers: Optional[str] = Opt(None, "--layers", help="Teacher layers the student keeps, e.g. 0,2,5"),
    n_layers: Optional[int] = Opt(None, "--n-layers", help="Or: how many teacher layers, spread evenly"),
    encoder: Optional[str] = Opt(None, "--encoder", help="Or: a student on another (e.g. narrower) pretrained encoder, HF name or local path; heads start fresh"),
    student_kind: Optional[str] = Opt(None, "--student", help="Or: 'cnn', a student on spaCy's CNN tok2vec (spacy.Tok2Vec.v2) instead of a transformer; heads start fresh"),
    cnn_width: int = Opt(CnnSettings.width, "--cnn-width", help="CNN student: width of the embeddings and encoder layers"),
    cnn_depth: int = Opt(CnnSettings.depth, "--cnn-depth", help="CNN student: MaxoutWindowEncoder layers"),
    cnn_embed_rows: int = Opt(CnnSettings.embed_rows, "--cnn-embed-rows", help="CNN student: hash embedding rows for NORM (PREFIX 1/5, SUFFIX and SHAPE 1/2 of it)"),
    cnn_window: int = Opt(CnnSettings.window_size, "--cnn-window", help="CNN student: tokens each side each encoder layer sees"),
    cnn_wordpiece_dims: int = Opt(CnnSettings.wordpiece_dims, "--cnn-wordpiece-dims", help="CNN student: static wordpiece vectors from the teacher's input embeddings, this many columns (0: off)"),
    cnn_wordpiece_table: str = Opt(CnnSettings.wordpiece_table, "--cnn-wordpiece-table", help="CNN student: the wordpiece vectors' table, 'teacher' or 'random' (a control)"),
    cache: Optional[bool] = Opt(None, "--cache-teacher/--no-cache-teacher", help="Score the training texts with the teacher once, first (default: on for --student cnn, --cache-file or --ensemble)"),
    cache_file: Optional[Path] = Opt(None, "--cache-file", help="Keep the teacher cache in this .npz file: read when it holds the same texts and teacher, else written", dir_okay=False),
    ensemble: Optional[List[Path]] = Opt(None, "--ensemble", help="Another teacher (repeatable): soft targets are the teachers' mean score (cached)", exists=True, file_okay=False),
    steps: int = Opt(1000, "--steps", help="Updates"),
    batch_words: int = Opt(1000, "--batch-words", help="Words per batch"),
    learn_rate: Optional[float] = Opt(None, "--lr", help="Learning rate (default: 1e-4, 1e-3 for --student cnn)"),
    temperature: float = Opt(2.0, "--temperature", help="Softening temperature of the soft targets"),
    soft_weight: float = Opt(0.5, "--soft-weight", help="Weight of the soft-target loss"),
    gold_weight: float = Opt(0.5, "--gold-weight", help="Weight of the gold loss"),
    hidden_weight: float = Opt(0.0, "--hidden-weight", help="Weight of the MSE between student and teacher hidden states (0: off)"),
    eval_every: int = Opt(200, "--eval-every", help="Evaluate on dev (and save model-best) every N steps"),
    seed: int = Opt(0, "--seed", help="Random seed"),
    use_gpu: int = Opt(-1, "--gpu-id", "-g", help="GPU ID or -1 for CPU"),
) -> None:
    """Train a smaller student pipeline to match a trained teacher: fewer
    transformer layers (--layers / --n-layers), another encoder (--encoder)
    or spaCy's CNN tok2vec (--student cnn), soft targets plus gold loss."""
    setup_gpu(use_gpu)
    train_path = train_path or _in_corpus(corpus, "train")
    dev_path = dev_path or _in_corpus(corpus, "dev")
    with coded_errors_exit():
        keep = parse_layers(layers)
        settings = CnnSettings(width=cnn_width, depth=cnn_depth, embed_rows=cnn_embed_rows, window_size=cnn_window, wordpiece_dims=cnn_wordpiece_dims, wordpiece_table=cnn_wordpiece_table)
        changed = [flag for flag, field in CNN_FLAGS.items() if getattr(settings, field) != getattr(CnnSettings, field)]
        cnn = check_student(student_kind, layers, n_layers, encoder, changed)
        teacher = spacy.load(teacher_path)
        others = [spacy.load(path) for path in ensemble or []]
        train = read_examples(teacher, train_path, train_limit) if train_path else []
        plain = read_examples(teacher, unlabelled_path, train_limit) if unlabelled_path else []
        train += plain
        dev = read_examples(teacher, dev_path, dev_limit) if dev_path else []
        if not train:
            raise ValueError(Errors.E027)
        if cnn:
            student = make_cnn_student(teacher, settings, get_examples=lambda: train)
        else:
            student = make_student(teacher, layers=keep, n_layers=n_layers, encoder=encoder, get_examples=lambda: train)
        done = student.meta["bertprod"]["distillation"]
        if cnn:
            msg.info(f"teacher {teacher_path} -> CNN student (spacy.Tok2Vec.v2, {done['cnn']}) for {done['components']}")
        else:
            msg.info(f"teacher {teacher_path} -> student " + (f"on encoder {done['encoder']}" if encoder else f"keeping layers {done['layers']}"))
        if others:
            msg.info(f"ensemble of {len(others) + 1} teachers: {', '.join(str(p) for p in [teacher_path, *(ensemble or [])])}")
        msg.info(f"{len(train)} training examples ({len(plain)} unlabelled), {len(dev)} dev examples")
        start = time.perf_counter()
        best = distill(
            teacher,
            student,
            train,
            dev,
            output=output_path,
            steps=steps,
            batch_words=batch_words,
            learn_rate=learn_rate if learn_rate is not None else (1e-3 if cnn else 1e-4),
            temperature=temperature,
            soft_weight=soft_weight,
            gold_weight=gold_weight,
            hidden_weight=hidden_weight,
            eval_every=eval_every,
            seed=seed,
            log=msg.text,
            progress=sys.stderr.isatty(),
            cache_teacher_scores=(cnn or cache_file is not None or bool(others)) if cache is None else cache,
            cache_file=cache_file,
            ensemble=others,
        )
    msg.good(f"distilled in {time.perf_counter() - start:.0f} s; best dev score {best['score']:.4f} at step {best.get('step')}")
    msg.good(f"Saved pipeline to {output_path / 'model-best'} and {output_path / 'model-last'}")
