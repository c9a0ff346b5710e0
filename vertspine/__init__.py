"""vertspine: spine and medical imaging research on detectron2.

Importing the package makes detectron2 importable without its compiled ops (logged once,
see :mod:`vertspine.utils.compiled_ops`), then registers vertspine's datasets, models and
evaluators in detectron2's registries.
"""
from .utils.compiled_ops import ensure_detectron2_importable

ensure_detectron2_importable()

from . import data, evaluation, modeling  # noqa: E402,F401  (registrations)
from .config import add_vertspine_config, get_vertspine_cfg  # noqa: E402

__version__ = "0.1.0"
__all__ = ["add_vertspine_config", "get_vertspine_cfg", "__version__"]
