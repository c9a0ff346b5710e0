#!/usr/bin/env python
"""Segment the vessels of NIfTI or ``.npy`` volumes with a VesselSegmentor (zero-shot or fine-tuned).

    python tools/segment_vessels.py --config-file CONFIG --input scan.nii.gz --output out/ \
        --weights model_final.pth [--save-probabilities] [KEY VALUE ...]
    python tools/segment_vessels.py --config-file CONFIG --input cases/ --output out/ \
        --weights model_final.pth --spacing 0.5 0.5 1.0      # .npy files: spacing in mm

Each case ``<stem>.nii[.gz]`` / ``<stem>.npy`` gives ``<stem>_vessel_mask.nii.gz`` (uint8, 1 =
vessel) and with ``--save-probabilities`` ``<stem>_vessel_prob.nii.gz`` (float32 sigmoid
probability), on the input's voxel grid: a NIfTI input's header is kept (affine, qform/sform and
their codes, units), a ``.npy`` gets ``diag(spacing, 1)``. Files are written atomically.

The volume goes through the config's test mapping (``VolumeMapper``: ``INPUT.VOLUME.INTENSITY``
scaling, ``ORIENTATION`` if set, mapped back afterwards) and the model's inference
(:class:`vertspine.modeling.vessel.VesselInference`: ``MODEL.SEGMENTOR.SLIDING_WINDOW``,
``MODEL.VESSEL.INFERENCE``). A folder is processed case by case (its ``.nii``, ``.nii.gz`` and
``.npy`` files and vesselFM's ``<case>/img.npy``, written as ``<case>_vessel_mask.nii.gz``,
sorted); a case that cannot be read, is 2D, holds NaN/infinite voxels or is
constant (e.g. all zero) is skipped with its reason logged, nothing written for it, and the exit
status is 1. Model loading and each case are timed separately.
"""
import argparse
import logging
import os
import sys
import time
from typing import List, Optional, Sequence, Tuple

import numpy as np
import torch

import vertspine  # noqa: F401  (first: detectron2 without compiled ops; registrations)
from detectron2.modeling import build_model
from vertspine.config import get_vertspine_cfg, load_config
from vertspine.data.readers import ImageReadError, read_volume
from vertspine.data.volume_mapper import VolumeMapper
from vertspine.engine import AtomicDetectionCheckpointer, check_weights_file
from vertspine.modeling.vessel import VesselSegmentor
from vertspine.utils.file_io import write_nifti

logger = logging.getLogger("vertspine.segment_vessels")

ENDINGS = (".nii.gz", ".nii", ".npy")
VESSELFM_IMAGE = "img.npy"  # vesselFM's <split>/<case>/img.npy layout: the case is the folder


class BadVolumeError(ValueError):
    """A volume that reads but cannot be segmented (the message names the file and the fix)."""


def list_cases(path: str) -> List[str]:
    """``path`` itself, or the volumes of the folder ``path``, sorted: its :data:`ENDINGS` files
    and vesselFM's ``<case>/img.npy`` files.

    Raises:
        FileNotFoundError: ``path`` does not exist, or the folder holds no volume.
        ValueError: two volumes of the folder would write the same output names.
    """
    if os.path.isfile(path):
        return [path]
    if not os.path.isdir(path):
        raise FileNotFoundError(f"--input {path!r} is neither a file nor a folder.")
    cases = []
    for name in sorted(os.listdir(path)):
        full = os.path.join(path, name)
        if os.path.isfile(full) and name.lower().endswith(ENDINGS):
            cases.append(full)
        elif os.path.isfile(os.path.join(full, VESSELFM_IMAGE)):
            cases.append(os.path.join(full, VESSELFM_IMAGE))
    if not cases:
        raise FileNotFoundError(f"--input folder {path!r} holds no {', '.join(ENDINGS)} file "
                                f"and no <case>/{VESSELFM_IMAGE}.")
    stems = [case_stem(case) for case in cases]
    repeated = sorted({stem for stem in stems if stems.count(stem) > 1})
    if repeated:
        raise ValueError(f"--input folder {path!r}: several volumes are named {repeated} "
                         "(e.g. scan.nii and scan.nii.gz), so their outputs would overwrite each "
                         "other; rename or move one of them.")
    return cases


def case_stem(path: str) -> str:
    """``scan.nii.gz`` -> ``scan``; vesselFM's ``case_7/img.npy`` -> ``case_7``."""
    name = os.path.basename(path)
    if name == VESSELFM_IMAGE:
        return os.path.basename(os.path.dirname(os.path.abspath(path)))
    for ending in ENDINGS:
        if name.lower().endswith(ending):
            return name[:-len(ending)]
    return name


def check_volume(path: str, array: np.ndarray) -> None:
    """:class:`BadVolumeError` for NaN/infinite voxels or a constant (e.g. all-zero) volume."""
    finite = np.isfinite(array)
    if not finite.all():
        raise BadVolumeError(f"{path}: {int(finite.size - finite.sum())} NaN or infinite voxels; "
                             "replace them (e.g. np.nan_to_num with the background value).")
    if array.min() == array.max():
        raise BadVolumeError(f"{path}: every voxel is {array.flat[0]} (no contrast to segment); "
                             "check that the right file was exported.")


