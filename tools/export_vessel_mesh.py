#!/usr/bin/env python
"""Export a vessel mask as a surface mesh (STL, HTML viewer) and maximum-intensity projections.

    python tools/export_vessel_mesh.py --mask out/case_001_pred.nii.gz \
        --gt data/case_001_label.nii.gz --image data/case_001.nii.gz --output out/meshes

Writes, atomically, into ``--output`` (``STEM`` = ``--name``, default the mask's file name
without its ending):

* ``STEM.stl``: binary STL of the mask's marching-cubes surface (level 0.5 on the mask
  thresholded at ``--threshold``, voxel spacing applied), in mm.
* ``STEM.html``: the surface in an interactive viewer (plotly, works offline), with the
  ground truth's surface beside it, translucent, when ``--gt`` is given.
* ``STEM_mip.png``: maximum-intensity projections along the three array axes (columns) of the
  image, the ground truth and the mask, in that order (rows, those given).

Frame: a NIfTI mask's mesh is in its world frame (the file's affine: RAS+ mm), so it overlays
the scan in any viewer; a ``.npy`` mask has no geometry, so its mesh is in mm along the array
axes (``--spacing``, default 1 mm), from the centre of voxel (0, 0, 0). The volumes must share
the mask's shape and, for NIfTI, its affine.
"""
import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from vertspine.data.readers import read_volume  # noqa: E402
from vertspine.evaluation.vessel_mesh import (  # noqa: E402
    affine_spacing,
    mask_mesh,
    mip_grid,
    write_mesh_html,
    write_stl,
)
from vertspine.utils.file_io import write_png  # noqa: E402

_ENDINGS = (".nii.gz", ".nii", ".npy")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mask", required=True, help="the mask to mesh (.nii/.nii.gz/.npy)")
    parser.add_argument("--gt", help="ground-truth mask: drawn in the viewer and projected")
    parser.add_argument("--image", help="the image: projected in the first row")
    parser.add_argument("--output", required=True, help="output folder")
    parser.add_argument("--name", help="output file stem (default: the mask's file stem)")
    parser.add_argument("--threshold", type=float, default=0.5,
                        help="mask voxels >= this are inside (default: %(default)s)")
    parser.add_argument("--spacing", type=float, nargs=3, metavar=("S0", "S1", "S2"),
                        help="mm per array axis of .npy inputs (NIfTI files carry their own)")
    return parser.parse_args(argv)


def _stem(path: str) -> str:
    name = os.path.basename(path)
    for ending in _ENDINGS:
        if name.lower().endswith(ending):
            return name[:-len(ending)]
    return os.path.splitext(name)[0]


def _read(path: str, spacing, reference=None):
    """(array, affine) of one input, checked against the mask's (``reference``)."""
    is_npy = path.lower().endswith(".npy")
    if spacing and not is_npy:
        raise ValueError(f"--spacing is for .npy inputs; {path} carries its own spacing.")
    array, meta = read_volume(path, **({"spacing": tuple(spacing)} if spacing else {}))
    if reference is not None:
        shape, affine = reference
        if array.shape != shape or not np.allclose(meta.affine, affine, atol=1e-4):
            raise ValueError(f"{path}: shape {array.shape} and affine differ from the mask's "
                             f"{shape}; give volumes of one geometry.")
    return array, meta.affine


def main(argv=None) -> dict:
    """Run the export; returns ``{"stl", "html", "mip"}``: the paths written."""
    args = parse_args(argv)
    try:
        mask, affine = _read(args.mask, args.spacing)
        reference = (mask.shape, affine)
        gt = _read(args.gt, args.spacing, reference)[0] if args.gt else None
        image = _read(args.image, args.spacing, reference)[0] if args.image else None
    except (FileNotFoundError, ValueError) as error:  # ImageReadError is a ValueError
        raise SystemExit(f"export_vessel_mesh.py: {error}") from error
    inside = mask >= args.threshold
    if not inside.any():
        raise SystemExit(f"export_vessel_mesh.py: {args.mask} has no voxel >= {args.threshold} "
                         "(an empty mask has no surface); check the file or --threshold.")
    stem = args.name or _stem(args.mask)
    paths = {key: os.path.join(args.output, stem + ending)
             for key, ending in (("stl", ".stl"), ("html", ".html"), ("mip", "_mip.png"))}

    vertices, faces = mask_mesh(inside, affine)
    write_stl(paths["stl"], vertices, faces)
    traces = [("mask", vertices, faces, "crimson", 1.0)]
    if gt is not None and (gt >= args.threshold).any():
        traces.append(("ground truth", *mask_mesh(gt >= args.threshold, affine), "royalblue", 0.35))
    frame = "world RAS+ mm" if args.mask.lower().endswith((".nii", ".nii.gz")) else "array-axis mm"
    write_mesh_html(paths["html"], traces, f"{stem} ({frame})")
    volumes = [(v, is_mask) for v, is_mask in ((image, False), (gt, True), (mask, True))
               if v is not None]
    write_png(paths["mip"], mip_grid(volumes, affine_spacing(affine), threshold=args.threshold))
    print(f"Wrote {len(faces)} triangles ({frame}) to {paths['stl']}, the viewer "
          f"{paths['html']} and the projections {paths['mip']}.")
    return paths


if __name__ == "__main__":
    main()
