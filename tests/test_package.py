"""`spacy package` of a bertprod pipeline, built as the project's package step
builds it (the pipeline's wheel and spacy-bertprod's beside it), installs as
the README says and loads by name in a fresh process outside the checkout,
its components found through the spacy-bertprod entry points."""

import json
import shlex
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import spacy
import srsly
from packaging.requirements import Requirement

from conftest import TRAIN_DATA, assert_varies, copy_sources

ROOT = Path(__file__).resolve().parent.parent


def package_requirement() -> str:
    """The requirement the project's package step writes into the meta
    (`bertprod meta --requirement`), read from project.yml."""
    (command,) = [c for c in srsly.read_yaml(ROOT / "project.yml")["commands"] if c["name"] == "package"]
    (meta,) = [shlex.split(line) for line in command["script"] if " bertprod meta " in line]
    return meta[meta.index("--requirement") + 1]


def build_packages(pipeline: Path, packages: Path) -> list:
    """The project's `package` step: bertprod meta (the requirement), spacy
    package (no build), then pip wheel of the package and of spacy-bertprod,
    into `packages`."""
    packages.mkdir()
    run = [sys.executable, "-m"]
    meta = packages / "meta.json"
    subprocess.run([*run, "spacy", "bertprod", "meta", str(pipeline), "--output", str(meta), "--name", "bertprod_test", "--requirement", package_requirement()], check=True, capture_output=True)
    name = ["--name", "bertprod_test", "--version", "0.0.1"]
    subprocess.run([*run, "spacy", "package", str(pipeline), str(packages), "--meta-path", str(meta), *name, "--build", "none", "--force"], check=True, capture_output=True)
    wheel = [*run, "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation", "--wheel-dir"]
    subprocess.run([*wheel, str(packages / "en_bertprod_test-0.0.1" / "dist"), str(packages / "en_bertprod_test-0.0.1")], check=True, capture_output=True)
    source = copy_sources(ROOT, packages.parent / "source")  # not the checkout: see copy_sources
    subprocess.run([*wheel, str(packages), str(source)], check=True, capture_output=True)
    return sorted(packages.glob("*.whl")) + sorted(packages.glob("*/dist/*.whl"))


def wheel_metadata(wheel: Path) -> str:
    with zipfile.ZipFile(wheel) as archive:
        (name,) = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        return archive.read(name).decode("utf8")


def test_package_wheels_install_and_load_outside_the_checkout(tmp_path, trained_ner_path):
    nlp = spacy.load(trained_ner_path)
    wheels = build_packages(trained_ner_path, tmp_path / "packages")
    assert [w.name.split("-")[0] for w in wheels] == ["spacy_bertprod", "en_bertprod_test"]
    listing = subprocess.run([sys.executable, "-m", "zipfile", "-l", str(wheels[1])], capture_output=True, text=True, check=True)
    assert "bertprod_ner/model" in listing.stdout
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), *map(str, wheels)], check=True)
    requires = (next(target.glob("en_bertprod_test-*.dist-info")) / "METADATA").read_text()
    assert "Requires-Dist: spacy-bertprod" in requires
    # the wheel carries the trained weights: the same entities and tag
    # probabilities as the pipeline it was built from, which are not constant
    texts = [t for t, _ in TRAIN_DATA]
    probs = nlp.get_pipe("bertprod_ner").model.predict([nlp.make_doc(t) for t in texts])
    assert_varies(probs)
    expected = [[(e.start, e.end, e.label_) for e in doc.ents] for doc in nlp.pipe(texts)]
    assert all(expected)
    script = (
        "import json, sys, spacy\n"
        f"sys.path.insert(0, {str(target)!r})\n"
        "nlp = spacy.load('en_bertprod_test')\n"
        "import spacy_bertprod\n"
        "assert spacy_bertprod.__file__.startswith(sys.path[0]), spacy_bertprod.__file__\n"
        f"texts = {texts!r}\n"
        "probs = nlp.get_pipe('bertprod_ner').model.predict([nlp.make_doc(t) for t in texts])\n"
        "ents = [[(e.start, e.end, e.label_) for e in doc.ents] for doc in nlp.pipe(texts)]\n"
        "print(json.dumps({'ents': ents, 'probs': [p.tolist() for p in probs]}))\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, cwd=tmp_path)
    got = json.loads(out.stdout)
    assert [[tuple(e) for e in doc] for doc in got["ents"]] == expected
    for a, b in zip(got["probs"], probs):
        np.testing.assert_allclose(np.asarray(a, dtype="float32"), b, atol=1e-6)


def test_the_pipelines_requirement_is_met_by_the_wheel_beside_it(tmp_path, trained_ner_path):
    """`pip install packages/*.whl`: the pipeline's wheel requires
    spacy-bertprod[train] (the package step's meta), which is on no package
    index; pip must find spacy-bertprod among the wheels given (before the
    package step built it: "No matching distribution found for
    spacy-bertprod"), and the [train] extra's requirements must resolve.
    Offline: the requirement as the pipeline's METADATA states it, resolved
    against packages/ alone; then the requirements the spacy-bertprod wheel
    states for [train], resolved by pip against this environment with no
    index (what a user's install would take from the index is here already
    installed; a requirement this environment cannot meet fails)."""
    wheels = build_packages(trained_ner_path, tmp_path / "packages")
    (requirement,) = [line.split(": ", 1)[1] for line in wheel_metadata(wheels[1]).splitlines() if line.startswith("Requires-Dist: spacy-bertprod")]
    assert Requirement(requirement) == Requirement(package_requirement())
    assert Requirement(requirement).extras == {"train"}
    report = tmp_path / "report.json"
    pip = [sys.executable, "-m", "pip", "install", "--dry-run", "--no-index", "--report", str(report)]
    out = subprocess.run([*pip, "--ignore-installed", "--no-deps", "--find-links", str(tmp_path / "packages"), requirement], check=True, capture_output=True, text=True, cwd=tmp_path)
    (chosen,) = json.loads(report.read_text())["install"]
    assert chosen["download_info"]["url"] == wheels[0].as_uri()
    assert "does not provide the extra" not in out.stdout + out.stderr
    # what spacy-bertprod[train] requires, as its wheel says
    metadata = wheel_metadata(wheels[0])
    assert "Provides-Extra: train" in metadata.splitlines()
    needs = [Requirement(line.split(": ", 1)[1]) for line in metadata.splitlines() if line.startswith("Requires-Dist: ")]
    train_needs = [r for r in needs if r.marker is None or r.marker.evaluate({"extra": "train"})]
    assert any("torch" == r.name for r in train_needs)
    for need in train_needs:
        need.marker = None  # asked for directly, as the extra asks for them
    resolved = subprocess.run([*pip, *map(str, train_needs)], capture_output=True, text=True, cwd=tmp_path)
    assert resolved.returncode == 0, f"spacy-bertprod[train] does not resolve here:\n{resolved.stderr}"
    assert json.loads(report.read_text())["install"] == []  # all met here, nothing to fetch
