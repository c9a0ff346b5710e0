"""Every YAML config under configs/ merges into the vertspine config (no unknown or misspelt key)
and names a registered meta-architecture and registered datasets."""
import glob
import os

import pytest
from detectron2.data import DatasetCatalog
from detectron2.modeling import META_ARCH_REGISTRY

from conftest import REPO_ROOT
from vertspine.config import get_vertspine_cfg

CONFIGS = sorted(
    path for path in glob.glob(os.path.join(REPO_ROOT, "configs", "**", "*.yaml"), recursive=True)
    if not os.path.basename(path).startswith("Base-")
)


def test_there_are_configs_of_every_family():
    folders = {os.path.basename(os.path.dirname(path)) for path in CONFIGS}
    assert {"phantom", "vertfound", "vindr_spinexr", "classification", "lvmmed",
            "sparse_rcnn", "quick_schedules"} <= folders


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: os.path.relpath(p, REPO_ROOT))
def test_config_merges_and_names_registered_parts(path):
    cfg = get_vertspine_cfg()
    cfg.merge_from_file(path)
    assert cfg.MODEL.META_ARCHITECTURE in META_ARCH_REGISTRY
    for name in (*cfg.DATASETS.TRAIN, *cfg.DATASETS.TEST):
        assert name in DatasetCatalog, f"{path}: dataset {name!r} is not registered"
