"""Data-aware routing (DAFT): one model per modality plus a general one; each case goes to its
modality's model and falls back to the general one.

A route source (``--weights`` of ``tools/predict_prompt_seg.py``) is one of:

- a checkpoint file (``.pth``/``.pkl``) or an export folder (holding
  :data:`.export.EXPORT_MANIFEST`): one route, ``general``, for every case;
- a folder with ``routes.yaml`` (or ``routes.json``): ``{route: file or folder}``, paths relative
  to that folder, one route named ``general`` for the fallback (optional);
- a folder of ``<modality>.pth`` files and/or ``<modality>/`` export folders, plus optionally
  ``general.pth`` / ``general/``.

Route names are modalities as :func:`vertspine.data.prompt_seg.modality_from_name` canonicalises
them (``X-Ray.pth`` and ``XRay.pth`` are both the route ``XRay``); other names are kept as
written (modalities a CSV may define). Models are loaded on first use and kept.
"""
import logging
import os
import time
from typing import Callable, Dict, Optional, Tuple

import yaml

from vertspine.data.prompt_seg import modality_from_name

from .export import EXPORT_MANIFEST

__all__ = ["GENERAL_ROUTE", "ModelRouter", "RoutingError", "find_routes"]

logger = logging.getLogger(__name__)

GENERAL_ROUTE = "general"
_CHECKPOINT_ENDINGS = (".pth", ".pkl", ".pt")
_ROUTE_MAPS = ("routes.yaml", "routes.yml", "routes.json")


class RoutingError(ValueError):
    """A case has no route (its modality has no model and there is no general one)."""


def _is_model(path: str) -> bool:
    return (os.path.isfile(path) and path.endswith(_CHECKPOINT_ENDINGS)) or \
        os.path.isfile(os.path.join(path, EXPORT_MANIFEST))


def _route_name(name: str) -> str:
    stem = os.path.splitext(name)[0] if name.endswith(_CHECKPOINT_ENDINGS) else name
    if stem.lower() == GENERAL_ROUTE:
        return GENERAL_ROUTE
    return modality_from_name(stem) or stem


def find_routes(source: str) -> Dict[str, str]:
    """``{route: checkpoint file or export folder}`` of a route source (module docstring).

    Raises:
        FileNotFoundError: no such path, a mapped path missing, or a folder without models.
        ValueError: a route map that is not a mapping of names to paths, or two files giving
            the same route.
    """
    if not os.path.exists(source):
        raise FileNotFoundError(f"Weights not found: {source}")
    if _is_model(source):
        return {GENERAL_ROUTE: source}
    if not os.path.isdir(source):
        raise FileNotFoundError(f"{source} is neither a checkpoint "
                                f"({'/'.join(_CHECKPOINT_ENDINGS)}) nor a folder of models.")
    maps = [os.path.join(source, m) for m in _ROUTE_MAPS if os.path.isfile(os.path.join(source, m))]
    if maps:
        with open(maps[0], encoding="utf-8") as f:
            table = yaml.safe_load(f)
        if not isinstance(table, dict) or not all(isinstance(v, str) for v in table.values()):
            raise ValueError(f"{maps[0]} must map route names to paths, e.g. 'CT: ct.pth' and "
                             f"'general: general.pth'; got {table!r}.")
        routes = {_route_name(str(k)): os.path.join(source, v) for k, v in table.items()}
        missing = {k: v for k, v in routes.items() if not _is_model(v)}
        if missing:
            raise FileNotFoundError(f"{maps[0]}: no checkpoint or export folder at {missing}.")
        return routes
    routes: Dict[str, str] = {}
    for name in sorted(os.listdir(source)):
        path = os.path.join(source, name)
        if not _is_model(path):
            continue
        route = _route_name(name)
        if route in routes:
            raise ValueError(f"{source}: {os.path.basename(routes[route])} and {name} both give "
                             f"the route {route!r}; keep one.")
        routes[route] = path
    if not routes:
        raise FileNotFoundError(f"{source} holds no model: put <modality>.pth files (CT.pth, "
                                f"XRay.pth, ...), export folders, a general.pth, or a "
                                f"{_ROUTE_MAPS[0]} mapping route names to them.")
    return routes


class ModelRouter:
    """Routes cases to lazily loaded, kept models."""

    def __init__(self, routes: Dict[str, str], load: Callable[[str], object]):
        """
        Args:
            routes: ``{route: checkpoint file or export folder}`` (:func:`find_routes`).
            load: builds a model (e.g. a :class:`.predictor.BoxPromptPredictor`) from a path.
        """
        if not routes:
            raise ValueError("ModelRouter needs at least one route.")
        self.routes, self._load, self._models = dict(routes), load, {}
        logger.info("Routes: %s", ", ".join(f"{k} -> {v}" for k, v in sorted(routes.items())))

    def route(self, modality: Optional[str]) -> str:
        """The route of a case of ``modality`` (None when unknown): its own, else general.

        Raises:
            RoutingError: neither exists.
        """
        if modality in self.routes:
            return modality
        if GENERAL_ROUTE in self.routes:
            return GENERAL_ROUTE
        raise RoutingError(f"No model for modality {modality!r} and no {GENERAL_ROUTE!r} "
                           f"fallback (routes: {sorted(self.routes)}); add {modality}.pth or "
                           f"{GENERAL_ROUTE}.pth.")

    def model(self, route: str) -> Tuple[object, float]:
        """(the route's model, seconds spent loading it now: 0 when it was already loaded)."""
        if route in self._models:
            return self._models[route], 0.0
        start = time.perf_counter()
        self._models[route] = self._load(self.routes[route])
        seconds = time.perf_counter() - start
        logger.info("Loaded route %s from %s in %.2f s.", route, self.routes[route], seconds)
        return self._models[route], seconds
