"""Data of box-prompted segmentation (MedSAM, LiteMedSAM, DAFT): the CVPR24 "MedSAM on laptop"
npz format (:mod:`.npz_format`; predictions and inference inputs in :mod:`.predictions`),
modality routing by file name or CSV (:mod:`.modality`), folder
datasets with per-modality subsets (:mod:`.datasets`), the LiteMedSAM/DAFT preprocessing
(:mod:`.preprocess`), the ``PromptSegMapper`` (:mod:`.mapper`), its ``INPUT.PROMPT_SEG`` keys
(:mod:`.config`) and the phantom datasets ``phantom_promptseg_{2d,3d}_*``
(:mod:`.phantom_datasets`, :mod:`.phantom_volumes`).

Importing this package registers the config keys and the mapper (the phantom datasets are
registered by :mod:`vertspine.data.builtin`).
"""
from . import config  # registers INPUT.PROMPT_SEG
from .datasets import load_prompt_seg_records, register_prompt_seg_folder
from .mapper import PromptSegMapper  # registers "PromptSegMapper"
from .modality import MODALITIES, UnknownModalityError, assign_modalities, modality_from_name
from .npz_format import (
    NoBoxesError,
    PromptSegCase,
    PromptSegFormatError,
    prompt_boxes,
    read_prompt_seg_npz,
    write_prompt_seg_npz,
)
from .predictions import read_segs, scan_inference_inputs, write_segs
from .phantom_datasets import (
    PHANTOM_PROMPT_SEG_NAMES,
    PromptSegPhantomConfig,
    ensure_phantom_prompt_seg,
    register_phantom_prompt_seg,
)
from .preprocess import mask_boxes, preprocess_image, resize_labels, resized_shape, scale_boxes

__all__ = [
    "MODALITIES",
    "NoBoxesError",
    "PHANTOM_PROMPT_SEG_NAMES",
    "PromptSegCase",
    "PromptSegFormatError",
    "PromptSegMapper",
    "PromptSegPhantomConfig",
    "UnknownModalityError",
    "assign_modalities",
    "config",
    "ensure_phantom_prompt_seg",
    "load_prompt_seg_records",
    "mask_boxes",
    "modality_from_name",
    "preprocess_image",
    "prompt_boxes",
    "read_prompt_seg_npz",
    "read_segs",
    "register_phantom_prompt_seg",
    "register_prompt_seg_folder",
    "resize_labels",
    "resized_shape",
    "scale_boxes",
    "scan_inference_inputs",
    "write_prompt_seg_npz",
    "write_segs",
]
