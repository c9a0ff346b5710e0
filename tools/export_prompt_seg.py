#!/usr/bin/env python
"""Export a box-prompted segmenter to ONNX and OpenVINO IR for CPU inference.

    python tools/export_prompt_seg.py --config-file configs/prompt_seg/C.yaml \
        --weights model_final.pth --output exported/ [--no-openvino] [KEY VALUE ...]

Writes into ``--output``: ``image_encoder.onnx`` (``images`` [N, 3, S, S] -> ``image_embeddings``
[N, 256, E, E], N dynamic), ``box_decoder.onnx`` (prompt encoder + mask decoder:
``image_embeddings`` [1, 256, E, E] and ``boxes`` [B, 4] in the S x S frame -> ``mask_logits``
[B, 4E, 4E] and ``iou_predictions`` [B], B dynamic), the OpenVINO IR of both (``.xml`` +
``.bin``, float32) and ``prompt_seg_export.json`` (S, E, file names, config and weights).
``tools/predict_prompt_seg.py --weights <output> --engine onnxruntime|openvino`` runs them; a
folder of such folders, one per modality (``CT/``, ``XRay/``, ``general/``), is routed by modality.
Every file is written atomically.
"""
import argparse
import logging
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import vertspine  # noqa: E402,F401  (first: detectron2 without compiled ops; registrations)
from detectron2.modeling import build_model  # noqa: E402

from vertspine.config import get_vertspine_cfg, load_config  # noqa: E402
from vertspine.modeling.prompt_seg import (  # noqa: E402
    export_prompt_seg,
    load_prompt_seg_checkpoint,
)

logger = logging.getLogger("vertspine.export_prompt_seg")


def build_argument_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config-file", required=True, help="a PromptSegmentor config")
    parser.add_argument("--weights", required=True, help="the checkpoint to export")
    parser.add_argument("--output", required=True, help="folder for the exported files")
    parser.add_argument("--no-openvino", action="store_true", help="write the ONNX files only")
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="config overrides: KEY VALUE ...")
    return parser


def main(argv=None) -> int:
    args = build_argument_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    cfg = load_config(get_vertspine_cfg(), args.config_file, args.opts)
    cfg.defrost()
    cfg.MODEL.DEVICE = "cpu"  # the graphs are exported from the CPU
    cfg.freeze()
    model = build_model(cfg)
    load_prompt_seg_checkpoint(model, args.weights, strict=True)
    start = time.perf_counter()
    manifest = export_prompt_seg(
        model, args.output, openvino=not args.no_openvino,
        extra={"config_file": os.path.abspath(args.config_file),
               "weights": os.path.abspath(args.weights), "encoder": cfg.MODEL.PROMPT_SEG.ENCODER})
    print(f"Exported {cfg.MODEL.PROMPT_SEG.ENCODER} (S = {manifest['image_size']}, E = "
          f"{manifest['embedding_size']}) to {args.output} in {time.perf_counter() - start:.1f} s: "
          f"{', '.join(sorted(os.listdir(args.output)))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
