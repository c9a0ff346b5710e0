"""The resize and flip augmentations every 2D mapper builds from ``INPUT.*``, in one place.

- :func:`build_resize_flip`: detectron2's ``detection_utils.build_augmentation``, unchanged:
  in training ``ResizeShortestEdge(MIN_SIZE_TRAIN, MAX_SIZE_TRAIN, MIN_SIZE_TRAIN_SAMPLING)`` then
  ``RandomFlip`` (``INPUT.RANDOM_FLIP``); at test time ``ResizeShortestEdge(MIN_SIZE_TEST,
  MAX_SIZE_TEST, "choice")``.
- :func:`build_test_resize`: the test-size resize with sample style "range", which draws no
  random number for a single size (numpy's ``randint(s, s + 1)`` returns ``s`` without touching the
  global random state), so a mapping built with it leaves the training augmentations' random
  stream unchanged. It gives the same size as the "choice" resize of :func:`build_resize_flip`.
- :func:`build_flip`: ``RandomFlip`` from ``INPUT.RANDOM_FLIP`` ("none" gives no flip).
"""
from typing import List

from detectron2.config import CfgNode
from detectron2.data import transforms as T
from detectron2.data.detection_utils import build_augmentation

__all__ = ["build_flip", "build_resize_flip", "build_test_resize"]

_FLIPS = ("none", "horizontal", "vertical")


def build_resize_flip(cfg: CfgNode, is_train: bool) -> List[T.Augmentation]:
    """detectron2's default augmentations: resize (train or test sizes), flip in training.

    Args:
        cfg: a config with ``INPUT.MIN_SIZE_*``, ``INPUT.MAX_SIZE_*`` (pixels of the short/long
            side), ``INPUT.MIN_SIZE_TRAIN_SAMPLING`` and ``INPUT.RANDOM_FLIP``.
        is_train: training sizes and flip, or the test size.
    Returns:
        ``[ResizeShortestEdge]`` plus, in training, ``[RandomFlip]`` unless RANDOM_FLIP is "none".
    """
    _check_flip(cfg)
    return build_augmentation(cfg, is_train)


def build_test_resize(cfg: CfgNode) -> T.ResizeShortestEdge:
    """``ResizeShortestEdge(INPUT.MIN_SIZE_TEST, INPUT.MAX_SIZE_TEST)`` (sample style "range").

    A size of 0 leaves images as they are. The aspect ratio is kept; bilinear for images,
    nearest for ``sem_seg``.
    """
    return T.ResizeShortestEdge(cfg.INPUT.MIN_SIZE_TEST, cfg.INPUT.MAX_SIZE_TEST)


def build_flip(cfg: CfgNode) -> List[T.RandomFlip]:
    """``[RandomFlip]`` (probability 0.5, axis from ``INPUT.RANDOM_FLIP``), or ``[]`` for "none".

    Raises:
        ValueError: RANDOM_FLIP is not "none", "horizontal" or "vertical".
    """
    _check_flip(cfg)
    if cfg.INPUT.RANDOM_FLIP == "none":
        return []
    return [T.RandomFlip(horizontal=cfg.INPUT.RANDOM_FLIP == "horizontal",
                         vertical=cfg.INPUT.RANDOM_FLIP == "vertical")]


def _check_flip(cfg: CfgNode) -> None:
    if cfg.INPUT.RANDOM_FLIP not in _FLIPS:
        raise ValueError(f"INPUT.RANDOM_FLIP is {cfg.INPUT.RANDOM_FLIP!r}; use one of {_FLIPS}.")
