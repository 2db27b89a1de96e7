"""Every registered name is reachable through the installed entry points,
without importing spacy_bertprod first."""

import subprocess
import sys
from importlib.metadata import entry_points

import pytest
import spacy

GROUPS = ("spacy_factories", "spacy_architectures", "spacy_readers", "spacy_scorers", "spacy_loggers", "thinc_optimizers")


def _ours(group):
    return [ep for ep in entry_points(group=group) if ep.value.startswith("spacy_bertprod")]


@pytest.mark.parametrize("group", GROUPS)
def test_entry_points_resolve_to_registered_objects(group):
    eps = _ours(group)
    assert eps, f"no spacy_bertprod entry points in {group}: is the package installed?"
    for ep in eps:
        if group == "spacy_factories":
            assert callable(ep.load())
            assert spacy.Language.has_factory(ep.name)
        else:
            registry = getattr(spacy.registry, group.split("_", 1)[1])
            assert registry.get(ep.name) is ep.load()


def test_names_are_namespaced_and_versioned():
    for ep in _ours("spacy_architectures") + _ours("spacy_readers") + _ours("spacy_scorers") + _ours("spacy_loggers") + _ours("thinc_optimizers"):
        assert ep.name.startswith("bertprod.") and ep.name.rsplit(".", 1)[1].startswith("v")


def test_add_pipe_without_importing_the_package():
    script = (
        "import sys, spacy\n"
        "nlp = spacy.blank('en')\n"
        "nlp.add_pipe('bertprod_ner')\n"
        "nlp.add_pipe('bertprod_textcat')\n"
        "nlp.add_pipe('bertprod_qa')\n"
        "spacy.registry.readers.get('bertprod.SquadCorpus.v1')\n"
        "spacy.registry.architectures.get('bertprod.TokenClassifier.v1')\n"
        "spacy.registry.architectures.get('bertprod.Encoder.v1')\n"
        "print(nlp.pipe_names)\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert all(name in out.stdout for name in ("bertprod_ner", "bertprod_textcat", "bertprod_qa"))


def test_pyproject_entry_points_match_the_registry():
    """pyproject.toml (not the installed metadata, which lags until
    `pip install -e .`) names exactly the registered bertprod architectures,
    each resolving to the registered function."""
    import importlib
    from pathlib import Path

    import catalogue
    import tomllib

    import spacy_bertprod.layers.architectures  # noqa: F401  (registers the architectures)

    pyproject = tomllib.loads((Path(__file__).parent.parent / "pyproject.toml").read_text())
    declared = pyproject["project"]["entry-points"]["spacy_architectures"]
    # catalogue's own table: `get_all()` would also load the installed entry points
    namespace = tuple(spacy.registry.architectures.namespace)
    registered = {key[-1] for key in catalogue.REGISTRY if key[:-1] == namespace and key[-1].startswith("bertprod.")}
    assert set(declared) == registered
    for name, target in declared.items():
        module, attr = target.split(":")
        assert getattr(importlib.import_module(module), attr) is spacy.registry.architectures.get(name)
