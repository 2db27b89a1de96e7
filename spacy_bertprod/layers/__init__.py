"""The thinc layers of the shared encoder, one concern per module:

tokenizer.py     the fast tokenizer kept in the encoder's attrs
alignment.py     wordpieces -> spaCy tokens, from character offsets
windows.py       striding windows over a document and the window plan
casing.py        casing features and per-wordpiece casing classes
transformer.py   the torch transformer as a thinc layer, and its bytes (or a
                 stand-in where torch is absent or the weights were dropped)
quantization.py  torch int8 dynamic quantization and its safetensors state
onnx_backend.py  ONNX export and the onnxruntime session
onnx_fusion.py   ONNX Runtime's attention / LayerNorm / GELU fusions at export
backends.py      torch / autocast / ONNX Runtime dispatch of one batch
batching.py      length-bucket batching of wordpiece sequences
encoder.py       builds, initializes and runs the encoder (Docs -> token vectors)
pooling.py       doc vectors from the encoder's windows, for text classification
"""
