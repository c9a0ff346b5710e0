"""Ensembles of binary image classifiers: the mean logit, as VinDr-SpineXR's DenseNet ensemble.

Each member's p(positive) is clipped to [1e-6, 1 - 1e-6], turned back into a logit
(``log(p / (1 - p))``), the logits are averaged over members, and the sigmoid of the mean is the
ensemble's probability. Members must cover the same images with the same labels.
"""
from typing import Any, Dict, List, Sequence

import numpy as np

from .classification import image_id_sort_key

__all__ = ["EPSILON", "ensemble_binary_predictions"]

EPSILON = 1e-6


def _by_image(predictions: Sequence[Dict[str, Any]], name: str) -> Dict[str, Dict[str, Any]]:
    table = {str(p["image_id"]): p for p in predictions}
    wide = [p["image_id"] for p in predictions if len(p["probs"]) > 2]
    if wide:
        raise ValueError(f"{name}: images {wide[:5]} have {len(predictions[0]['probs'])} "
                         "class probabilities; the mean-logit ensemble is for binary classifiers "
                         "(1 probability, or 2 with the positive class last).")
    return table


def ensemble_binary_predictions(members: Sequence[Sequence[Dict[str, Any]]],
                                names: Sequence[str] = ()) -> List[Dict[str, Any]]:
    """Mean-logit ensemble of binary classifiers' per-image predictions.

    Args:
        members: per member, the ``predictions`` list of a classification_predictions.json
            (dicts with ``image_id``, ``label``, ``probs``; ``file_name`` kept when present).
        names: a name per member for error messages (e.g. the file paths).
    Returns:
        One prediction per image (sorted by image id) with ``probs`` [p] and
        ``logits`` [mean logit].
    Raises:
        ValueError: fewer than one member, differing image sets, or differing labels.
    """
    if not members:
        raise ValueError("Give at least one member's predictions.")
    names = list(names) or [f"member {i}" for i in range(len(members))]
    tables = [_by_image(m, n) for m, n in zip(members, names)]
    reference = tables[0]
    for table, name in zip(tables[1:], names[1:]):
        if set(table) != set(reference):
            only = sorted(set(table) ^ set(reference))
            raise ValueError(f"{name} and {names[0]} cover different images (e.g. {only[:5]}); "
                             "ensemble predictions of the same dataset split.")
        differing = [k for k in reference if table[k]["label"] != reference[k]["label"]]
        if differing:
            raise ValueError(f"{name} and {names[0]} disagree on the labels of images "
                             f"{differing[:5]}; they come from different datasets.")
    ensembled = []
    for key in sorted(reference, key=lambda k: image_id_sort_key(reference[k]["image_id"])):
        probs = np.clip([t[key]["probs"][-1] for t in tables], EPSILON, 1.0 - EPSILON)
        mean_logit = float(np.mean(np.log(probs / (1.0 - probs))))
        first = reference[key]
        ensembled.append({"image_id": first["image_id"], "file_name": first.get("file_name"),
                          "label": first["label"], "probs": [float(1 / (1 + np.exp(-mean_logit)))],
                          "logits": [mean_logit]})
    return ensembled
