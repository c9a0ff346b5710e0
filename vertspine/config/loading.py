"""Building a run's config from a YAML file and ``KEY VALUE`` overrides, with errors that say
what to fix.

detectron2 / yacs report a misspelt key, a value of the wrong type or an override without a
value as a bare AssertionError/KeyError/ValueError; :func:`load_config` re-raises them as
:class:`ConfigError` naming the file or the override and the fix, and checks that
``MODEL.DEVICE`` exists on this machine (torch's own error names no key).
"""
import os
from typing import Sequence

import torch
from detectron2.config import CfgNode

__all__ = ["ConfigError", "check_device", "load_config"]

_SHOW_DEFAULTS = ("python -c \"import vertspine; from vertspine.config import get_vertspine_cfg; "
                  "print(get_vertspine_cfg())\"")


class ConfigError(ValueError):
    """A config file or override that cannot be applied (the message names it and the fix)."""


def load_config(cfg: CfgNode, config_file: str, opts: Sequence[str]) -> CfgNode:
    """Merge ``config_file`` then the ``KEY VALUE`` ``opts`` into ``cfg``; check MODEL.DEVICE.

    Raises:
        ConfigError: the file is missing or holds an unknown key / a wrong type, an override
            is unknown, of the wrong type or has no value, or MODEL.DEVICE is not available.
    """
    if not os.path.isfile(config_file):
        raise ConfigError(f"Config file {config_file!r} does not exist (working directory "
                          f"{os.getcwd()}); give the path of a YAML file under configs/.")
    try:
        cfg.merge_from_file(config_file)
    except (AssertionError, KeyError, ValueError) as e:
        raise ConfigError(f"{config_file}: {e}. Fix the key or value in the file; the keys and "
                          f"the types of their defaults are printed by {_SHOW_DEFAULTS}.") from e
    if len(opts) % 2:
        raise ConfigError(f"Command-line overrides come as KEY VALUE pairs, but {opts[-1]!r} has "
                          "no value (flags such as --num-gpus go before them).")
    try:
        cfg.merge_from_list(list(opts))
    except (AssertionError, KeyError, ValueError) as e:
        raise ConfigError(f"Command-line override: {e}. Fix the KEY VALUE pair; the keys and the "
                          f"types of their defaults are printed by {_SHOW_DEFAULTS}.") from e
    check_device(cfg.MODEL.DEVICE)
    return cfg


def check_device(device: str) -> None:
    """ConfigError when ``device`` (MODEL.DEVICE) names a CUDA device this machine lacks."""
    if not device.startswith("cuda"):
        return
    if not torch.cuda.is_available():
        raise ConfigError(f"MODEL.DEVICE is {device!r} but this machine has no CUDA device "
                          "(torch.cuda.is_available() is False); add MODEL.DEVICE cpu.")
    index = torch.device(device).index
    if index is not None and index >= torch.cuda.device_count():
        raise ConfigError(f"MODEL.DEVICE is {device!r} but this machine has "
                          f"{torch.cuda.device_count()} CUDA devices; use cuda:0 .. "
                          f"cuda:{torch.cuda.device_count() - 1}, or cuda.")
