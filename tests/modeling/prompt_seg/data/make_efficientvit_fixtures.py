"""Writes the EfficientViT-SAM fixtures of this folder with the official code (run by hand).

Usage: put the ``efficientvit`` package of mit-han-lab/efficientvit at commit 3ecf6f86 (the one
DAFT builds on) on PYTHONPATH, then ``python make_efficientvit_fixtures.py``. Writes:
- ``efficientvit_sam_l0_keys.txt``: key and shape of every tensor of ``create_sam_model("l0")``;
- ``efficientvit_sam_tiny_official.pt``: a tiny official image encoder (widths [8, 8, 8, 16, 32],
  depths 1, neck 16 wide and 1 deep, norm eps 1e-6 as ``create_sam_model`` sets), random
  weights and BatchNorm statistics rounded to float16 and stored so, and its output on
  ``torch.rand(1, 3, 256, 256)`` drawn from a generator seeded 0 (every 16th pixel, and sums).
"""
import os

import torch
from efficientvit.models.efficientvit.backbone import EfficientViTLargeBackbone
from efficientvit.models.efficientvit.sam import EfficientViTSamImageEncoder, SamNeck
from efficientvit.models.nn.norm import set_norm_eps
from efficientvit.sam_model_zoo import create_sam_model

HERE = os.path.dirname(os.path.abspath(__file__))


def main():
    full = create_sam_model("l0", False).state_dict()
    with open(os.path.join(HERE, "efficientvit_sam_l0_keys.txt"), "w") as f:
        f.write("# Official EfficientViT-SAM-L0 state dict (mit-han-lab/efficientvit@3ecf6f86,\n"
                "# create_sam_model('l0').state_dict()): key and shape, one a line.\n")
        for key, value in full.items():
            f.write(f"{key} {'x'.join(map(str, value.shape)) or '-'}\n")

    torch.manual_seed(0)
    backbone = EfficientViTLargeBackbone([8, 8, 8, 16, 32], [1, 1, 1, 1, 1])
    neck = SamNeck(["stage4", "stage3", "stage2"], [32, 16, 8], 16, 1, 1, "fmb")
    encoder = EfficientViTSamImageEncoder(backbone, neck)
    set_norm_eps(encoder, 1e-6)
    with torch.no_grad():
        for module in encoder.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
            if isinstance(module, (torch.nn.BatchNorm2d, torch.nn.LayerNorm)):
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.2, 0.2)
        for value in encoder.state_dict().values():
            if value.is_floating_point():
                value.copy_(value.half().float())
    encoder.eval()
    x = torch.rand(1, 3, 256, 256, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        y = encoder(x)
    state = {"image_encoder." + key: value.half() if value.is_floating_point() else value
             for key, value in encoder.state_dict().items()}
    torch.save({"image_encoder": state, "input_sum": x.double().sum(),
                "output_every_16th": y[:, :, ::16, ::16].clone(), "output_sum": y.double().sum(),
                "output_abs_sum": y.double().abs().sum()},
               os.path.join(HERE, "efficientvit_sam_tiny_official.pt"))


if __name__ == "__main__":
    main()
