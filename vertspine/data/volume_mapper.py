"""The dataset mapper of 3D volumes: ``INPUT.DATASET_MAPPER "VolumeMapper"`` (MONAI transforms).

Records are volume records (``file_name``, ``label_file``, ``image_id``, ...; see
:mod:`vertspine.data.volume_datasets`). The volume and its label are read in their real values
and put through MONAI dictionary transforms configured by ``INPUT.VOLUME``:

1. ``Orientationd`` to ``ORIENTATION`` (e.g. "RAS": array axis 0 runs to the right, ...);
2. ``Spacingd`` to ``TARGET_SPACING`` mm (bilinear image, nearest label), when set;
3. intensity: ``ScaleIntensityRanged`` (``WINDOW`` -> ``OUTPUT_RANGE``, e.g. a CT window in
   Hounsfield units) or ``ScaleIntensityRangePercentilesd`` (``PERCENTILES`` of each volume);
4. training only: ``SpatialPadd`` to ``ROI_SIZE`` (constant 0, before the crop so that every
   patch is a full window centred on the drawn voxel), then ``RandCropByPosNegLabeld``:
   ``PATCHES_PER_VOLUME`` patches whose centres are on label > 0 or on background with the
   weights ``POS_NEG_RATIO``;
5. training only, per patch, as ``INPUT.VOLUME.AUGMENT`` asks (each with probability ``PROB``):
   flips, zoom and shear (image and label alike: trilinear / nearest), then gaussian smoothing,
   gaussian noise and a histogram shift of the image (vesselFM's fine-tuning augmentations).

Training returns a list of patch dicts per record, so it trains with ``DATALOADER.BUILDER
"PatchLoader"``, which sets its random state per visit (:meth:`VolumeMapper.set_random_state`,
see :mod:`vertspine.data.loaders.patch_loader`). Test mode returns the whole volume. ``spacing`` is in mm per array axis of the output, read from
the output's affine (so it follows the reorientation and resampling).
"""
import copy
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from detectron2.config import configurable

from .mapper_registry import MAPPER_REGISTRY

__all__ = ["VolumeMapper", "build_patch_augmentation"]

_INTENSITY_MODES = ("window", "percentiles", "none")
_RAS_LABELS = (("L", "R"), ("P", "A"), ("I", "S"))  # the readers' affines map to RAS+ mm


