"""vertspine's model families, one sub-package each; importing this package registers their
meta-architectures in detectron2's ``META_ARCH_REGISTRY``.

- :mod:`.classification`: image-level classifiers (``ImageClassifier``, node
  ``MODEL.IMAGE_CLASSIFIER``) and the ``build_timm_backbone`` backbone.
- :mod:`.lvmmed`: LVM-Med encoders as backbones (``build_lvmmed_*_backbone``) and the
  ``UNetSegmentor`` (node ``MODEL.LVMMED``).
- :mod:`.sparse_rcnn`: Sparse R-CNN (``SparseRCNN``, config node ``MODEL.SPARSE_RCNN``).
- :mod:`.vertfound`: VertFound (``VertFound``, config node ``MODEL.VERTFOUND``).
"""
from . import classification, lvmmed, sparse_rcnn, vertfound

__all__ = ["classification", "lvmmed", "sparse_rcnn", "vertfound"]
