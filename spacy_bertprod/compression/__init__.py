"""Compressing and exporting trained pipelines (the training stack: torch,
onnx; the lean runtime never imports these modules):

pipelines.py    quantize a pipeline's encoders, or move them to ONNX Runtime
onnx_export.py  the encoder exported to ONNX (fused, int8-quantized) for its session
onnx_fusion.py  ONNX Runtime's attention / LayerNorm / GELU fusions at export
hf_export.py    a trained bertprod_qa as a Hugging Face model folder
"""