def to_input_grid(array: np.ndarray, affine: np.ndarray, input_affine: np.ndarray) -> np.ndarray:
    """Undo the mapper's reorientation: ``array`` on ``affine``'s axes -> the input's axes."""
    from nibabel.orientations import apply_orientation, io_orientation, ornt_transform

    transform = ornt_transform(io_orientation(affine), io_orientation(input_affine))
    return apply_orientation(array, transform)


def load_model(cfg, weights: str) -> torch.nn.Module:
    """The config's VesselSegmentor in eval mode, with every parameter loaded from ``weights``
    (random initialisation when empty, with a warning)."""
    model = build_model(cfg)
    if not isinstance(model, VesselSegmentor):
        raise ValueError(f"MODEL.META_ARCHITECTURE is {cfg.MODEL.META_ARCHITECTURE!r}; this tool "
                         "needs \"VesselSegmentor\" (its vessel_mask output).")
    if weights:
        check_weights_file(weights, "", resume=False)
        AtomicDetectionCheckpointer(model, allow_partial_weights=False).load(
            weights, checkpointables=[])
    else:
        logger.warning("No --weights: the network is randomly initialised.")
    return model.eval()


def segment_case(model, mapper: VolumeMapper, path: str,
                 spacing: Optional[Sequence[float]]) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One volume -> (uint8 mask, float32 probability, input affine), on the input's grid.

    Raises:
        ImageReadError, BadVolumeError: the case cannot be segmented (see the module docstring).
    """
    options = {"spacing": tuple(spacing)} if spacing and path.lower().endswith(".npy") else {}
    array, meta = read_volume(path, **options)
    check_volume(path, array)
    record = {"file_name": path, "image_id": case_stem(path), "affine": meta.affine}
    data = mapper(record)
    with torch.no_grad():
        output = model([data])[0]
    mask = to_input_grid(output["vessel_mask"].numpy(), data["affine"], meta.affine)
    probability = to_input_grid(output["sem_seg"][1].float().cpu().numpy(), data["affine"],
                                meta.affine)
    return mask.astype(np.uint8), probability.astype(np.float32), meta.affine


def write_case(path: str, output_dir: str, mask: np.ndarray, probability: Optional[np.ndarray],
               affine: np.ndarray) -> List[str]:
    """Write the mask (and probability) NIfTI files of one case; returns their paths."""
    header = None
    if not path.lower().endswith(".npy"):
        import nibabel as nib

        header = nib.load(path).header
    outputs = [(f"{case_stem(path)}_vessel_mask.nii.gz", mask)]
    if probability is not None:
        outputs.append((f"{case_stem(path)}_vessel_prob.nii.gz", probability))
    written = []
    for name, array in outputs:
        written.append(os.path.join(output_dir, name))
        write_nifti(written[-1], array, affine, header=header)
    return written


def build_argument_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config-file", required=True, help="a VesselSegmentor config")
    parser.add_argument("--input", required=True, help="a .nii/.nii.gz/.npy volume or a folder")
    parser.add_argument("--output", required=True, help="folder for the NIfTI outputs")
    parser.add_argument("--weights", default="", help="checkpoint (default: MODEL.WEIGHTS)")
    parser.add_argument("--spacing", type=float, nargs=3, default=None,
                        help=".npy inputs: voxel spacing in mm per array axis (default 1 1 1)")
    parser.add_argument("--save-probabilities", action="store_true",
                        help="also write <stem>_vessel_prob.nii.gz (float32)")
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="config overrides: KEY VALUE ...")
    return parser


def main(argv=None) -> int:
    args = build_argument_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    cfg = load_config(get_vertspine_cfg(), args.config_file, args.opts)
    if len(cfg.INPUT.VOLUME.TARGET_SPACING):
        raise ValueError(f"INPUT.VOLUME.TARGET_SPACING is {list(cfg.INPUT.VOLUME.TARGET_SPACING)}: "
                         "the mapper would change the voxel grid of the outputs. Set it to () and "
                         "MODEL.VESSEL.INFERENCE.TARGET_SPACING instead (it resamples back).")
    cfg.freeze()
    cases = list_cases(args.input)

    start = time.perf_counter()
    model = load_model(cfg, args.weights or cfg.MODEL.WEIGHTS)
    mapper = VolumeMapper(cfg, is_train=False)
    logger.info("Model loaded in %.2f s (%s on %s)", time.perf_counter() - start,
                args.weights or cfg.MODEL.WEIGHTS or "random weights", cfg.MODEL.DEVICE)

    skipped = []
    for index, path in enumerate(cases, 1):
        start = time.perf_counter()
        try:
            mask, probability, affine = segment_case(model, mapper, path, args.spacing)
        except (ImageReadError, BadVolumeError) as e:
            skipped.append(path)
            logger.error("[%d/%d] skipped: %s", index, len(cases), e)
            continue
        written = write_case(path, args.output, mask,
                             probability if args.save_probabilities else None, affine)
        logger.info("[%d/%d] %s: %s voxels, %d vessel (%.2f%%), %.2f s -> %s", index, len(cases),
                    os.path.basename(path), "x".join(map(str, mask.shape)), int(mask.sum()),
                    100.0 * mask.mean(), time.perf_counter() - start, ", ".join(written))
    if skipped:
        logger.error("%d of %d cases skipped: %s", len(skipped), len(cases), ", ".join(skipped))
    return 1 if skipped else 0


if __name__ == "__main__":
    sys.exit(main())
