"""Run a frozen network with PyTorch, ONNX Runtime or OpenVINO: one choice for every family.

    signature = GraphSignature(inputs=("images",), outputs=("embeddings",),
                               dynamic_axes={"images": {0: "batch"}})
    engine = build_engine("openvino", sam.image_encoder, (example_batch,), signature,
                          cache_dir="output/engines")
    (embeddings,) = engine(batch)            # batch [N, 3, S, S] -> ([N, 256, S/16, S/16],)

``torch`` calls the module under ``torch.inference_mode``. ``onnxruntime`` and ``openvino`` export
the module to ONNX (``torch.onnx.export`` with the ``torch.export`` graph capture, opset
:data:`ONNX_OPSET`), OpenVINO converts that ONNX file to its IR; both run on the CPU in float32
(OpenVINO's CPU plugin otherwise computes in bfloat16 where the processor has it). Exported
files are kept in ``cache_dir`` under a name made of a fingerprint of the weights, the input
shapes and the signature, so a second run (or another process) reuses them, and a change of
weights makes a new file rather than reusing a stale one. Files are written atomically.

Only frozen networks belong here: nothing is differentiable through an exported engine.
"""
import hashlib
import logging
import os
import tempfile
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, Mapping, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import Tensor, nn

__all__ = ["ENGINES", "ONNX_OPSET", "GraphSignature", "InferenceEngine", "build_engine",
           "convert_to_openvino", "export_onnx", "load_onnx_engine", "module_fingerprint"]

logger = logging.getLogger(__name__)

ENGINES = ("torch", "onnxruntime", "openvino")
ONNX_OPSET = 18  # the opset torch's exporter targets by default; ONNX Runtime and OpenVINO read it


@dataclass(frozen=True)
class GraphSignature:
    """Names of a network's inputs and outputs, and which input axes may change size.

    Attributes:
        inputs: one name per positional input of the module, in order.
        outputs: one name per output tensor (a module returning one tensor has one).
        dynamic_axes: input name -> {axis: dimension name}; axes not listed are fixed to the
            example's size. Inputs sharing a dimension name must have equal sizes there.
    """

    inputs: Tuple[str, ...]
    outputs: Tuple[str, ...]
    dynamic_axes: Mapping[str, Mapping[int, str]] = field(default_factory=dict)

    def check(self, example_inputs: Sequence[Tensor]) -> None:
        """Raise ``ValueError`` when the example does not fit the signature.

        An axis exported as dynamic needs an example size of at least 2: ``torch.export``
        treats sizes 0 and 1 as constants.
        """
        if len(example_inputs) != len(self.inputs):
            raise ValueError(f"{len(example_inputs)} example inputs for the {len(self.inputs)} "
                             f"inputs {list(self.inputs)} of the signature.")
        unknown = sorted(set(self.dynamic_axes) - set(self.inputs))
        if unknown:
            raise ValueError(f"dynamic_axes names inputs {unknown} that are not in "
                             f"{list(self.inputs)}.")
        for name, example in zip(self.inputs, example_inputs):
            for axis in self.dynamic_axes.get(name, {}):
                if not -example.dim() <= axis < example.dim():
                    raise ValueError(f"Input '{name}' has {example.dim()} axes; dynamic axis "
                                     f"{axis} does not exist.")
                if example.shape[axis] < 2:
                    raise ValueError(f"Input '{name}' axis {axis} is dynamic but the example has "
                                     f"size {example.shape[axis]}: give an example of size >= 2 "
                                     "there (torch.export fixes sizes 0 and 1).")


class InferenceEngine:
    """A callable network: ``engine(*inputs)`` -> tuple of output tensors.

    Inputs are tensors (any device); outputs come back on the device of the first input.

    Attributes:
        kind: one of :data:`ENGINES`.
        signature: the :class:`GraphSignature` it was built with.
    """

    def __init__(self, kind: str, signature: GraphSignature, run: Callable[..., Sequence]):
        self.kind, self.signature, self._run = kind, signature, run

    def __call__(self, *inputs: Tensor) -> Tuple[Tensor, ...]:
        if len(inputs) != len(self.signature.inputs):
            raise ValueError(f"{self.kind} engine takes {len(self.signature.inputs)} inputs "
                             f"{list(self.signature.inputs)}, got {len(inputs)}.")
        device = inputs[0].device
        if self.kind == "torch":
            with torch.inference_mode():
                return tuple(self._run(*inputs))
        arrays = [x.detach().to("cpu", torch.float32).numpy() for x in inputs]
        return tuple(torch.from_numpy(np.asarray(y)).to(device) for y in self._run(*arrays))


