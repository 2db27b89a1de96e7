"""Every registered name is reachable through the installed entry points,
without importing spacy_bertprod first."""

import subprocess
import sys
from importlib.metadata import entry_points

import pytest
import spacy

GROUPS = ("spacy_factories", "spacy_architectures")


def _ours(group):
    return [ep for ep in entry_points(group=group) if ep.value.startswith("spacy_bertprod")]


@pytest.mark.parametrize("group", GROUPS)
def test_entry_points_resolve_to_registered_objects(group):
    eps = _ours(group)
    assert eps, f"no spacy_bertprod entry points in {group}: is the package installed?"
    for ep in eps:
        if group == "spacy_factories":
            assert spacy.Language.has_factory(ep.name)
        else:
            assert spacy.registry.architectures.get(ep.name) is ep.load()


def test_names_are_namespaced_and_versioned():
    for ep in _ours("spacy_architectures"):
        assert ep.name.startswith("bertprod.") and ep.name.rsplit(".", 1)[1].startswith("v")


def test_add_pipe_without_importing_the_package():
    script = (
        "import sys, spacy\n"
        "nlp = spacy.blank('en')\n"
        "nlp.add_pipe('bertprod_ner')\n"
        "spacy.registry.architectures.get('bertprod.TokenClassifier.v1')\n"
        "print(nlp.pipe_names)\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert "bertprod_ner" in out.stdout
