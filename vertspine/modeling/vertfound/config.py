"""The ``MODEL.VERTFOUND`` keys: VertFound (Wu et al., MICCAI 2024) vertebra-level identification.

Defaults follow the real recipe (frozen SAM vit_b prompted with ground-truth boxes, frozen OpenAI
CLIP ViT-L/14, trainable fusion module); the solver settings (AdamW, full-model clipping) are in
``configs/vertfound/Base-VertFound.yaml``. Tiny encoders for tests and CPU runs are chosen with
``SAM.MODEL_TYPE "tiny"`` and ``CLIP.MODEL_CONFIG`` (see ``configs/quick_schedules``).
"""
from detectron2.config import CfgNode as CN

from vertspine.config import register_config
from vertspine.data.class_count import register_num_classes_key

__all__ = ["add_vertfound_config"]

register_num_classes_key("VertFound", "MODEL.VERTFOUND.NUM_CLASSES")

# Prompt templates of the text classifier; "{}" is replaced by the level name.
DEFAULT_TEMPLATES = (
    "a lateral spine radiograph showing the {}.",
    "the {} on a sagittal spine image.",
    "a photo of the {}.",
    "{}",
)


@register_config
def add_vertfound_config(cfg: CN) -> CN:
    """Add ``MODEL.VERTFOUND`` with every key and its default to ``cfg`` (in place).

    Args:
        cfg: a detectron2 config.
    Returns:
        The same config, for chaining.
    """
    cfg.MODEL.VERTFOUND = node = CN()
    # Vertebra levels K (25 for C1..C7, T1..T12, L1..L6); must equal the datasets' class count.
    node.NUM_CLASSES = 25
    # Where the boxes come from: "gt" (the record's annotations) or "detections" (a json).
    node.BOX_SOURCE = "gt"
    # COCO results-format json (image_id, bbox XYWH, score) used when BOX_SOURCE is "detections".
    node.DETECTIONS_JSON = ""
    # Detections scoring below this are ignored (BOX_SOURCE "detections").
    node.DETECTION_SCORE_THRESH = 0.05

    node.SAM = CN()
    # "vit_b", "vit_l", "vit_h" (segment_anything builders, 1024 px) or "tiny" (SAM.TINY sizes).
    node.SAM.MODEL_TYPE = "vit_b"
    # Official SAM checkpoint (.pth) loaded by the builder; "" keeps the seeded random init.
    node.SAM.CHECKPOINT = ""
    # Seed of the random initialisation when no checkpoint is given (recorded in caches).
    node.SAM.INIT_SEED = 0
    # Freeze SAM (eval mode, no gradients): the real recipe; required when a cache is used.
    node.SAM.FROZEN = True
    # Boxes per mask-decoder call (bounds memory; the image encoder still runs once per image).
    node.SAM.BOX_CHUNK = 64
    # What runs the frozen image encoder: "torch", "onnxruntime" or "openvino" (exported on first
    # use, see vertspine.layers.engines; FROZEN True only).
    node.SAM.ENGINE = "torch"
    # Folder of the exported encoder files ("" = OUTPUT_DIR/engines); reused while weights match.
    node.SAM.ENGINE_CACHE_DIR = ""
    node.SAM.TINY = CN()
    # Tiny SAM: input side (pixels) and ViT patch side.
    node.SAM.TINY.IMAGE_SIZE = 256
    node.SAM.TINY.PATCH_SIZE = 16
    # Tiny SAM image encoder: width, depth and heads.
    node.SAM.TINY.ENCODER_DIM = 64
    node.SAM.TINY.ENCODER_DEPTH = 2
    node.SAM.TINY.ENCODER_HEADS = 2
    # Tiny SAM prompt/mask-decoder width (the mask token's size; 256 in the real SAM).
    node.SAM.TINY.PROMPT_DIM = 64
    # Tiny SAM two-way transformer: depth, MLP width and heads.
    node.SAM.TINY.DECODER_DEPTH = 2
    node.SAM.TINY.DECODER_MLP_DIM = 256
    node.SAM.TINY.DECODER_HEADS = 2

    node.CLIP = CN()
    # open_clip model name: "ViT-B-16", "ViT-L-14" or "ViT-L-14-336" for OpenAI CLIP.
    node.CLIP.MODEL_NAME = "ViT-L-14"
    # An open_clip model config dict (embed_dim, vision_cfg, text_cfg), e.g. a tiny test model;
    # replaces MODEL_NAME when not empty.
    node.CLIP.MODEL_CONFIG = CN(new_allowed=True)
    # Weights given to open_clip.create_model: a tag ("openai") or a file; "" = seeded random init.
    node.CLIP.PRETRAINED = ""
    # QuickGELU activations, as OpenAI CLIP uses.
    node.CLIP.QUICK_GELU = True
    # Seed of the random initialisation when no weights are given (recorded in caches).
    node.CLIP.INIT_SEED = 0
    # Residual-stream tokens of these visual blocks (0-based; negative counts from the end), each
    # taken before ln_post; one fusion block per entry.
    node.CLIP.LAYERS = [-1, -3, -5]
    # Freeze the image tower (the real recipe); needed to use cached CLIP tokens.
    node.CLIP.FREEZE_IMAGE = True
    # Freeze the text tower; the class embeddings are then computed once and kept.
    node.CLIP.FREEZE_TEXT = True
    # How the image reaches CLIP's square input: "pad" (keep aspect, pad) or "stretch".
    node.CLIP.RESIZE = "pad"

    node.TEXT = CN()
    # Level names of the classes, in contiguous-id order; [] = dataset metadata level_names or
    # thing_classes of the first training (else test) dataset.
    node.TEXT.CLASS_NAMES = []
    # Expand "C1" to "cervical vertebra C1" (T: thoracic, L: lumbar, S: sacral) in the prompts.
    node.TEXT.EXPAND_NAMES = True
    # Prompt templates; the class embedding is the normalised mean over templates.
    node.TEXT.TEMPLATES = list(DEFAULT_TEMPLATES)

    node.FUSION = CN()
    # Attention heads of the fusion blocks (must divide CLIP's visual width).
    node.FUSION.NUM_HEADS = 8
    # Feed-forward width of the fusion blocks; 0 = 4 x CLIP's visual width.
    node.FUSION.FFN_DIM = 0
    # Dropout inside the fusion blocks.
    node.FUSION.DROPOUT = 0.1
    # Self-attention between an image's boxes (with a key-padding mask) in every block.
    node.FUSION.SELF_ATTENTION = True
    # Add an embedding of each box's geometry (centre, size, aspect, size relative to the image's
    # other boxes, rank from the top) to its query.
    node.FUSION.BOX_POSITION = True
    # Also pool SAM's image embedding in each box and in its context box (RoIAlign, k x k bins;
    # 0 = off, as in VertFound): a direct local feature for encoders trained from scratch.
    node.FUSION.SAM_ROI_SIZE = 0
    # Side of the context box relative to the box (same centre).
    node.FUSION.SAM_ROI_CONTEXT = 2.0
    # Also pool the box moved by each of these multiples of its height along the image's y axis
    # (down positive); [-1.0, 1.0] looks at both neighbours' places, which beyond a run's ends
    # hold the skull, the sacrum or the edge of the field. [] = none.
    node.FUSION.SAM_ROI_SHIFTS = []

    # Initial multiplier of the box-text cosine similarities (CLIP uses 100).
    node.LOGIT_SCALE = 100.0
    # Learn the multiplier (as a log-parameter).
    node.LEARN_LOGIT_SCALE = False
    # Initial probability encoded by a learnable logit bias (focal-loss prior); 0 = no bias.
    node.CLASS_PRIOR_PROB = 0.0

    node.LOSS = CN()
    # Sigmoid focal classification loss: weight, alpha and gamma.
    node.LOSS.FOCAL_WEIGHT = 1.0
    node.LOSS.FOCAL_ALPHA = 0.25
    node.LOSS.FOCAL_GAMMA = 2.0
    # Optimal-transport (entropic Wasserstein) box-text alignment loss: weight, entropy
    # regularisation, the most log-domain Sinkhorn iterations and the relative row-marginal
    # error at which they stop, and the target: "sets" (boxes vs the levels' histogram, as the
    # paper) or "assignment" (each box to its ground-truth level).
    node.LOSS.OT_WEIGHT = 1.0
    node.LOSS.OT_EPSILON = 0.05
    node.LOSS.OT_ITERS = 1000
    node.LOSS.OT_TOLERANCE = 1e-2
    node.LOSS.OT_TARGET = "sets"
    # Ordering loss on expected levels of top-to-bottom neighbouring boxes: weight and mode
    # ("gt_step": smooth-L1 to the ground-truth level step; "hinge": penalise steps below MARGIN).
    node.LOSS.ORDER_WEIGHT = 0.1
    node.LOSS.ORDER_MODE = "gt_step"
    node.LOSS.ORDER_MARGIN = 1.0

    node.DECODE = CN()
    # Monotone Viterbi over levels (strictly increasing downwards) instead of per-box argmax.
    node.DECODE.VITERBI = True
    # Log sigmoid score charged per level skipped between neighbouring boxes (0 = gaps free).
    node.DECODE.GAP_PENALTY = 2.0
    # Test-time flip: average each box's level logits over the image and its horizontal mirror
    # (twice the inference cost; training with INPUT.RANDOM_FLIP "horizontal" sees both).
    node.DECODE.TEST_FLIP = False

    node.CACHE = CN()
    # Embedding cache from scripts/generate_embedding.py used in training ("" = none).
    node.CACHE.PATH = ""

    node.AUG = CN()
    # Photometric training augmentation: brightness and contrast factor ranges ([1, 1] = off).
    node.AUG.BRIGHTNESS = [1.0, 1.0]
    node.AUG.CONTRAST = [1.0, 1.0]
    # Random crop in training: smallest kept fraction of the image (height, width); [1, 1] = off.
    # A vertical crop cuts the run in view (new start/end levels). Geometric: not with a cache.
    node.AUG.CROP_MIN = [1.0, 1.0]
    # Random zoom in training: the kept extent relative to the image ([min, max]; > 1 zooms out,
    # padding with black), shifted by up to 10%; [1, 1] = off. Geometric: not with a cache.
    node.AUG.ZOOM = [1.0, 1.0]
    # Random collimation in training: blank up to this fraction of the image height in bands at
    # the top and bottom (as an X-ray shutter does), keeping the scale; 0 = off. It hides the
    # skull or sacrum and the vertebrae under the bands. Changes pixels: not with a cache.
    node.AUG.COLLIMATE = 0.0
    # After a crop, zoom or collimation, boxes keeping less than this fraction of their area
    # are dropped.
    node.AUG.MIN_VISIBLE = 0.6
    return cfg