def module_fingerprint(module: nn.Module, example_inputs: Sequence[Tensor],
                       signature: GraphSignature) -> str:
    """Hex digest (16 characters) of the module's class, weights and buffers, the example
    shapes with dynamic axes blanked, the signature and the torch version."""
    digest = hashlib.sha256()
    digest.update(type(module).__qualname__.encode())
    for name, tensor in module.state_dict().items():
        digest.update(name.encode())
        digest.update(str(tuple(tensor.shape)).encode())
        digest.update(tensor.detach().to("cpu").reshape(-1).view(torch.uint8).numpy().tobytes()
                      if tensor.numel() else b"")
    for name, example in zip(signature.inputs, example_inputs):
        dynamic = signature.dynamic_axes.get(name, {})
        shape = [None if axis in dynamic or axis - example.dim() in dynamic else size
                 for axis, size in enumerate(example.shape)]
        digest.update(f"{name}{shape}{example.dtype}".encode())
    digest.update(repr((signature.inputs, signature.outputs,
                        sorted((k, sorted(v.items())) for k, v in signature.dynamic_axes.items())))
                  .encode())
    digest.update(torch.__version__.encode())
    return digest.hexdigest()[:16]


def export_onnx(module: nn.Module, example_inputs: Sequence[Tensor], path: str,
                signature: GraphSignature) -> str:
    """Export ``module`` (in eval mode, on the CPU) to an ONNX file at ``path``, atomically.

    Args:
        module: the network; its ``forward`` takes the inputs positionally.
        example_inputs: tensors of the input shapes (size >= 2 on dynamic axes).
        path: the ``.onnx`` file to write; its folder is created.
        signature: input/output names and dynamic axes.
    Returns:
        ``path``.
    Raises:
        ValueError: the example does not fit the signature.
        RuntimeError: the exporter failed (its message is kept).
    """
    import onnx

    signature.check(example_inputs)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    dims: Dict[str, torch.export.Dim] = {}
    dynamic_shapes = tuple(
        {axis: dims.setdefault(name, torch.export.Dim(name, min=1))
         for axis, name in signature.dynamic_axes.get(input_name, {}).items()} or None
        for input_name in signature.inputs)
    was_training = module.training
    module.eval()
    example = tuple(x.detach().to("cpu") for x in example_inputs)
    handle, temporary = tempfile.mkstemp(prefix=".tmp-", suffix=".onnx", dir=folder)
    os.close(handle)
    try:
        with torch.inference_mode(False), torch.no_grad():
            program = torch.onnx.export(
                module, example, dynamo=True, input_names=list(signature.inputs),
                output_names=list(signature.outputs), opset_version=ONNX_OPSET,
                dynamic_shapes=dynamic_shapes if any(dynamic_shapes) else None, verbose=False)
        program.save(temporary)
        onnx.checker.check_model(temporary, full_check=False)
        os.replace(temporary, path)
    except Exception as error:
        raise RuntimeError(f"ONNX export of {type(module).__name__} to {path} failed: "
                           f"{error}") from error
    finally:
        module.train(was_training)
        if os.path.exists(temporary):
            os.remove(temporary)
    return path


def _onnx_runtime(path: str, signature: GraphSignature, threads: int):
    import onnxruntime

    options = onnxruntime.SessionOptions()
    if threads > 0:
        options.intra_op_num_threads = threads
    session = onnxruntime.InferenceSession(path, options, providers=["CPUExecutionProvider"])

    def run(*arrays):
        return session.run(list(signature.outputs), dict(zip(signature.inputs, arrays)))

    return run


