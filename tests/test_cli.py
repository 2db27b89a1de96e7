"""`python -m spacy bertprod ...`: the commands registered on spaCy's CLI,
run through spaCy's typer app (typer's CliRunner) on tiny pipelines and the
shipped samples; and `spacy train` / `spacy evaluate` on the shipped configs,
which project.yml calls directly."""

import json
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import spacy
from spacy.cli import app
from spacy.tokens import DocBin
from spacy.training import Corpus
from spacy.util import load_config
from typer.testing import CliRunner

from conftest import TRAIN_DATA, assert_varies, build_tiny_bert, make_examples
from spacy_bertprod.cli import bertprod_cli
from spacy_bertprod.cli.demo import DEMO_TEXTS
from spacy_bertprod.compression.pipelines import QUANTIZATION_INT8
from spacy_bertprod.pipeline.squad_metrics import exact_match
from spacy_bertprod.training.converters import conll_to_docs, sst2_to_docs, write_docbin

ROOT = Path(__file__).parent.parent
COMMANDS = ("init-config", "convert-all", "evaluate-squad", "distill", "quantize", "onnx", "meta", "demo", "annotate", "serve")
ANSI = re.compile(r"\x1b\[[0-9;]*m")

# the configs warm up over 100 steps: a few steps at that rate barely move a
# head that starts at zero
_FAST_LR = (
    "--training.optimizer.learn_rate.initial_rate",
    "1e-3",
    "--training.optimizer.learn_rate.warmup_steps",
    "1",
    "--training.optimizer.learn_rate.total_steps",
    "1000",
)


def bertprod(*args, exit_code: int = 0) -> str:
    """Run `spacy bertprod ARGS` in this process; its output without colours
    and with runs of whitespace as one space (wasabi wraps long messages)."""
    result = CliRunner().invoke(app, ["bertprod", *map(str, args)])
    output = " ".join(ANSI.sub("", result.output).split())
    assert result.exit_code == exit_code, output[-3000:] + (repr(result.exception) if exit_code == 0 else "")
    return output


def _run(*args, cwd=ROOT, env=None):
    out = subprocess.run([sys.executable, *args], cwd=cwd, capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    return out


def declared_cli_entry_point() -> str:
    """pyproject.toml's `bertprod` entry in [project.entry-points.spacy_cli]
    (read without tomllib, which Python 3.9 and 3.10 lack)."""
    text = (ROOT / "pyproject.toml").read_text(encoding="utf8")
    section = text.split("[project.entry-points.spacy_cli]\n", 1)[1].split("\n[", 1)[0]
    return re.search(r'^bertprod = "([^"]+)"$', section, flags=re.M).group(1)


def entry_point_path(tmp_path: Path) -> Path:
    """A folder to put on PYTHONPATH holding a distribution whose only entry
    point is pyproject's `spacy_cli` one: `python -m spacy` then finds the
    sub-app through the entry point as an installed package does, whether or
    not the editable install's metadata has been regenerated since."""
    dist = tmp_path / "site" / "spacy_bertprod_cli_check-0.0.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: spacy-bertprod-cli-check\nVersion: 0.0.0\n")
    (dist / "entry_points.txt").write_text(f"[spacy_cli]\nbertprod = {declared_cli_entry_point()}\n")
    return dist.parent


def test_the_entry_point_is_the_registered_sub_app():
    module, name = declared_cli_entry_point().split(":")
    assert (module, name) == ("spacy_bertprod.cli", "bertprod_cli")
    assert getattr(sys.modules[module], name) is bertprod_cli
    assert [g.typer_instance for g in app.registered_groups].count(bertprod_cli) == 1
    assert bertprod_cli.info.name == "bertprod"


def test_help_lists_the_commands():
    result = CliRunner().invoke(app, ["bertprod", "--help"])
    assert result.exit_code == 0
    out = result.output
    listed = re.findall(r"^  (\S+)\s", out.split("Commands:")[1], flags=re.M)
    assert sorted(listed) == sorted(COMMANDS)
    # spaCy's own wrappers are not repeated
    assert not {"train", "evaluate", "convert"} & set(listed)


