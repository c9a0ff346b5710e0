#!/usr/bin/env python
"""Train or evaluate any vertspine model: the detectron2 command line.

    python train_net.py --config-file configs/phantom/faster_rcnn_R_50_FPN_phantom_lesions.yaml \
        --num-gpus 1 MODEL.DEVICE cpu
    python train_net.py --config-file CONFIG --eval-only MODEL.WEIGHTS output/model_final.pth
    python train_net.py --config-file CONFIG --resume          # continue after a stop

``--num-gpus N`` starts N processes: one per GPU with NCCL where there are GPUs, N CPU processes
with gloo where there are none. ``--dist-url`` defaults to ``auto`` (a free local port).
Trailing ``KEY VALUE`` pairs override the config.
"""
import vertspine  # noqa: F401  (first: detectron2 without compiled ops; registrations)
from detectron2.engine import default_argument_parser, default_setup
from detectron2.utils import comm
from detectron2.utils.logger import setup_logger
from vertspine.config import get_vertspine_cfg, load_config
from vertspine.data import register_datasets_from_config, register_image_folders_from_config
from vertspine.engine import Trainer, check_weights_file, launch, load_evaluation_weights


def setup(args):
    """Config from defaults + vertspine keys + file + command-line overrides (errors name the
    key and the fix, :func:`vertspine.config.load_config`); logging (the
    detectron2, fvcore and vertspine loggers to the console and OUTPUT_DIR/log.txt), seeds,
    config dump in OUTPUT_DIR; datasets named in DATASETS.COCO_JSON and DATASETS.IMAGE_FOLDER
    registered."""
    cfg = load_config(get_vertspine_cfg(), args.config_file, args.opts)
    cfg.freeze()
    default_setup(cfg, args)
    setup_logger(cfg.OUTPUT_DIR, distributed_rank=comm.get_rank(), name="vertspine")
    register_datasets_from_config(cfg)
    register_image_folders_from_config(cfg)
    return cfg


def main(args):
    cfg = setup(args)
    check_weights_file(cfg.MODEL.WEIGHTS, cfg.OUTPUT_DIR, args.resume)
    if args.eval_only:
        model = Trainer.build_model(cfg)
        load_evaluation_weights(model, cfg, args.resume)
        return Trainer.test(cfg, model)
    trainer = Trainer(cfg)
    trainer.resume_or_load(resume=args.resume)
    return trainer.train()


def build_argument_parser():
    """detectron2's parser with ``--dist-url auto`` as the default."""
    parser = default_argument_parser()
    parser.set_defaults(dist_url="auto")
    return parser


if __name__ == "__main__":
    args = build_argument_parser().parse_args()
    launch(
        main,
        args.num_gpus,
        num_machines=args.num_machines,
        machine_rank=args.machine_rank,
        dist_url=args.dist_url,
        args=(args,),
    )
