"""Where vertspine's datasets live: ``$VERTSPINE_DATASETS``, default ``datasets`` (relative to
the working directory)."""
import os

__all__ = ["datasets_root"]


def datasets_root(*parts: str) -> str:
    """``$VERTSPINE_DATASETS`` (default "datasets") joined with ``parts``, read at each call."""
    return os.path.join(os.environ.get("VERTSPINE_DATASETS", "datasets"), *parts)
