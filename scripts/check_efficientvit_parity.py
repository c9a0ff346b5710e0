#!/usr/bin/env python
"""EfficientViT-SAM encoders against the official code, on the same weights and inputs.

    PYTHONPATH=/path/to/efficientvit@3ecf6f86 python scripts/check_efficientvit_parity.py \
        --variant l0 --size 256 --batch 2

Needs the ``efficientvit`` package of mit-han-lab/efficientvit at commit 3ecf6f86 (the one DAFT
builds on; not a vertspine dependency) on PYTHONPATH. Builds the official whole model
(``create_sam_model("l0")``, norm eps 1e-6) with random weights and random BatchNorm
statistics (so that eval-mode normalisation matters), loads its state dict into vertspine's
encoder with :func:`load_efficientvit_sam_weights` (strict: every key, converted), and prints the
report, the handed-over SAM keys and the largest absolute difference of the two [N, 256, 64, 64]
embeddings on random [0, 1] images. Not a test; nothing is written.
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import vertspine  # noqa: E402,F401  (first: detectron2 without compiled ops; registrations)
import torch  # noqa: E402

from vertspine.modeling.prompt_seg.efficientvit_sam import (  # noqa: E402
    EFFICIENTVIT_SAM_SPECS,
    EfficientViTSamEncoder,
)
from vertspine.modeling.prompt_seg.efficientvit_weights import (  # noqa: E402
    load_efficientvit_sam_weights,
)


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variant", default="l0", choices=["l0"], help="official model name")
    parser.add_argument("--size", type=int, default=256, help="input side in pixels")
    parser.add_argument("--batch", type=int, default=2, help="images")
    parser.add_argument("--seed", type=int, default=0, help="seed of weights and images")
    args = parser.parse_args(argv)
    from efficientvit.sam_model_zoo import create_sam_model

    torch.manual_seed(args.seed)
    official = create_sam_model(args.variant, False).eval()
    with torch.no_grad():
        for module in official.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.2, 0.2)
    ours = EfficientViTSamEncoder(EFFICIENTVIT_SAM_SPECS[args.variant]).eval()
    loaded = load_efficientvit_sam_weights(ours, official.state_dict())
    print(loaded.report)
    print(f"handed over: {len(loaded.sam_parts)} prompt_encoder.* / mask_decoder.* tensors")
    images = torch.rand(args.batch, 3, args.size, args.size)
    with torch.no_grad():
        expected, actual = official.image_encoder(images), ours(images)
    print(f"embedding {tuple(actual.shape)}; max |official - vertspine| = "
          f"{float((expected - actual).abs().max()):.3g} (mean |official| = "
          f"{float(expected.abs().mean()):.3g})")


if __name__ == "__main__":
    main()
