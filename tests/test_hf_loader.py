"""Loading pretrained models: transformers' notices the user can act on stay,
the one about the checkpoint's unused pooler goes (issue 17 item 9)."""

import io
import logging
from pathlib import Path
from typing import Iterator

import pytest
import torch

from conftest import build_tiny_bert
from spacy_bertprod.hf_loader import load_pretrained


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
