"""Loading pretrained models: transformers' notices the user can act on stay,
the one about the checkpoint's unused pooler goes; a saved
pipeline's encoder is rebuilt from its config as AutoModel would build it."""

import io
import logging
from pathlib import Path
from typing import Iterator

import pytest
import torch

from conftest import build_tiny_bert
from spacy_bertprod.layers.hf_loader import load_pretrained, module_from_config


@pytest.fixture
def modeling_log() -> Iterator[io.StringIO]:
    """What transformers' modeling_utils logger writes while the test runs."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    logger = logging.getLogger("transformers.modeling_utils")
    logger.addHandler(handler)
    yield stream
    logger.removeHandler(handler)


def _checkpoint(path: Path, extra: str = "") -> str:
    """A tiny BERT saved with its pooler (as hub checkpoints are), and
    optionally one weight no BertModel has."""
    from transformers import BertConfig, BertModel

    build_tiny_bert(path)
    module = BertModel(BertConfig.from_pretrained(path), add_pooling_layer=True)
    if extra:
        module.register_buffer(extra, torch.zeros(1))
    module.save_pretrained(path, safe_serialization=True)
    return str(path)


def test_the_unused_pooler_is_not_reported(tmp_path, modeling_log):
    parts = load_pretrained(_checkpoint(tmp_path / "bert"))
    assert parts is not None
    assert "were not used" not in modeling_log.getvalue()


def test_other_unused_weights_are_still_reported(tmp_path, modeling_log):
    load_pretrained(_checkpoint(tmp_path / "bert", extra="stray"))
    assert "were not used" in modeling_log.getvalue() and "stray" in modeling_log.getvalue()


def test_module_from_config_builds_what_automodel_builds(tmp_path):
    """The class is looked up by model type (not through AutoModel's scan of
    every architecture): same class, same weights' names and shapes, no
    pooler, and the config's attention implementation settled as AutoModel
    settles it."""
    from transformers import AutoModel, BertConfig

    config = BertConfig.from_pretrained(build_tiny_bert(tmp_path / "bert"))
    built = module_from_config(config.to_dict())
    reference = AutoModel.from_config(config, add_pooling_layer=False)
    assert type(built) is type(reference)
    assert {k: v.shape for k, v in built.state_dict().items()} == {k: v.shape for k, v in reference.state_dict().items()}
    assert not any(k.startswith("pooler") for k in built.state_dict())
    assert built.config._attn_implementation == reference.config._attn_implementation


def test_module_from_config_of_a_type_without_a_base_class_entry(tmp_path, monkeypatch):
    """Where transformers' table lacks the type, AutoModel builds it."""
    from transformers import BertConfig

    import spacy_bertprod.layers.hf_loader as hf_loader

    config = BertConfig.from_pretrained(build_tiny_bert(tmp_path / "bert"))
    monkeypatch.setattr(hf_loader, "_base_model_names", lambda: {})
    assert type(module_from_config(config.to_dict())).__name__ == "BertModel"
