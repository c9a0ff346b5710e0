"""What the SAM layer tests share: a tiny size with every feature of the released ones, and
segment_anything's own forward on a fixed input."""
import torch

from vertspine.layers.sam import SamSize

# Windows, relative positions and a global block, as the released sizes, at 32-wide modules.
TINY = SamSize(encoder_dim=32, encoder_depth=2, encoder_heads=2, global_attn_indexes=(1,),
               window_size=2, use_rel_pos=True, prompt_dim=32, decoder_mlp_dim=64,
               decoder_heads=2, mask_in_chans=4)


def sam_forward(sam, image_size: int = 64):
    """``Sam.forward`` (preprocessing, encoder, two box prompts, 3 masks) on a fixed
    [3, S, 3S/4] image; returns (masks, low-res logits, IoU predictions)."""
    torch.manual_seed(7)
    height, width = image_size, image_size * 3 // 4
    batch = [{"image": torch.rand(3, height, width) * 255, "original_size": (height, width),
              "boxes": torch.tensor([[4.0, 4.0, 30.0, 40.0], [10.0, 20.0, 40.0, 60.0]])}]
    with torch.no_grad():
        out = sam(batch, multimask_output=True)[0]
    return out["masks"], out["low_res_logits"], out["iou_predictions"]