@MAPPER_REGISTRY.register()
class VolumeMapper:
    """Volume record -> random patches (training) or the whole preprocessed volume (test).

    Training output, a list of ``num_patches`` dicts: ``image`` float32 [C, *roi_size],
    ``sem_seg`` int64 [*roi_size], ``spacing`` (mm per axis, tuple of floats), ``file_name``,
    ``image_id``. Test output: the record's keys plus ``image`` float32 [C, X, Y, Z] (the whole
    volume, same orientation, spacing and intensity scaling, no crop), ``sem_seg`` int64
    [X, Y, Z] when the record has a ``label_file``, and ``spacing`` and ``affine`` (float64
    [4, 4], array index -> RAS+ mm) of the output array, replacing the record's (file) ones. ``C`` = 1 (one 3D file per image); X, Y, Z are the array axes
    after reorientation (for "RAS": towards right, anterior, superior).
    """

    @configurable
    def __init__(self, is_train: bool = True, *, roi_size: Sequence[int], num_patches: int,
                 pos_neg: Sequence[float], axcodes: str, target_spacing: Sequence[float],
                 intensity_mode: str, intensity_range: Sequence[float],
                 output_range: Sequence[float], clip: bool,
                 augment: Optional[Dict[str, Any]] = None):
        """
        Args:
            is_train: random patches with labels, or the whole volume.
            roi_size: patch size in voxels, 3 entries (array axes after reorientation).
            num_patches: patches drawn per record in training.
            pos_neg: weights (positive, negative) of foreground and background patch centres.
            axcodes: target orientation, e.g. "RAS"; "" keeps the file's.
            target_spacing: voxel spacing in mm to resample to, 3 entries; empty keeps the file's.
            intensity_mode: "window", "percentiles" or "none".
            intensity_range: (a_min, a_max) input values for "window", or (lower, upper)
                percentiles (0..100) for "percentiles".
            output_range: (b_min, b_max) values the range is mapped to.
            clip: clip the scaled values to ``output_range``.
            augment: training patch transforms, ``INPUT.VOLUME.AUGMENT``'s keys in lower case
                (``prob``, ``flip_axes``, ``zoom``, ``shear``, ``smooth_sigma``, ``noise_std``,
                ``histogram_shift_points``); None or all off: none.
        Raises:
            ValueError: a setting out of range, naming its ``INPUT.VOLUME`` key.
        """
        _check_settings(roi_size, num_patches, pos_neg, target_spacing, intensity_mode,
                        intensity_range)
        self.is_train = is_train
        self.roi_size = tuple(int(s) for s in roi_size)
        self.num_patches = int(num_patches)
        self._preprocess = _build_preprocessing(axcodes, target_spacing, intensity_mode,
                                                intensity_range, output_range, clip)
        self._crop = _build_crop(self.roi_size, self.num_patches, pos_neg) if is_train else None
        self._augment = build_patch_augmentation(**(augment or {})) if is_train else None

    @classmethod
    def from_config(cls, cfg, is_train: bool = True) -> Dict[str, Any]:
        volume = cfg.INPUT.VOLUME
        mode = volume.INTENSITY.MODE
        return {
            "is_train": is_train,
            "roi_size": volume.ROI_SIZE,
            "num_patches": volume.PATCHES_PER_VOLUME,
            "pos_neg": volume.POS_NEG_RATIO,
            "axcodes": volume.ORIENTATION,
            "target_spacing": volume.TARGET_SPACING,
            "intensity_mode": mode,
            "intensity_range": (volume.INTENSITY.PERCENTILES if mode == "percentiles"
                                else volume.INTENSITY.WINDOW),
            "output_range": volume.INTENSITY.OUTPUT_RANGE,
            "clip": volume.INTENSITY.CLIP,
            "augment": {key.lower(): value for key, value in volume.AUGMENT.items()},
        }

    @classmethod
    def evaluation_with_ground_truth(cls, cfg) -> "VolumeMapper":
        """The test mapping: it already keeps ``sem_seg`` of the whole volume."""
        return cls(cfg, is_train=False)

    def set_random_state(self, seed: int) -> "VolumeMapper":
        """Seed the patch draws of the next call (MONAI's ``Randomizable`` convention)."""
        if self._crop is not None:
            self._crop.set_random_state(seed=seed)
        if self._augment is not None:
            self._augment.set_random_state(seed=(seed + 1) % 2 ** 32)
        return self

    def __call__(self, dataset_dict: Dict[str, Any]) -> Union[List[Dict[str, Any]], Dict[str, Any]]:
        """
        Args:
            dataset_dict: a volume record (not modified).
        Returns:
            training: ``num_patches`` patch dicts; test: one dict (see the class docstring).
        Raises:
            KeyError: a training record without ``label_file``.
        """
        if self.is_train and not dataset_dict.get("label_file"):
            raise KeyError(f"Volume record '{dataset_dict.get('file_name')}' has no 'label_file'; "
                           "patch training needs labels (register the dataset with its labels).")
        data = self._preprocess(_load(dataset_dict))
        if not self.is_train:
            record = copy.deepcopy(dataset_dict)
            record.update(_outputs(data))
            record["affine"] = np.asarray(data["image"].affine, dtype=np.float64)
            return record
        patches = self._crop(data)
        if self._augment is not None:
            patches = [self._augment(patch) for patch in patches]
        return [{**_outputs(patch), "file_name": dataset_dict["file_name"],
                 "image_id": dataset_dict["image_id"]} for patch in patches]


