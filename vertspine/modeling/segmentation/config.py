"""The ``MODEL.SEGMENTOR`` keys: the generic 2D/3D segmentor, its network, loss and inference.

Normalisation uses detectron2's ``MODEL.PIXEL_MEAN`` / ``PIXEL_STD`` (one entry per input
channel; ``[0.0]`` / ``[1.0]`` for volumes the mapper already scaled). The defaults describe a 2D
smp U-Net with a ResNet-50 encoder and softmax over K + 1 channels; ``DYNUNET`` defaults are
vesselFM's network (MONAI DynUNet, 6 levels, residual blocks).
"""
from detectron2.config import CfgNode as CN

from vertspine.config import register_config
from vertspine.data.class_count import register_num_classes_key

__all__ = ["add_segmentation_config"]

register_num_classes_key("Segmentor", "MODEL.SEGMENTOR.NUM_CLASSES")  # foreground classes


@register_config
def add_segmentation_config(cfg: CN) -> CN:
    """Add ``MODEL.SEGMENTOR`` with every key and its default to ``cfg`` (in place).

    Args:
        cfg: a detectron2 config.
    Returns:
        The same config, for chaining.
    """
    cfg.MODEL.SEGMENTOR = node = CN()
    # 2 (images [C, H, W], whole-image inference) or 3 (volumes [C, X, Y, Z], sliding window).
    node.SPATIAL_DIMS = 2
    # Network, by its name in SEG_NETWORK_REGISTRY: "smp_unet" (2D) or "dynunet" (2D or 3D).
    node.NETWORK = "smp_unet"
    # Input channels (3 for INPUT.FORMAT "RGB"/"BGR", 1 for "L" or a volume).
    node.IN_CHANNELS = 3
    # Foreground classes K; labels are 0 (background) and 1..K.
    node.NUM_CLASSES = 1
    # "softmax" (K + 1 output channels, CE) or "sigmoid" (one logit, BCE; NUM_CLASSES 1).
    node.ACTIVATION = "softmax"
    # Label excluded from the loss (also the padding of the targets).
    node.IGNORE_VALUE = 255
    # Loss = CE_WEIGHT * cross-entropy + DICE_WEIGHT * soft Dice (MONAI DiceCELoss semantics).
    node.CE_WEIGHT = 1.0
    node.DICE_WEIGHT = 1.0
    # Include the background channel in the softmax Dice (MONAI's include_background).
    node.DICE_INCLUDE_BACKGROUND = True
    # Dice denominator sum(p^2) + sum(g^2) (MONAI squared_pred, as vesselFM), not sum(p) + sum(g).
    node.DICE_SQUARED_PRED = False
    # Weight of the soft-clDice term (Shit et al. 2021) on the foreground channels; 0 = off.
    node.CLDICE_WEIGHT = 0.0
    # Soft-skeleton iterations of that term (>= the largest vessel radius in voxels).
    node.CLDICE_ITERATIONS = 3
    # Keep the network's `encoder` (smp_unet) fixed: no gradients, BatchNorm in eval mode.
    node.FREEZE_ENCODER = False

    # segmentation_models_pytorch Unet (2D).
    node.SMP_UNET = CN()
    # smp encoder name ("resnet50" for LVM-Med; "resnet18" for quick tests).
    node.SMP_UNET.ENCODER_NAME = "resnet50"
    # Decoder widths from the deepest to the finest stage (smp's default).
    node.SMP_UNET.DECODER_CHANNELS = [256, 128, 64, 32, 16]
    # Encoder state dict in its own names ("" = random init); smp's ResNets have torchvision's
    # names, so a torchvision / LVM-Med ResNet file loads as is (its classifier fc.* dropped).
    node.SMP_UNET.ENCODER_WEIGHTS = ""
    # Raise, naming the keys, when an encoder key is missing, unexpected or of another shape.
    node.SMP_UNET.STRICT = True

    # MONAI DynUNet (2D or 3D); one entry per level in FILTERS, KERNEL_SIZES and STRIDES.
    node.DYNUNET = CN()
    # Feature channels per level.
    node.DYNUNET.FILTERS = [32, 64, 128, 256, 320, 320]
    # Convolution kernel per level: an int, or one int per spatial axis.
    node.DYNUNET.KERNEL_SIZES = [3, 3, 3, 3, 3, 3]
    # Downsampling stride per level (first usually 1): an int, or one per axis; the upsampling
    # kernels are STRIDES[1:]; input sides must be multiples of the product per axis.
    node.DYNUNET.STRIDES = [1, 2, 2, 2, 2, 2]
    # Residual convolution blocks (vesselFM) instead of plain ones.
    node.DYNUNET.RES_BLOCK = True
    # Deep supervision in training: DEEP_SUPR_NUM extra heads, losses weighted 1, 1/2, 1/4, ...
    # (MONAI DeepSupervisionLoss "exp"); inference uses the full-resolution head only.
    node.DYNUNET.DEEP_SUPERVISION = False
    node.DYNUNET.DEEP_SUPR_NUM = 1

    # Sliding-window inference of volumes (SPATIAL_DIMS 3; MONAI sliding_window_inference).
    node.SLIDING_WINDOW = CN()
    # Window size in voxels, one per axis (multiples of the network's size divisibility).
    node.SLIDING_WINDOW.ROI_SIZE = [128, 128, 128]
    # Fraction of overlap between neighbouring windows, in [0, 1).
    node.SLIDING_WINDOW.OVERLAP = 0.5
    # Windows per network call.
    node.SLIDING_WINDOW.BATCH_SIZE = 4
    # Blending of overlapping window logits: "gaussian" or "constant" (uniform, vesselFM).
    node.SLIDING_WINDOW.MODE = "gaussian"
    # Standard deviation of the gaussian blending as a fraction of ROI_SIZE.
    node.SLIDING_WINDOW.SIGMA_SCALE = 0.125
    return cfg
