"""segmentation_models_pytorch ``Unet`` (2D) as a segmentation network: ``NETWORK "smp_unet"``.

The network is smp's ``Unet(encoder_name, encoder_weights=None)``, unpatched. smp's ResNet
encoders are torchvision ``ResNet``\\ s without ``fc``/``avgpool``, so a torchvision-layout file
(torchvision's ImageNet ResNets, LVM-Med's ``lvmmed_resnet.torch``) loads into ``unet.encoder``
under its own names, the classifier ``fc.*`` dropped, strictly by default
(``MODEL.SEGMENTOR.SMP_UNET.ENCODER_WEIGHTS`` / ``STRICT``). LVM-Med instead patches smp's
source to register its weights; here no library file changes.
"""
import os

from torch import nn

from vertspine.layers.weights import finish_loading, match_state_dict
from vertspine.utils.checkpoint_report import CheckpointReport
from vertspine.utils.state_dict import StateDictSource, read_state_dict

from .registry import SEG_NETWORK_REGISTRY, SegmentationNetwork

__all__ = ["load_encoder_weights", "smp_unet"]

_MISSING_HINT = ("Set MODEL.SEGMENTOR.SMP_UNET.ENCODER_WEIGHTS to an existing file, or to \"\" "
                 "for random init.")


@SEG_NETWORK_REGISTRY.register()
def smp_unet(cfg, out_channels: int) -> SegmentationNetwork:
    """smp ``Unet`` from ``MODEL.SEGMENTOR.SMP_UNET``, its encoder filled from ``ENCODER_WEIGHTS``.

    The encoder's load report (a :class:`CheckpointReport`, None for random init) is kept as
    ``unet.encoder_report``. Input sides must be multiples of the encoder's output stride (32).

    Raises:
        ValueError: ``SPATIAL_DIMS`` is not 2; a strict load that is incomplete.
    """
    node = cfg.MODEL.SEGMENTOR
    if node.SPATIAL_DIMS != 2:
        raise ValueError(f"MODEL.SEGMENTOR.NETWORK 'smp_unet' is 2D but SPATIAL_DIMS is "
                         f"{node.SPATIAL_DIMS}: set NETWORK \"dynunet\" for volumes.")
    import segmentation_models_pytorch as smp

    unet = smp.Unet(node.SMP_UNET.ENCODER_NAME, encoder_weights=None,
                    in_channels=node.IN_CHANNELS, classes=out_channels,
                    decoder_channels=list(node.SMP_UNET.DECODER_CHANNELS))
    unet.encoder_report = None
    if node.SMP_UNET.ENCODER_WEIGHTS:
        unet.encoder_report = load_encoder_weights(unet.encoder, node.SMP_UNET.ENCODER_WEIGHTS,
                                                   strict=node.SMP_UNET.STRICT)
    stride = unet.encoder.output_stride
    return SegmentationNetwork(unet, (stride, stride))


def load_encoder_weights(encoder: nn.Module, source: StateDictSource, *,
                         strict: bool = True) -> CheckpointReport:
    """Load a state dict in the encoder's own names (torchvision's, for smp's ResNets).

    A classifier ``fc.*`` the encoder lacks is dropped; BatchNorm batch counters
    (``num_batches_tracked``) absent from the file are not counted as missing.

    Args:
        encoder: smp's encoder (``unet.encoder``).
        source: a file (read by :func:`~vertspine.utils.state_dict.read_state_dict`) or a
            state dict.
        strict: raise, before anything is copied, when a key is missing, unexpected or of
            another shape.
    Returns:
        The report, also logged (as a warning when incomplete).
    Raises:
        ValueError: ``strict`` and the load is incomplete; the message lists the keys.
    """
    state = read_state_dict(source, missing_hint=_MISSING_HINT)
    own = encoder.state_dict()
    head = [key for key in state if key.startswith("fc.") and key not in own]
    state = {key: value for key, value in state.items() if key not in head}
    name = os.fspath(source) if isinstance(source, (str, os.PathLike)) else "<state dict>"
    report, load = match_state_dict(
        encoder, state, f"smp U-Net encoder from {name} ({len(head)} classifier keys fc.* dropped)")
    report.missing = [key for key in report.missing if not key.endswith("num_batches_tracked")]
    try:
        return finish_loading(report, strict, [load])
    except ValueError as error:
        raise ValueError(
            f"MODEL.SEGMENTOR.SMP_UNET.ENCODER_WEIGHTS: {error}\nCheck that SMP_UNET.ENCODER_NAME "
            "matches the file (\"resnet50\" for LVM-Med), or set MODEL.SEGMENTOR.SMP_UNET.STRICT "
            "False to load what matches.") from error