def _load(record: Dict[str, Any]) -> Dict[str, Any]:
    """``{"image": MetaTensor float32 [1, I, J, K], "label": MetaTensor float32 [1, I, J, K]}``
    in the files' voxel order and values. The affine is the record's when it has one (records
    are the authority on geometry: ``.npy`` files hold none), else the image file's."""
    from monai.data import MetaTensor

    from .readers import read_volume

    data, affine = {}, record.get("affine")
    for key, path in (("image", record["file_name"]), ("label", record.get("label_file"))):
        if not path:
            continue
        array, meta = read_volume(path)
        if affine is None:
            affine = meta.affine
        data[key] = MetaTensor(torch.as_tensor(np.asarray(array, dtype=np.float32)[None]),
                               affine=torch.as_tensor(np.asarray(affine), dtype=torch.float64))
    return data


def _outputs(data: Dict[str, Any]) -> Dict[str, Any]:
    """Plain tensors (``image`` float32, ``sem_seg`` int64 without its channel) and ``spacing``."""
    from monai.data.utils import affine_to_spacing

    image = data["image"]
    out = {"image": image.as_tensor().to(torch.float32),
           "spacing": tuple(float(s) for s in affine_to_spacing(image.affine, r=3))}
    if "label" in data:
        out["sem_seg"] = data["label"].as_tensor()[0].round().to(torch.int64)
    return out


def _build_preprocessing(axcodes: str, target_spacing: Sequence[float], intensity_mode: str,
                         intensity_range: Sequence[float], output_range: Sequence[float],
                         clip: bool):
    """Orientation, spacing and intensity scaling as one deterministic MONAI ``Compose``."""
    from monai import transforms as mt

    keys = ("image", "label")
    steps = []
    if axcodes:
        steps.append(mt.Orientationd(keys, axcodes=axcodes, labels=_RAS_LABELS,
                                     allow_missing_keys=True))
    if len(target_spacing):
        steps.append(mt.Spacingd(keys, pixdim=tuple(target_spacing), mode=("bilinear", "nearest"),
                                 dtype=np.float32, allow_missing_keys=True))
    low, high = intensity_range
    b_min, b_max = output_range
    if intensity_mode == "window":
        steps.append(mt.ScaleIntensityRanged("image", low, high, b_min, b_max, clip=clip))
    elif intensity_mode == "percentiles":
        steps.append(mt.ScaleIntensityRangePercentilesd("image", low, high, b_min, b_max,
                                                        clip=clip))
    return mt.Compose(steps)


def _build_crop(roi_size: Tuple[int, ...], num_patches: int, pos_neg: Sequence[float]):
    """Pad to the ROI, then draw ``num_patches`` positive/negative-balanced patches."""
    from monai import transforms as mt

    keys = ("image", "label")
    pos, neg = pos_neg
    return mt.Compose([
        mt.SpatialPadd(keys, spatial_size=roi_size),
        mt.RandCropByPosNegLabeld(keys, label_key="label", spatial_size=roi_size, pos=pos,
                                  neg=neg, num_samples=num_patches),
    ])


def build_patch_augmentation(prob: float = 0.2, flip_axes: Sequence[int] = (),
                             zoom: Sequence[float] = (), shear: float = 0.0,
                             smooth_sigma: Sequence[float] = (), noise_std: float = 0.0,
                             histogram_shift_points: Sequence[int] = ()):
    """The random transforms of training patches (``{"image", "label"}`` [1, X, Y, Z]) as one
    MONAI ``Compose``, or None when every option is off. Arguments: ``INPUT.VOLUME.AUGMENT``.

    Raises:
        ValueError: a bad value, naming its ``INPUT.VOLUME.AUGMENT`` key.
    """
    from monai import transforms as mt

    _check_augmentation(prob, flip_axes, zoom, shear, smooth_sigma, noise_std,
                        histogram_shift_points)
    keys = ("image", "label")
    steps = [mt.RandFlipd(keys, prob=prob, spatial_axis=int(axis)) for axis in flip_axes]
    if len(zoom):
        steps.append(mt.RandZoomd(keys, prob=prob, min_zoom=zoom[0], max_zoom=zoom[1],
                                  mode=("trilinear", "nearest"), keep_size=True))
    if shear > 0:
        steps.append(mt.RandAffined(keys, prob=prob, shear_range=(shear,) * 6,
                                    mode=("bilinear", "nearest"), padding_mode="reflection"))
    if len(smooth_sigma):
        steps.append(mt.RandGaussianSmoothd("image", sigma_x=tuple(smooth_sigma),
                                            sigma_y=tuple(smooth_sigma),
                                            sigma_z=tuple(smooth_sigma), prob=prob))
    if noise_std > 0:
        steps.append(mt.RandGaussianNoised("image", prob=prob, std=noise_std))
    if len(histogram_shift_points):
        steps.append(mt.RandHistogramShiftd("image", num_control_points=tuple(
            int(p) for p in histogram_shift_points), prob=prob))
    return mt.Compose(steps) if steps else None


