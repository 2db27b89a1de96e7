"""Export trained bertprod weights to plain Hugging Face models, for tools
that expect them (the `transformers` question-answering pipeline, ONNX
exporters)."""

from pathlib import Path
from typing import Union, cast

from spacy.language import Language
from spacy.pipeline import TrainablePipe

from ..layers.transformer import hf_module


def save_hf_tokenizer(encoder, path: Union[str, Path]) -> None:
    """Save the encoder's fast tokenizer as a `transformers` tokenizer."""
    from transformers import PreTrainedTokenizerFast

    holder = encoder.attrs["tokenizer"]
    tok = holder.tokenizer
    special = {
        "cls_token": tok.id_to_token(holder.cls_id),
        "sep_token": tok.id_to_token(holder.sep_id),
        "pad_token": tok.id_to_token(holder.pad_id),
    }
    unk = "[UNK]" if tok.token_to_id("[UNK]") is not None else None
    mask = "[MASK]" if tok.token_to_id("[MASK]") is not None else None
    hf = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token=unk, mask_token=mask, model_max_length=encoder.attrs["window"], **special)
    hf.save_pretrained(str(path))


def qa_to_hf(nlp: Language, path: Union[str, Path], component: str = "bertprod_qa") -> Path:
    """Write a trained `bertprod_qa` as a `*ForQuestionAnswering` model with
    the same weights (encoder + span head) and tokenizer."""
    import torch
    from transformers import AutoConfig, AutoModelForQuestionAnswering

    path = Path(path)
    # spaCy types every pipe as Callable[[Doc], Doc]; bertprod_qa is a TrainablePipe
    model = cast(TrainablePipe, nlp.get_pipe(component)).model
    encoder, head = model.get_ref("encoder"), model.get_ref("output")
    module = hf_module(encoder)
    cfg = module.config.to_dict()
    config = AutoConfig.for_model(cfg.pop("model_type"), **cfg)
    qa = AutoModelForQuestionAnswering.from_config(config)
    base = getattr(qa, qa.base_model_prefix)
    base.load_state_dict(module.state_dict(), strict=False)
    W, b = model.ops.to_numpy(head.get_param("W")), head.ops.to_numpy(head.get_param("b"))
    with torch.no_grad():
        qa.qa_outputs.weight.copy_(torch.from_numpy(W))
        qa.qa_outputs.bias.copy_(torch.from_numpy(b))
    qa.save_pretrained(str(path))
    save_hf_tokenizer(encoder, path)
    return path
