"""Print the environment vertspine runs in: ``python -m vertspine.collect_env``.

Versions of Python, torch, torchvision, detectron2 (and how it was built), the foundation-model
libraries, the devices torch sees, and the CPU thread count.
"""
import importlib
import os
import platform
import sys

from tabulate import tabulate

__all__ = ["collect_env_info"]

_LIBRARIES = (
    "numpy", "PIL", "cv2", "pycocotools", "pydicom", "pylibjpeg", "libjpeg", "openjpeg", "rle",
    "scipy", "fvcore", "iopath",
    "segment_anything", "open_clip", "timm", "monai", "sklearn", "skimage", "nibabel", "onnx",
    "onnxscript", "onnxruntime", "openvino",
)


def _version(module_name: str) -> str:
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        return "not installed"
    return getattr(module, "__version__", "installed")


def _detectron2_source() -> str:
    """The install path recorded by scripts/install.sh, when it ran in this environment."""
    for folder in (sys.prefix, os.path.dirname(os.path.dirname(os.path.abspath(__file__)))):
        record = os.path.join(folder, "vertspine-detectron2-source.txt")
        if os.path.isfile(record):
            with open(record) as f:
                return f.read().strip()
    return "unknown (not installed by scripts/install.sh)"


def collect_env_info() -> str:
    """Returns: a table (str) of library versions, detectron2 build kind and devices."""
    import torch
    import torchvision

    import detectron2
    from vertspine.utils.compiled_ops import has_compiled_ops

    rows = [
        ("sys.platform", sys.platform),
        ("Python", sys.version.replace("\n", " ")),
        ("machine", platform.machine()),
        ("vertspine", importlib.import_module("vertspine").__version__),
        ("torch", f"{torch.__version__} @ {os.path.dirname(torch.__file__)}"),
        ("torchvision", torchvision.__version__),
        ("torch CUDA build", str(torch.version.cuda)),
        ("CUDA available", str(torch.cuda.is_available())),
        ("GPUs", ", ".join(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count()))
         or "none"),
        ("CPU threads (torch)", str(torch.get_num_threads())),
        ("distributed backends", ", ".join(
            b for b, ok in (("gloo", torch.distributed.is_gloo_available()),
                            ("nccl", torch.distributed.is_nccl_available())) if ok)),
        ("detectron2", f"{detectron2.__version__} @ {os.path.dirname(detectron2.__file__)}"),
        ("detectron2 compiled ops (_C)", "yes" if has_compiled_ops() else "no (pure Python)"),
        ("detectron2 install source", _detectron2_source()),
    ]
    rows += [(name, _version(name)) for name in _LIBRARIES]
    return tabulate(rows)


if __name__ == "__main__":
    print(collect_env_info())