def _check_augmentation(prob, flip_axes, zoom, shear, smooth_sigma, noise_std,
                        histogram_shift_points) -> None:
    key = "INPUT.VOLUME.AUGMENT."
    if not 0 <= prob <= 1:
        raise ValueError(f"{key}PROB is {prob}; give a probability in [0, 1].")
    if any(int(axis) not in (0, 1, 2) for axis in flip_axes):
        raise ValueError(f"{key}FLIP_AXES is {tuple(flip_axes)}; give array axes 0, 1 or 2.")
    for name, pair in (("ZOOM", zoom), ("SMOOTH_SIGMA", smooth_sigma),
                       ("HISTOGRAM_SHIFT_POINTS", histogram_shift_points)):
        if len(pair) not in (0, 2) or (len(pair) and not 0 < pair[0] <= pair[1]):
            raise ValueError(f"{key}{name} is {tuple(pair)}; give (min, max) with "
                             "0 < min <= max, or () for off.")
    if len(histogram_shift_points) and histogram_shift_points[0] < 3:
        raise ValueError(f"{key}HISTOGRAM_SHIFT_POINTS is {tuple(histogram_shift_points)}; "
                         "MONAI needs at least 3 control points.")
    for name, value in (("SHEAR", shear), ("NOISE_STD", noise_std)):
        if value < 0:
            raise ValueError(f"{key}{name} is {value}; give a value >= 0 (0 is off).")


def _check_settings(roi_size, num_patches, pos_neg, target_spacing, intensity_mode,
                    intensity_range) -> None:
    if len(roi_size) != 3 or min(roi_size) <= 0:
        raise ValueError(f"INPUT.VOLUME.ROI_SIZE is {tuple(roi_size)}; give 3 positive sizes.")
    if num_patches < 1:
        raise ValueError(f"INPUT.VOLUME.PATCHES_PER_VOLUME is {num_patches}; use 1 or more.")
    if len(pos_neg) != 2 or min(pos_neg) < 0 or max(pos_neg) == 0:
        raise ValueError(f"INPUT.VOLUME.POS_NEG_RATIO is {tuple(pos_neg)}; give (positive, "
                         "negative) weights >= 0, not both 0.")
    if len(target_spacing) not in (0, 3) or (len(target_spacing) and min(target_spacing) <= 0):
        raise ValueError(f"INPUT.VOLUME.TARGET_SPACING is {tuple(target_spacing)}; give 3 "
                         "positive spacings in mm, or () to keep the file's.")
    if intensity_mode not in _INTENSITY_MODES:
        raise ValueError(f"INPUT.VOLUME.INTENSITY.MODE is {intensity_mode!r}; use one of "
                         f"{_INTENSITY_MODES}.")
    low, high = intensity_range
    if intensity_mode != "none" and not low < high:
        key = "PERCENTILES" if intensity_mode == "percentiles" else "WINDOW"
        raise ValueError(f"INPUT.VOLUME.INTENSITY.{key} is {tuple(intensity_range)}; the lower "
                         "value must be below the upper one.")
