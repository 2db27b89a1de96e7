"""`bertprod quantize|onnx`: faster copies of a trained pipeline. The work
is done by compression/pipelines.py; these commands check what the user
asked for and report."""

from pathlib import Path

from spacy.cli._util import Arg, Opt
from wasabi import msg

from ..compression.pipelines import onnx_path, quantize_path
from ._util import bertprod_cli, coded_errors_exit


@bertprod_cli.command("quantize")
def quantize_cli(
    input_path: Path = Arg(..., help="Trained fp32 pipeline folder", exists=True, file_okay=False),
    output_path: Path = Arg(..., help="Folder for the int8 pipeline"),
) -> None:
    """int8 dynamic quantization of a pipeline's encoders for CPU serving
    (recorded in the pipeline's meta, so it loads as int8)."""
    with coded_errors_exit():
        done = quantize_path(input_path, output_path)
    msg.good(f"int8-quantized the encoders of {done or 'no component (already int8)'}: saved to {output_path}")


@bertprod_cli.command("onnx")
def onnx_cli(
    input_path: Path = Arg(..., help="Trained torch pipeline folder", exists=True, file_okay=False),
    output_path: Path = Arg(..., help="Folder for the ONNX Runtime pipeline"),
    int8: bool = Opt(False, "--int8", help="Also int8-quantize with onnxruntime's dynamic quantizer (default: off)"),
    inference_only: bool = Opt(False, "--inference-only", help="Leave the torch weights out: the folder loads without torch (`pip install spacy-bertprod`) and cannot be trained (default: off, kept)"),
    fuse: bool = Opt(True, "--fuse/--no-fuse", help="Fuse attention, LayerNorm and GELU with ONNX Runtime's transformer optimizer before quantizing, where it applies (default: on)"),
) -> None:
    """Export a pipeline's encoders to ONNX and run them on ONNX Runtime
    (exporting needs `pip install "spacy-bertprod[train]"`)."""
    with coded_errors_exit():
        done = onnx_path(input_path, output_path, int8=int8, inference_only=inference_only, fuse=fuse)
    kind = "int8 " if int8 else ""
    only = ", inference only (no torch weights)" if inference_only else ""
    msg.good(f"exported the encoders of {done} to {kind}ONNX (onnxruntime backend{only}): saved to {output_path}")