def test_python_m_spacy_bertprod_help(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": f"{entry_point_path(tmp_path)}:{ROOT}"}
    out = _run("-m", "spacy", "--help", env=env)
    assert re.search(r"^\s+bertprod\s", out.stdout, flags=re.M)
    out = _run("-m", "spacy", "bertprod", "--help", env=env)
    assert out.stdout.startswith("Usage: python -m spacy bertprod")
    for command in COMMANDS:
        assert re.search(rf"^\s+{command}\s", out.stdout, flags=re.M), command
    out = _run("-m", "spacy", "bertprod", "quantize", "--help", env=env)
    assert "int8 dynamic quantization" in out.stdout


def test_project_makefile_and_readme_call_registered_commands():
    """project.yml, the Makefile (`make demo`), the README, the quick start and the docs pages name commands
    that exist: bertprod's, or spaCy's own."""
    ours = {c.name for c in bertprod_cli.registered_commands}
    spacys = {c.name or c.callback.__name__ for c in app.registered_commands} | {g.name or g.typer_instance.info.name for g in app.registered_groups}
    for name in ("project.yml", "Makefile", "README.md", "docs/usage/quickstart.md"):
        text = (ROOT / name).read_text(encoding="utf8")
        assert "-m spacy_bertprod" not in text, name
        called = re.findall(r"-m spacy bertprod ([\w-]+)", text)
        assert called and set(called) <= ours, (name, set(called) - ours)
        assert set(re.findall(r"-m spacy (\w[\w-]*)", text)) <= spacys, name
    # the docs site's pages may show no command, but those they show exist
    for page in sorted((ROOT / "docs").rglob("*.md")):
        text = page.read_text(encoding="utf8")
        assert set(re.findall(r"-m spacy bertprod ([\w-]+)", text)) <= ours, page
        assert set(re.findall(r"-m spacy (\w[\w-]*)", text)) <= spacys, page


def test_convert_all(tmp_path):
    data = tmp_path / "data"
    shutil.copytree(ROOT / "assets", data)
    (data / "squad" / "dev-v1.1.json").unlink()
    out = bertprod("convert-all", data, tmp_path / "corpus", "--limit", "5")
    corpus, vocab = tmp_path / "corpus", spacy.blank("en").vocab

    def read(path):
        return list(DocBin().from_disk(path).get_docs(vocab))

    for split in ("train", "dev", "test"):
        expected = conll_to_docs(data / "conll2003" / f"{split}.txt")[:5]
        docs = read(corpus / "ner" / f"{split}.spacy")
        assert [(d.text, [(e.start, e.end, e.label_) for e in d.ents]) for d in docs] == [(d.text, [(e.start, e.end, e.label_) for e in d.ents]) for d in expected]
    for split in ("train", "dev"):
        expected = sst2_to_docs(data / "sst2" / "glue" / f"{split}.tsv", spacy.blank("en"), limit=5)
        docs = read(corpus / "textcat" / f"{split}.spacy")
        assert len(docs) == 5 and [(d.text, d.cats) for d in docs] == [(d.text, d.cats) for d in expected]
    train_qa = data / "squad" / "train-subset-v1.1.json"
    assert (corpus / "qa" / "train.json").read_bytes() == train_qa.read_bytes()
    assert not (corpus / "qa" / "dev.json").exists()
    assert f"skip {data / 'squad' / 'dev-v1.1.json'} (not there)" in out
    assert f"✔ {data / 'conll2003' / 'train.txt'} -> {corpus / 'ner' / 'train.spacy'} (5 docs)" in out


def test_convert_all_one_task_needs_only_its_data(tmp_path):
    data = tmp_path / "data"
    shutil.copytree(ROOT / "assets" / "conll2003", data / "conll2003")
    bertprod("convert-all", data, tmp_path / "corpus", "--task", "ner")
    assert sorted(p.name for p in (tmp_path / "corpus").rglob("*.spacy")) == ["dev.spacy", "test.spacy", "train.spacy"]
    out = bertprod("convert-all", data, tmp_path / "corpus", "--task", "textcat", exit_code=1)
    assert "✘ [E085] The textcat data is missing" in out and str(data / "sst2" / "glue" / "train.tsv") in out
    out = bertprod("convert-all", data, tmp_path / "corpus", "--task", "pos", exit_code=1)
    assert "✘ [E084] Unknown task(s) ['pos']" in out


def test_convert_all_reads_sst2_from_the_downloaded_zip_and_the_full_squad_train(tmp_path):
    """The public assets land as SST-2.zip and train-v1.1.json."""
    data = tmp_path / "data"
    (data / "sst2").mkdir(parents=True)
    with zipfile.ZipFile(data / "sst2" / "SST-2.zip", "w") as archive:
        for split in ("train", "dev"):
            archive.write(ROOT / "assets" / "sst2" / "glue" / f"{split}.tsv", f"SST-2/{split}.tsv")
    shutil.copytree(ROOT / "assets" / "squad", data / "squad")
    (data / "squad" / "train-subset-v1.1.json").rename(data / "squad" / "train-v1.1.json")
    bertprod("convert-all", data, tmp_path / "corpus", "--task", "textcat", "--task", "qa")
    vocab = spacy.blank("en").vocab
    expected = sst2_to_docs(ROOT / "assets" / "sst2" / "glue" / "dev.tsv", spacy.blank("en"))
    docs = list(DocBin().from_disk(tmp_path / "corpus" / "textcat" / "dev.spacy").get_docs(vocab))
    assert [(d.text, d.cats) for d in docs] == [(d.text, d.cats) for d in expected]
    assert (tmp_path / "corpus" / "qa" / "train.json").read_bytes() == (data / "squad" / "train-v1.1.json").read_bytes()


def test_convert_all_of_the_shipped_sample(tmp_path, monkeypatch):
    """`sample`: the CoNLL-2003-format sample in the package (a pip install
    has no assets/); a folder of that name comes first; a missing one is E183."""
    monkeypatch.chdir(tmp_path)
    out = bertprod("convert-all", "sample", "corpus", "--task", "ner")
    sample = ROOT / "spacy_bertprod" / "samples" / "conll2003"
    assert f"the sample shipped in the package: {sample.parent}" in out
    for split in ("train", "dev", "test"):
        docs = list(DocBin().from_disk(tmp_path / "corpus" / "ner" / f"{split}.spacy").get_docs(spacy.blank("en").vocab))
        assert [d.text for d in docs] == [d.text for d in conll_to_docs(sample / f"{split}.txt")]
    out = bertprod("convert-all", "no-such-folder", "corpus", exit_code=1)
    assert "✘ [E183] The data folder 'no-such-folder' does not exist" in out
    (tmp_path / "sample").mkdir()
    out = bertprod("convert-all", "sample", "corpus", exit_code=1)
    assert "converting the folder 'sample', not the shipped sample" in out and "[E074]" in out


def test_convert_all_with_spacy_tokens(tmp_path, monkeypatch):
    """--spacy-tokens: the NER docs record their spaces, so spacy train tokenizes their text as the pipeline will."""
    monkeypatch.chdir(tmp_path)
    for flag, unknown in (((), True), (("--spacy-tokens",), False)):
        bertprod("convert-all", "sample", "corpus", "--task", "ner", *flag)
        docs = list(DocBin().from_disk(tmp_path / "corpus" / "ner" / "train.spacy").get_docs(spacy.blank("en").vocab))
        assert docs and {d.has_unknown_spaces for d in docs} == {unknown}


def test_convert_all_of_a_folder_without_datasets(tmp_path):
    out = bertprod("convert-all", tmp_path, tmp_path / "corpus", exit_code=1)
    assert "✘ [E074] Found none of the datasets under" in out
    assert not (tmp_path / "corpus").exists()


def test_spacy_train_and_evaluate(tmp_path, tiny_bert):
    for split in ("train", "dev"):
        write_docbin(conll_to_docs(ROOT / "assets" / "conll2003" / f"{split}.txt"), tmp_path / f"{split}.spacy")
    _run(
        "-m",
        "spacy",
        "train",
        "configs/ner.cfg",
        "--output",
        str(tmp_path / "out"),
        "--paths.train",
        str(tmp_path / "train.spacy"),
        "--paths.dev",
        str(tmp_path / "dev.spacy"),
        "--components.bertprod_ner.model.encoder.name",
        tiny_bert,
        "--components.bertprod_ner.model.encoder.window",
        "64",
        "--components.bertprod_ner.model.encoder.stride",
        "32",
        "--training.max_steps",
        "6",
        "--training.eval_frequency",
        "3",
        "--training.max_epochs",
        "0",
        *_FAST_LR,
    )
    assert (tmp_path / "out" / "model-best" / "bertprod_ner" / "model").exists()
    _run("-m", "spacy", "evaluate", str(tmp_path / "out" / "model-best"), str(tmp_path / "dev.spacy"), "--output", str(tmp_path / "metrics.json"))
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    # the figures are model-best's own scores on dev, and model-best was
    # trained: its tag probabilities depend on the input
    nlp = spacy.load(tmp_path / "out" / "model-best")
    dev = list(Corpus(str(tmp_path / "dev.spacy"))(nlp))
    scores = nlp.evaluate(dev)
    for key in ("ents_p", "ents_r", "ents_f"):
        assert metrics[key] == pytest.approx(scores[key]), key
    assert_varies(nlp.get_pipe("bertprod_ner").model.predict([eg.predicted for eg in dev[:3]]))


def test_spacy_train_qa_and_evaluate_squad(tmp_path, tiny_bert, trained_ner_path):
    from test_squad import SQUAD

    data = tmp_path / "squad.json"
    data.write_text(json.dumps(SQUAD))
    _run(
        "-m",
        "spacy",
        "train",
        "configs/qa.cfg",
        "--output",
        str(tmp_path / "out"),
        "--paths.train",
        str(data),
        "--paths.dev",
        str(data),
        "--components.bertprod_qa.model.encoder.name",
        tiny_bert,
        "--components.bertprod_qa.model.encoder.window",
        "64",
        "--components.bertprod_qa.model.encoder.stride",
        "32",
        "--components.bertprod_qa.model.doc_stride",
        "16",
        "--training.max_steps",
        "30",
        "--training.eval_frequency",
        "30",
        "--training.max_epochs",
        "0",
        "--training.dropout",
        "0.0",
        *_FAST_LR,
    )
    model = tmp_path / "out" / "model-last"
    nlp = spacy.load(model)
    qa = nlp.get_pipe("bertprod_qa")
    context = SQUAD["data"][0]["paragraphs"][0]["context"]
    # it learnt the training questions' answers (SQuAD's exact match)
    rows = SQUAD["data"][0]["paragraphs"][0]["qas"]
    for row in rows:
        answer = qa.answer(nlp.make_doc(context), row["question"])[0]
        assert max(exact_match(answer.text, a["text"]) for a in row["answers"]) == 1.0, (row["question"], answer.text)
    out = bertprod("evaluate-squad", model, data, "--output", tmp_path / "metrics" / "qa.json")
    scores = json.loads((tmp_path / "metrics" / "qa.json").read_text())
    assert scores == {"qa_exact": 1.0, "qa_f1": 1.0, "n_questions": len(rows)}
    assert re.search(r"EXACT\s+100\.00", out) and re.search(r"F1\s+100\.00", out)
    # the first question only
    bertprod("evaluate-squad", model, data, "--limit", "1", "--output", tmp_path / "one.json")
    assert json.loads((tmp_path / "one.json").read_text())["n_questions"] == 1
    # a pipeline without a QA component: a coded failure, no traceback
    out = bertprod("evaluate-squad", trained_ner_path, data, exit_code=1)
    assert "✘ [E077] The pipeline" in out and "['bertprod_ner']" in out


def demo(tmp_path, config, *args, exit_code: int = 0) -> str:
    """`spacy bertprod demo` with CONFIG on the shipped CoNLL sample, writing under tmp_path."""
    paths = ("--config", config, "--assets", ROOT / "assets" / "conll2003", "--corpus", tmp_path / "corpus", "--output", tmp_path / "out")
    return bertprod("demo", *paths, *args, exit_code=exit_code)


def test_demo_on_a_tiny_model(tmp_path, tiny_bert):
    config = load_config(ROOT / "configs" / "ner.cfg", interpolate=False)
    config["components"]["bertprod_ner"]["model"]["encoder"].update(name=tiny_bert, window=64, stride=32)
    config.to_disk(tmp_path / "ner.cfg")
    out = demo(tmp_path, tmp_path / "ner.cfg", "--steps", "6", "--training.optimizer.learn_rate.initial_rate", "1e-3")
    nlp = spacy.load(tmp_path / "out" / "model-best")
    for split in ("train", "dev"):  # the shipped sample, converted
        docs = list(DocBin().from_disk(tmp_path / "corpus" / f"{split}.spacy").get_docs(nlp.vocab))
        assert [d.text for d in docs] == [d.text for d in conll_to_docs(ROOT / "assets" / "conll2003" / f"{split}.txt")]
    assert "✔ trained in" in out
    training = nlp.config["training"]
    assert training["max_steps"] == 6 and training["optimizer"]["learn_rate"]["total_steps"] == 6
    assert training["optimizer"]["learn_rate"]["initial_rate"] == 1e-3  # the config override wins over the demo's 2e-4
    # it prints what the trained pipeline finds in each demo text
    for doc in nlp.pipe(DEMO_TEXTS):
        ents = ", ".join(f"{e.text} [{e.label_} {e._.bertprod_score:.2f}]" for e in doc.ents)
        assert f"{doc.text} -> {ents or '(no entities)'} " in out + " "
    assert_varies(nlp.get_pipe("bertprod_ner").model.predict([nlp.make_doc(t) for t in DEMO_TEXTS]))


def test_demo_in_an_empty_folder_uses_the_shipped_config_and_sample(tmp_path, tiny_bert, monkeypatch):
    """After a pip install there is no configs/ or assets/: the demo's
    defaults are the package's own config and CoNLL sample."""
    monkeypatch.chdir(tmp_path)
    encoder = "--components.bertprod_ner.model.encoder"
    bertprod("demo", "--steps", "2", f"{encoder}.name", tiny_bert, f"{encoder}.window", "64", f"{encoder}.stride", "32")
    nlp = spacy.load(tmp_path / "training" / "ner-demo" / "model-best")
    sample = ROOT / "spacy_bertprod" / "samples" / "conll2003"
    docs = list(DocBin().from_disk(tmp_path / "corpus" / "ner-sample" / "train.spacy").get_docs(nlp.vocab))
    assert [d.text for d in docs] == [d.text for d in conll_to_docs(sample / "train.txt")]
    assert nlp.config["components"]["bertprod_ner"]["model"]["encoder"]["window"] == 64
    assert nlp.config["nlp"]["pipeline"] == ["bertprod_ner"]


def test_demo_with_an_invalid_encoder_setting(tmp_path, tiny_bert):
    out = demo(
        tmp_path,
        ROOT / "configs" / "ner.cfg",
        "--steps",
        "2",
        "--components.bertprod_ner.model.encoder.name",
        tiny_bert,
        "--components.bertprod_ner.model.encoder.stride",
        "0",
        exit_code=1,
    )
    assert re.search(r"✘ \[E\d{3}\] .*stride", out)


def test_distill(trained_ner_path, tmp_path):
    teacher = spacy.load(trained_ner_path)
    DocBin(docs=[eg.reference for eg in make_examples(teacher)]).to_disk(tmp_path / "train.spacy")
    (tmp_path / "plain.txt").write_text("\n".join(t for t, _ in TRAIN_DATA) + "\n\n", encoding="utf8")
    out = bertprod(
        "distill",
        trained_ner_path,
        tmp_path / "student",
        "--train",
        tmp_path / "train.spacy",
        "--dev",
        tmp_path / "train.spacy",
        "--unlabelled",
        tmp_path / "plain.txt",
        "--n-layers",
        "1",
        "--steps",
        "10",
        "--eval-every",
        "5",
        "--lr",
        "1e-3",
    )
    assert "12 training examples (6 unlabelled)" in out
    student = spacy.load(tmp_path / "student" / "model-last")
    assert student.meta["bertprod"]["distillation"]["layers"] == {"bertprod_ner": [0]}
    # a student on another encoder
    narrow = str(build_tiny_bert(tmp_path / "narrow", layers=1, width=16, seed=1))
    out = bertprod("distill", trained_ner_path, tmp_path / "narrow-student", "--train", tmp_path / "train.spacy", "--encoder", narrow, "--steps", "5", "--eval-every", "5")
    assert f"student on encoder {narrow}" in out
    assert spacy.load(tmp_path / "narrow-student" / "model-last").get_pipe("bertprod_ner").model.get_ref("encoder").get_dim("nO") == 16
    # --corpus: train.spacy and dev.spacy found in a folder
    (tmp_path / "corpus").mkdir()
    shutil.copyfile(tmp_path / "train.spacy", tmp_path / "corpus" / "train.spacy")
    DocBin(docs=[eg.reference for eg in make_examples(teacher)[:2]]).to_disk(tmp_path / "corpus" / "dev.spacy")
    out = bertprod("distill", trained_ner_path, tmp_path / "corpus-student", "--corpus", tmp_path / "corpus", "--layers", "1", "--steps", "4", "--eval-every", "2")
    assert "6 training examples (0 unlabelled), 2 dev examples" in out
    best = spacy.load(tmp_path / "corpus-student" / "model-best")
    assert best.meta["bertprod"]["distillation"]["layers"] == {"bertprod_ner": [1]}
    assert "ents_f" in best.meta["performance"]  # scored on the corpus's dev set
    # an ensemble: the soft targets of two teachers, averaged in the cache
    other = tmp_path / "student" / "model-last"
    out = bertprod("distill", trained_ner_path, tmp_path / "ensemble-student", "--corpus", tmp_path / "corpus", "--n-layers", "1", "--ensemble", other, "--steps", "2", "--eval-every", "2")
    assert f"ensemble of 2 teachers: {trained_ner_path}, {other}" in out
    assert "teacher cache bertprod_ner: ensemble teacher 2 of 2" in out
    assert spacy.load(tmp_path / "ensemble-student" / "model-last").meta["bertprod"]["distillation"]["ensemble"] == 2


def test_distill_mistakes_are_coded_failures(trained_ner_path, tmp_path):
    (tmp_path / "empty.txt").write_text("\n", encoding="utf8")
    out = bertprod("distill", trained_ner_path, tmp_path / "student", "--unlabelled", tmp_path / "empty.txt", "--n-layers", "1", exit_code=1)
    assert "✘ [E027] No training data for distillation" in out
    out = bertprod("distill", trained_ner_path, tmp_path / "student", "--unlabelled", tmp_path / "empty.txt", "--layers", "0,two", exit_code=1)
    assert "✘ [E075] --layers '0,two' is not a list of teacher layers" in out
    (tmp_path / "plain.txt").write_text("John Smith works in London.\n", encoding="utf8")
    out = bertprod("distill", trained_ner_path, tmp_path / "student", "--unlabelled", tmp_path / "plain.txt", "--ensemble", trained_ner_path, "--no-cache-teacher", exit_code=1)
    assert "✘ [E186] Cannot distil as asked: an ensemble's soft targets are the mean of its teachers' cached scores" in out
    spacy.blank("en").to_disk(tmp_path / "blank")
    out = bertprod("distill", trained_ner_path, tmp_path / "student", "--unlabelled", tmp_path / "plain.txt", "--ensemble", tmp_path / "blank", exit_code=1)
    assert "✘ [E197] Cannot distil from an ensemble: teacher 2's component 'bertprod_ner' is missing" in out
    assert not (tmp_path / "student").exists()


def _ents(nlp):
    return [[(e.start, e.end, e.label_) for e in d.ents] for d in nlp.pipe(t for t, _ in TRAIN_DATA)]


def _max_diff(nlp, reference):
    probe = [nlp.make_doc(t) for t, _ in TRAIN_DATA]
    pairs = zip(nlp.get_pipe("bertprod_ner").model.predict(probe), reference.get_pipe("bertprod_ner").model.predict(probe))
    return max(float(np.abs(a - b).max()) for a, b in pairs)


def test_quantize_command(tmp_path, trained_ner_path):
    out = bertprod("quantize", trained_ner_path, tmp_path / "int8")
    assert f"✔ int8-quantized the encoders of ['bertprod_ner']: saved to {tmp_path / 'int8'}" in out
    nlp, fp32 = spacy.load(tmp_path / "int8"), spacy.load(trained_ner_path)
    assert nlp.meta["bertprod"]["compression"]["quantization"] == QUANTIZATION_INT8
    assert nlp.meta["bertprod"]["compression"]["components"] == ["bertprod_ner"]
    assert 0 < _max_diff(nlp, fp32) < 0.1  # int8, not the fp32 model


def test_quantize_and_onnx_need_a_bertprod_encoder(tmp_path):
    spacy.blank("en").to_disk(tmp_path / "blank")
    for command, action in (("quantize", "quantize"), ("onnx", "export to ONNX")):
        out = bertprod(command, tmp_path / "blank", tmp_path / "out", exit_code=1)
        assert f"✘ [E076] The pipeline '{tmp_path / 'blank'}' has no bertprod encoder to {action}" in out
    assert not (tmp_path / "out").exists()


def test_onnx_command(tmp_path, trained_ner_path):
    out = bertprod("onnx", trained_ner_path, tmp_path / "int8", "--int8")
    assert "✔ exported the encoders of ['bertprod_ner'] to int8 ONNX" in out
    nlp, torch_nlp = spacy.load(tmp_path / "int8"), spacy.load(trained_ner_path)
    assert nlp.config["components"]["bertprod_ner"]["model"]["encoder"]["backend"] == "onnx-int8"
    expected = _ents(torch_nlp)
    assert all(expected) and _ents(nlp) == expected
    assert 0 < _max_diff(nlp, torch_nlp) < 0.1  # int8, not the fp32 model


def test_onnx_command_inference_only(tmp_path, trained_ner_path):
    out = bertprod("onnx", trained_ner_path, tmp_path / "lean", "--int8", "--inference-only")
    assert "✔ exported the encoders of ['bertprod_ner'] to int8 ONNX (onnxruntime backend, inference only (no torch weights))" in out
    nlp = spacy.load(tmp_path / "lean")
    assert nlp.meta["bertprod"]["compression"]["inference_only"] is True
    assert _ents(nlp) == _ents(spacy.load(trained_ner_path))


def test_convert_all_of_a_text_file_posing_as_conll(tmp_path):
    """Prose where CoNLL-2003 columns belong: a short coded message and exit
    1, not spaCy's misleading E177 traceback."""
    (tmp_path / "conll2003").mkdir()
    (tmp_path / "conll2003" / "train.txt").write_text("Angela Merkel visited Paris.\nIt rained.\n", encoding="utf8")
    out = bertprod("convert-all", tmp_path, tmp_path / "corpus", exit_code=1)
    assert "✘ [E080] Line 1 of" in out and "is not a CoNLL-2003 token line" in out


def test_meta_writes_the_pipelines_own_scores_and_package_fields(tmp_path, trained_ner_path):
    pipeline = tmp_path / "pipeline"
    shutil.copytree(trained_ner_path, pipeline)
    scores = tmp_path / "scores.json"
    scores.write_text(json.dumps({"token_acc": 1.0, "ents_f": 0.5, "ents_per_type": {"PER": {"p": 1.0, "r": 0.5, "f": 0.6}}, "speed": 1234.0, "bertprod_ner_loss": 3.0}))
    bertprod("meta", pipeline, "--scores", scores, "--name", "bertprod_ner", "--description", "NER on MiniLM", "--license", "MIT", "-r", "spacy-bertprod[train]>=0.1")
    meta = json.loads((pipeline / "meta.json").read_text())
    assert meta["performance"] == {"token_acc": 1.0, "ents_f": 0.5, "ents_per_type": {"PER": {"p": 1.0, "r": 0.5, "f": 0.6}}}
    assert (meta["name"], meta["description"], meta["license"], meta["requirements"]) == ("bertprod_ner", "NER on MiniLM", "MIT", ["spacy-bertprod[train]>=0.1"])
    before = (pipeline / "meta.json").read_bytes()
    bertprod("meta", pipeline, "--name", "other", "--output", tmp_path / "package-meta.json")
    assert (pipeline / "meta.json").read_bytes() == before  # --output leaves the pipeline as it is
    assert json.loads((tmp_path / "package-meta.json").read_text())["name"] == "other"
    out = bertprod("meta", pipeline, "--scores", tmp_path / "missing.json", exit_code=1)
    assert "✘ [E087] The scores file" in out
    out = bertprod("meta", tmp_path, exit_code=1)
    assert "✘ [E086]" in out


def test_render_html_draws_the_pipelines_entities(trained_ner_path, tmp_path):
    """scripts/render_html.py (project.yml's evaluate -> metrics/<task>.html):
    spaCy's --displacy-path draws nothing for a bertprod_ner pipeline; this
    page shows each text with the entities the pipeline found."""
    nlp = spacy.load(trained_ner_path)
    corpus = tmp_path / "test.spacy"
    DocBin(docs=[nlp.make_doc(text) for text, _ in TRAIN_DATA]).to_disk(corpus)
    out = tmp_path / "metrics" / "ner.html"
    subprocess.run([sys.executable, str(ROOT / "scripts/render_html.py"), str(trained_ner_path), str(corpus), str(out), "--limit", "2"], check=True)
    html = out.read_text(encoding="utf8")
    drawn = [nlp(text) for text, _ in TRAIN_DATA[:2]]
    assert any(doc.ents for doc in drawn), "the trained tiny pipeline should find entities in its training texts"
    for doc in drawn:
        for ent in doc.ents:
            # displaCy's ent markup: the span's text, then its label in a span
            assert re.search(re.escape(ent.text) + r"\s*<span[^>]*>" + ent.label_ + "</span>", html), (ent.text, ent.label_)
    assert "Warsaw" not in html  # --limit 2: the third text is not drawn


#: `python -m spacy ARGS` after the blocker of test_lean.WITHOUT_TORCH
SPACY_CLI = "from spacy.cli import setup_cli\nsys.argv[0] = 'spacy'\nsetup_cli()\n"


@pytest.mark.parametrize("command", [("init-config", "config.cfg", "--task", "ner"), ("demo", "--steps", "1")], ids=lambda c: c[0])
def test_a_missing_extra_is_a_coded_failure_naming_it(command, tmp_path):
    """Without the `train` extra, a command that needs torch ends with the
    coded message naming the extra and exit status 1, not a traceback."""
    from test_lean import run_without_torch

    out = run_without_torch(SPACY_CLI, tmp_path, "bertprod", *command)
    assert out.returncode == 1, out.stdout[-2000:] + out.stderr[-3000:]
    err = " ".join(out.stderr.split())  # wasabi wraps
    assert "✘ [E101]" in err and 'pip install "spacy-bertprod[train]"' in err
    assert "Traceback" not in err
    assert not (tmp_path / "config.cfg").exists()


@pytest.mark.parametrize(("module", "code"), [("torch.nn", "[E100] This needs torch"), ("fastapi", '[E180] This needs fastapi, which is not installed. Run `pip install "spacy-bertprod[serve]"`')])
def test_coded_errors_exit_names_the_extra_of_a_missing_module(module, code, capsys):
    from spacy_bertprod.cli._util import coded_errors_exit

    with pytest.raises(SystemExit) as exit_:
        with coded_errors_exit():
            raise ModuleNotFoundError(f"No module named {module!r}", name=module)
    assert exit_.value.code == 1
    assert code in " ".join(capsys.readouterr().err.split())  # wasabi wraps
    # any other import failure is a bug: its traceback is kept
    with pytest.raises(ModuleNotFoundError):
        with coded_errors_exit():
            raise ModuleNotFoundError("No module named 'numpyy'", name="numpyy")
