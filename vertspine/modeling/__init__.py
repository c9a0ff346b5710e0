"""vertspine's model families, one sub-package each; importing this package registers their
meta-architectures in detectron2's ``META_ARCH_REGISTRY``.

- :mod:`.sparse_rcnn`: Sparse R-CNN (``SparseRCNN``, config node ``MODEL.SPARSE_RCNN``).
"""
from . import sparse_rcnn

__all__ = ["sparse_rcnn"]
