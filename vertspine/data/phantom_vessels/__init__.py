"""The vessel phantom: deterministic synthetic 3D vessel trees, vesselFM-style domain randomisation.

Each volume holds one branching tubular tree (:mod:`.tree`: smooth random centre lines,
bifurcations with Murray's-law radii shrinking from 2.5-4 to 1.2 fine voxels, branches that
do not cross, 0-2 loops), labelled as the exact tube mask (uint8 0/1), and rendered with
randomised appearance (:mod:`.appearance`: tissue level and texture, distractor blobs,
vessel contrast, blur, inversion, bias field, noise, storage scale) on a grid of mostly 64^3
voxels (some up to 96 per axis) with anisotropic spacing and, for some volumes, an oblique
affine (:mod:`.generator`). Splits train/val/test share the training appearance domain;
``shift_test`` and ``shift_train`` (the few-shot pool) use a held-out domain whose shifted
parameters never occur in training
(:data:`.appearance.SHIFTED_PARAMETERS`).

Datasets (:mod:`.registration`): ``phantom_vessels_{train,val,test,shift_test,shift_train}``,
NIfTI pairs
written on first use by :mod:`.writer`. Determinism: volume ``i`` of a split depends only on
``(seed, split, i)`` (:class:`.config.VesselPhantomConfig`).
"""
from .appearance import (
    NOISE_MODELS,
    SHIFT_APPEARANCE,
    SHIFTED_PARAMETERS,
    TRAIN_APPEARANCE,
    AppearanceDomain,
    draw_appearance,
    render_volume,
)
from .config import GENERATOR_VERSION, SPLIT_DOMAINS, SPLITS, VesselPhantomConfig
from .generator import APPEARANCE_DOMAINS, VesselVolume, generate_vessel_volume
from .registration import (
    VESSEL_CLASSES,
    VESSEL_DATASET_NAMES,
    default_vessel_root,
    register_phantom_vessels,
)
from .raster import Tube, TubeGrid, rasterize_tubes
from .tree import TreeParams, grow_vessel_tree
from .writer import ensure_vessel_split, vessel_split_paths, write_vessel_split

__all__ = [
    "APPEARANCE_DOMAINS", "AppearanceDomain", "GENERATOR_VERSION", "NOISE_MODELS",
    "SHIFTED_PARAMETERS", "SHIFT_APPEARANCE", "SPLITS", "SPLIT_DOMAINS", "TRAIN_APPEARANCE",
    "TreeParams", "Tube", "TubeGrid", "VESSEL_CLASSES", "VESSEL_DATASET_NAMES",
    "VesselPhantomConfig", "VesselVolume",
    "default_vessel_root", "draw_appearance", "ensure_vessel_split", "generate_vessel_volume",
    "grow_vessel_tree", "rasterize_tubes", "register_phantom_vessels", "render_volume",
    "vessel_split_paths", "write_vessel_split",
]
