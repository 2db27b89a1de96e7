"""The thinc layers of the shared encoder and what builds them, one concern
per module (what the lean runtime needs: onnxruntime, never onnx):

architectures.py  the registered architectures (bertprod.Encoder.v1, heads)
attrs.py          typed model attrs: config settings, trained values, bytes
hf_loader.py      Hugging Face model names, the embedded model, loading weights
types.py          the dataclasses passed between layers (window plans, outputs)
tokenizer.py      the fast tokenizer kept in the encoder's attrs
alignment.py      wordpieces -> spaCy tokens, from character offsets
windows.py        striding windows over a document and the window plan
casing.py         casing features and per-wordpiece casing classes
transformer.py    the torch transformer as a thinc layer, and its bytes (or a
                  stand-in where torch is absent or the weights were dropped)
int8_state.py     torch int8 dynamic quantization and its safetensors state (loading
                  a quantized pipeline quantizes its fp32 skeleton again)
onnx_session.py   the onnxruntime session of an exported encoder (export: compression/)
backends.py       torch / autocast / ONNX Runtime dispatch of one batch
batching.py       length-bucket batching of wordpiece sequences
encoder.py        builds, initializes and runs the encoder (Docs -> token vectors)
pooling.py        doc vectors from the encoder's windows, for text classification
qa_head.py        the QA model: question/context pairs -> start/end logits
"""
