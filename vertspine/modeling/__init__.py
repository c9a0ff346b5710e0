"""vertspine's model families, one sub-package each.

Importing this package imports every sub-package found in this folder; each family registers
itself on import (its meta-architecture in detectron2's ``META_ARCH_REGISTRY``, backbones in
``BACKBONE_REGISTRY``, its config node with :func:`vertspine.config.register_config`, its class-count
key with :func:`vertspine.data.register_num_classes_key`). Adding a family is adding a folder: no
list elsewhere names the families. Heavy libraries (segment_anything, open_clip, timm, smp) are
imported where a model is built, so importing the families stays light.
"""
import importlib
import pkgutil

__all__ = ["FAMILIES"]

FAMILIES = tuple(module.name for module in pkgutil.iter_modules(__path__) if module.ispkg)
for _family in FAMILIES:
    importlib.import_module(f"{__name__}.{_family}")
