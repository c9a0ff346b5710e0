"""vertspine configuration: :func:`add_vertspine_config` adds every vertspine key; parts with keys
of their own register their ``add_*_config`` with :func:`register_config`."""
from .defaults import add_vertspine_config, get_vertspine_cfg, register_config
from .loading import ConfigError, check_device, load_config

__all__ = [
    "ConfigError",
    "add_vertspine_config",
    "check_device",
    "get_vertspine_cfg",
    "load_config",
    "register_config",
]
