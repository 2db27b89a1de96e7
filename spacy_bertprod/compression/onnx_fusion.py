"""ONNX Runtime's transformer optimizer on an exported BERT-style encoder:
self-attention, LayerNorm (with the residual add, and the embeddings') and
GELU (with its bias) become single fused ONNX Runtime operators
(com.microsoft `Attention`, `SkipLayerNormalization`,
`EmbedLayerNormalization`, `BiasGelu`). Run at export, before int8
quantization; onnx_export.py keeps the unfused graph when fusion fails or
changes the outputs. Needs onnx and onnxruntime (export time only)."""

from typing import Any, Dict, List

#: The domain of ONNX Runtime's own (fused) operators.
FUSED_DOMAIN = "com.microsoft"


def attention_shape(config: Dict[str, Any]) -> Dict[str, int]:
    """num_heads and hidden_size of an HF config (BERT / DistilBERT names);
    0 lets the optimizer read them from the graph."""
    heads = config.get("num_attention_heads", config.get("n_heads", 0))
    hidden = config.get("hidden_size", config.get("dim", 0))
    return {"num_heads": int(heads or 0), "hidden_size": int(hidden or 0)}


def fuse_onnx(data: bytes, *, num_heads: int = 0, hidden_size: int = 0) -> bytes:
    """The graph with ONNX Runtime's BERT fusions applied (opt_level 0: the
    fusions only, no hardware-specific rewrites, so the saved graph runs on
    any CPU). Raises whatever the optimizer raises."""
    import onnx
    from onnxruntime.transformers import optimizer

    model = optimizer.optimize_model(onnx.load_from_string(data), model_type="bert", num_heads=num_heads, hidden_size=hidden_size, opt_level=0).model
    # the fused operators' domain must be imported for onnx's shape
    # inference (which the int8 quantizer runs); ONNX Runtime does not ask
    if not any(opset.domain == FUSED_DOMAIN for opset in model.opset_import):
        model.opset_import.append(onnx.helper.make_opsetid(FUSED_DOMAIN, 1))
    return model.SerializeToString()


def fused_op_types(data: bytes) -> List[str]:
    """The fused (com.microsoft) operator types in an ONNX graph, sorted
    (`QAttention` is a fused `Attention` after int8 quantization); the
    quantizer's own matrix-product operators are left out."""
    import onnx

    graph = onnx.load_from_string(data).graph
    return sorted({node.op_type for node in graph.node if node.domain == FUSED_DOMAIN and node.op_type not in _QUANTIZER_OPS})


#: com.microsoft operators the dynamic int8 quantizer writes (not fusions).
_QUANTIZER_OPS = {"DynamicQuantizeMatMul", "MatMulIntegerToFloat", "DynamicQuantizeLinear"}
