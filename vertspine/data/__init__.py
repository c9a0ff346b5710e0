"""Data: image reading, validated COCO registration, the dataset mapper, the phantom datasets."""
from .class_count import NUM_CLASSES_KEYS, check_num_classes, register_num_classes_key
from .coco_registration import (
    DatasetValidationError,
    load_validated_coco_json,
    register_coco_dataset,
    register_datasets_from_config,
    unregister_dataset,
)
from .dataset_mapper import VertspineDatasetMapper
from .mapper_registry import MAPPER_REGISTRY, build_dataset_mapper
from .image_io import ImageReadError, read_dicom, read_image, to_display_uint8
from .readers import ImageMeta, read_image_and_meta, read_volume
from .volume_datasets import register_npy_cases, register_volume_cases, register_volume_folder
from .builtin import PHANTOM_DATASET_NAMES, register_phantom_datasets  # registers phantom_*
from .image_label_datasets import (
    dataset_split,
    register_classification_view,
    register_image_folder,
    register_image_folders_from_config,
)
from .image_label_mapper import ImageLabelDatasetMapper  # registers the mapper
from .image_mask_folders import load_image_mask_folders, read_label_mask, register_image_mask_folders
from .sem_seg_mapper import SemSegDatasetMapper  # registers the mapper
from .volume_mapper import VolumeMapper  # registers the mapper
from .prompt_seg import PromptSegMapper  # registers the mapper and INPUT.PROMPT_SEG
from .loaders import LOADER_REGISTRY, build_test_loader, build_train_loader  # registers loaders

__all__ = [
    "MAPPER_REGISTRY", "NUM_CLASSES_KEYS", "PHANTOM_DATASET_NAMES", "DatasetValidationError", "ImageReadError", "VertspineDatasetMapper",
    "build_dataset_mapper", "check_num_classes", "register_num_classes_key", "load_validated_coco_json", "read_dicom", "read_image", "register_coco_dataset", "register_phantom_datasets",
    "register_datasets_from_config", "unregister_dataset",
    "ImageLabelDatasetMapper", "dataset_split", "register_classification_view", "register_image_folder",
    "register_image_folders_from_config",
    "SemSegDatasetMapper", "load_image_mask_folders", "read_label_mask", "register_image_mask_folders",
    "ImageMeta", "read_image_and_meta", "read_volume", "to_display_uint8",
    "register_npy_cases", "register_volume_cases", "register_volume_folder",
    "VolumeMapper", "PromptSegMapper", "LOADER_REGISTRY", "build_test_loader", "build_train_loader",
]
