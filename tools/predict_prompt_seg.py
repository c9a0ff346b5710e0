#!/usr/bin/env python
"""Segment the boxes of challenge npz inputs (2D and 3D) with a box-prompted model.

    python tools/predict_prompt_seg.py --config-file configs/prompt_seg/C.yaml \
        --weights model_final.pth --input inputs/ --output segs/ [--engine openvino] [KEY VALUE ...]
    python tools/predict_prompt_seg.py --config-file C.yaml --weights daft_models/ ...  # routing
    python tools/predict_prompt_seg.py --config-file C.yaml --weights exported/ --engine openvino

Every ``*.npz`` of ``--input`` holding ``imgs`` and ``boxes`` (2D (N, 4) / 3D (N, 6) inclusive
pixel indices, 3D with ``spacing``) gives ``--output/<same name>`` with ``segs`` (uint16: box i ->
label i + 1, 0 background, overlaps per ``MODEL.PROMPT_SEG.OVERLAP``) and a row of
``--output/predictions.csv``: file, modality, route, status, boxes, encoder calls, distinct slices
inside the boxes (3D), model load seconds (0 once loaded) and the case's seconds (reading,
inference and writing; model load excluded). 3D propagation follows
``MODEL.PROMPT_SEG.PROPAGATION`` (``KEY VALUE`` overrides, e.g.
``MODEL.PROMPT_SEG.PROPAGATION.WITHIN_PROMPT False`` for the originals' whole masks).

``--weights``: a checkpoint, an export folder of ``tools/export_prompt_seg.py`` (run with
``--engine onnxruntime`` or ``openvino``), or a folder of per-modality models plus a general
one (``<modality>.pth`` or ``<modality>/`` export folders, ``general.pth``, or a ``routes.yaml``;
see :mod:`vertspine.modeling.prompt_seg.routing`). Each case's modality comes from its file-name
prefix (``2DBox_X-Ray_...`` is XRay) or ``--modality-csv``; it goes to its modality's model, else
the general one. ``--engine onnxruntime|openvino`` with a checkpoint exports it to
``--cache-dir`` first (reused while the weights are unchanged).

Bad inputs do not stop the run: a case with zero boxes or an unknown modality is skipped
(status ``skipped``, the reason in the log and the CSV; ``--unknown-modality general`` routes
the latter to the general model instead); an unreadable file, no ``imgs``, boxes outside the
image or with a minimum above the maximum, a 3D case without ``spacing`` are errors (status
``error``, nothing written) and the exit status is 1.
"""
import argparse
import csv
import logging
import os
import sys
import time
from typing import Dict, List, Optional

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import vertspine  # noqa: E402,F401  (first: detectron2 without compiled ops; registrations)
from detectron2.modeling import build_model  # noqa: E402

from vertspine.config import get_vertspine_cfg, load_config  # noqa: E402
from vertspine.data.prompt_seg import (  # noqa: E402
    NoBoxesError,
    PromptSegFormatError,
    assign_modalities,
    read_prompt_seg_npz,
    write_segs,
)
from vertspine.layers.engines import ENGINES  # noqa: E402
from vertspine.modeling.prompt_seg import (  # noqa: E402
    EXPORT_MANIFEST,
    BoxPromptPredictor,
    ModelRouter,
    RoutingError,
    find_routes,
    inference_options,
    load_prompt_seg_checkpoint,
)
from vertspine.utils.file_io import atomic_write  # noqa: E402

logger = logging.getLogger("vertspine.predict_prompt_seg")

CSV_NAME = "predictions.csv"
COLUMNS = ("file", "modality", "route", "status", "boxes", "encoder_calls", "distinct_slices",
           "load_seconds", "seconds", "message")


def model_loader(cfg, engine: str, cache_dir: str, threads: int, **predictor_options):
    """``load(path) -> BoxPromptPredictor`` for a checkpoint file or an export folder."""

    def load(path: str) -> BoxPromptPredictor:
        if os.path.isfile(os.path.join(path, EXPORT_MANIFEST)):
            if engine == "torch":
                raise ValueError(f"{path} is an export folder (ONNX/OpenVINO files); run it with "
                                 "--engine onnxruntime or openvino, or pass the .pth checkpoint "
                                 "for --engine torch.")
            return BoxPromptPredictor.from_export(path, engine, threads=threads,
                                                  **predictor_options)
        model = build_model(cfg)
        load_prompt_seg_checkpoint(model, path, strict=True)
        return BoxPromptPredictor.from_model(model, engine, cache_dir=cache_dir, threads=threads,
                                             **predictor_options)

    return load