def convert_to_openvino(onnx_path: str) -> str:
    """OpenVINO IR (``.xml`` + ``.bin``, float32 weights) next to an ONNX file, written
    atomically (the ``.xml`` last: its presence means the pair is whole); kept when it exists.

    Returns:
        the ``.xml`` path.
    """
    import openvino

    ir_path = onnx_path[:-len(".onnx")] + ".xml"
    if not os.path.exists(ir_path):
        folder = os.path.dirname(os.path.abspath(ir_path))
        temporary = tempfile.mkdtemp(prefix=".tmp-", dir=folder)
        try:
            staged = os.path.join(temporary, os.path.basename(ir_path))
            openvino.save_model(openvino.convert_model(onnx_path), staged, compress_to_fp16=False)
            os.replace(staged[:-len(".xml")] + ".bin", ir_path[:-len(".xml")] + ".bin")
            os.replace(staged, ir_path)
        finally:
            for name in os.listdir(temporary):
                os.remove(os.path.join(temporary, name))
            os.rmdir(temporary)
    return ir_path


def _openvino(onnx_path: str, signature: GraphSignature, threads: int):
    import openvino

    ir_path = convert_to_openvino(onnx_path)
    config = {"INFERENCE_PRECISION_HINT": "f32"}
    if threads > 0:
        config["INFERENCE_NUM_THREADS"] = threads
    compiled = openvino.Core().compile_model(ir_path, "CPU", config)
    request = compiled.create_infer_request()
    outputs = [compiled.output(name) for name in signature.outputs]

    def run(*arrays):
        results = request.infer(dict(zip(signature.inputs, arrays)))
        return [np.array(results[output]) for output in outputs]

    return run


def build_engine(kind: str, module: nn.Module, example_inputs: Sequence[Tensor],
                 signature: GraphSignature, *, cache_dir: Optional[str] = None,
                 threads: int = 0) -> InferenceEngine:
    """An :class:`InferenceEngine` of ``module`` (frozen: weights read now).

    Args:
        kind: "torch", "onnxruntime" or "openvino".
        module: the network (eval mode is set by the export; a torch engine calls it as is).
        example_inputs: inputs of the shapes to export (size >= 2 on dynamic axes).
        signature: input/output names and dynamic axes.
        cache_dir: folder of exported files (required for "onnxruntime" / "openvino").
        threads: CPU threads of the exported engines (0 = the library's default).
    Raises:
        ValueError: unknown ``kind``, or no ``cache_dir`` for an exported engine.
    """
    if kind not in ENGINES:
        raise ValueError(f"Engine '{kind}' is not one of {ENGINES}.")
    if kind == "torch":
        return InferenceEngine(kind, signature, lambda *xs: _as_tuple(module(*xs)))
    if not cache_dir:
        raise ValueError(f"The '{kind}' engine exports the network to a file: give a cache "
                         "folder (cache_dir).")
    fingerprint = module_fingerprint(module, example_inputs, signature)
    path = os.path.join(cache_dir, f"{type(module).__name__}-{fingerprint}.onnx")
    if not os.path.exists(path):
        start = time.perf_counter()
        export_onnx(module, example_inputs, path, signature)
        logger.info("Exported %s to %s in %.1f s.", type(module).__name__, path,
                    time.perf_counter() - start)
    return load_onnx_engine(kind, path, signature, threads=threads)


def load_onnx_engine(kind: str, onnx_path: str, signature: GraphSignature, *,
                     threads: int = 0) -> InferenceEngine:
    """An :class:`InferenceEngine` of an already exported ONNX file (e.g. written by
    :func:`export_onnx`); "openvino" converts it to IR next to it first (kept for later runs).

    Args:
        kind: "onnxruntime" or "openvino".
        onnx_path: the ``.onnx`` file.
        signature: the input/output names it was exported with.
        threads: CPU threads (0 = the library's default).
    Raises:
        ValueError: another ``kind``; FileNotFoundError: no such file.
    """
    if kind not in ENGINES[1:]:
        raise ValueError(f"Engine '{kind}' does not run an ONNX file; use one of {ENGINES[1:]}.")
    if not os.path.isfile(onnx_path):
        raise FileNotFoundError(f"Exported network not found: {onnx_path}")
    runner = _onnx_runtime if kind == "onnxruntime" else _openvino
    return InferenceEngine(kind, signature, runner(onnx_path, signature, threads))


def _as_tuple(outputs) -> Tuple[Tensor, ...]:
    return tuple(outputs) if isinstance(outputs, (tuple, list)) else (outputs,)
