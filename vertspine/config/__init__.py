"""vertspine configuration: :func:`add_vertspine_config` adds every vertspine key."""
from .defaults import add_vertspine_config, get_vertspine_cfg

__all__ = ["add_vertspine_config", "get_vertspine_cfg"]