def predict_case(router: ModelRouter, cfg, path: str, modality: Optional[str],
                 output_dir: str, unknown_modality: str) -> Dict:
    """Read, route, segment and write one case; the CSV row (bad inputs give a status)."""
    row = {"file": os.path.basename(path), "modality": modality or "unknown", "route": "",
           "status": "ok", "boxes": 0, "encoder_calls": 0, "distinct_slices": "",
           "load_seconds": 0.0, "seconds": 0.0, "message": ""}
    start = time.perf_counter()
    try:
        case = read_prompt_seg_npz(path, require_boxes=True)
        if modality is None and unknown_modality == "skip":
            raise RoutingError("unknown modality (no known file-name prefix or CSV row); pass "
                               "--modality-csv or --unknown-modality general")
        row["route"] = route = router.route(modality)
        predictor, row["load_seconds"] = router.model(route)
        start += row["load_seconds"]  # the case's time excludes loading its model
        window = (tuple(cfg.INPUT.PROMPT_SEG.CT_WINDOW)
                  if modality in cfg.INPUT.PROMPT_SEG.CT_WINDOW_MODALITIES else None)
        result = predictor.predict(case, ct_window=window or None)
        write_segs(os.path.join(output_dir, os.path.basename(path)), result.segs)
    except (NoBoxesError, RoutingError) as reason:
        row.update(status="skipped", message=str(reason))
        logger.warning("Skipped %s: %s", row["file"], reason)
    except PromptSegFormatError as error:
        row.update(status="error", message=str(error))
        logger.error("%s", error)
    else:
        row.update(boxes=len(case.boxes), encoder_calls=result.encoder_calls,
                   distinct_slices=("" if result.distinct_slices is None
                                    else result.distinct_slices))
        if case.spatial_dims == 3:
            logger.info("%s: %d boxes, encoder calls %d, distinct slices inside the boxes %d",
                        row["file"], row["boxes"], result.encoder_calls, result.distinct_slices)
    row["seconds"] = round(time.perf_counter() - start, 4)
    row["load_seconds"] = round(row["load_seconds"], 4)
    logger.info("%s [%s -> %s] %s in %.3f s", row["file"], row["modality"], row["route"] or "-",
                row["status"], row["seconds"])
    return row


def predict_folder(cfg, args) -> List[Dict]:
    """Every npz of ``args.input``, in name order; writes the outputs and the CSV."""
    if not os.path.isdir(args.input):
        raise FileNotFoundError(f"--input {args.input!r} is not a folder of npz files.")
    files = sorted(os.path.join(args.input, name) for name in os.listdir(args.input)
                   if name.endswith(".npz"))
    if not files:
        raise FileNotFoundError(f"--input {args.input!r} holds no .npz file.")
    if os.path.abspath(args.input) == os.path.abspath(args.output):
        raise ValueError("--output must differ from --input (outputs keep the input names).")
    modalities, _ = assign_modalities(files, args.modality_csv, unknown="skip")
    options = dict(inference_options(cfg), batch_slices=args.batch_slices)
    router = ModelRouter(find_routes(args.weights),
                         model_loader(cfg, args.engine, args.cache_dir, args.threads, **options))
    os.makedirs(args.output, exist_ok=True)
    rows = [predict_case(router, cfg, path, modalities.get(path), args.output,
                         args.unknown_modality) for path in files]
    with atomic_write(os.path.join(args.output, CSV_NAME), "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    return rows


def build_argument_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config-file", required=True, help="a PromptSegmentor config")
    parser.add_argument("--weights", required=True,
                        help="checkpoint, export folder, or folder of per-modality models")
    parser.add_argument("--input", required=True, help="folder of npz inputs (imgs, boxes)")
    parser.add_argument("--output", required=True, help="folder for the segs npz files and CSV")
    parser.add_argument("--engine", choices=ENGINES, default="torch")
    parser.add_argument("--cache-dir", default="output/engines",
                        help="exported graphs of checkpoints (onnxruntime/openvino)")
    parser.add_argument("--threads", type=int, default=0, help="engine CPU threads (0: default)")
    parser.add_argument("--modality-csv", default=None,
                        help="CSV with file_name,modality columns (default: file-name prefix)")
    parser.add_argument("--unknown-modality", choices=("skip", "general"), default="skip",
                        help="cases whose modality is unknown: skip (reported) or general model")
    parser.add_argument("--batch-slices", type=int, default=8, help="3D slices per encoder call")
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="config overrides: KEY VALUE ...")
    return parser


def main(argv=None) -> int:
    args = build_argument_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    cfg = load_config(get_vertspine_cfg(), args.config_file, args.opts)
    cfg.freeze()
    rows = predict_folder(cfg, args)
    done = [r for r in rows if r["status"] == "ok"]
    volumes = [r for r in done if r["distinct_slices"] != ""]
    if volumes:
        calls = sum(r["encoder_calls"] for r in volumes)
        slices = sum(r["distinct_slices"] for r in volumes)
        print(f"3D: {len(volumes)} volumes, encoder calls {calls}, distinct slices inside the "
              f"boxes {slices} ({'equal' if calls == slices else 'DIFFERENT'})")
    print(f"{len(done)} of {len(rows)} cases segmented, "
          f"{sum(r['status'] == 'skipped' for r in rows)} skipped, "
          f"{sum(r['status'] == 'error' for r in rows)} errors; per-case seconds (load excluded) "
          f"total {sum(r['seconds'] for r in done):.2f}; model load "
          f"{sum(r['load_seconds'] for r in rows):.2f} s; {os.path.join(args.output, CSV_NAME)}")
    return 1 if any(r["status"] == "error" for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
