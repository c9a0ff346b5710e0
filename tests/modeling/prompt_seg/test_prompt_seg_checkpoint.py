"""MedSAM / LiteMedSAM checkpoints, built in the official layouts at tiny sizes, load key for key
(load_prompt_seg_checkpoint and MODEL.WEIGHTS); another encoder's file, wrong shapes and
files of other models are clear errors naming the file and the keys."""
import re

import pytest
import torch

from prompt_seg_test_utils import (
    TINY_SAM_SIZE,
    TINY_SAM_VIT,
    lite_medsam_encoder_shapes,
    tiny_cfg,
    tiny_model,
)
from vertspine.engine.checkpoint import AtomicDetectionCheckpointer
from vertspine.layers.sam import build_sam, build_sam_mask_decoder, build_sam_prompt_encoder
from vertspine.modeling.prompt_seg import (
    PromptSegmentor,
    encoder_layout,
    load_prompt_seg_checkpoint,
)


def _lite_medsam_file(path, seed=0):
    """A lite_medsam.pth in the original layout at the instant config's sizes: the image encoder
    keys of tiny_vit_sam.py (written out in the test utils), prompt encoder and mask decoder from
    segment_anything's modules, as CVPR24_LiteMedSAM_infer.py builds them."""
    g = torch.Generator().manual_seed(seed)
    node = tiny_cfg().MODEL.PROMPT_SEG.TINY_VIT
    shapes = lite_medsam_encoder_shapes(node.EMBED_DIMS, node.DEPTHS, node.NUM_HEADS,
                                        node.WINDOW_SIZES)
    state = {f"image_encoder.{k}": (torch.tensor(7) if k.endswith("num_batches_tracked")
                                    else torch.rand(shape, generator=g) + 0.5)
             for k, shape in shapes.items()}
    for prefix, module in (("prompt_encoder", build_sam_prompt_encoder(256, 32, 8)),
                           ("mask_decoder", build_sam_mask_decoder("vit_b"))):
        state.update({f"{prefix}.{k}": torch.rand(v.shape, generator=g)
                      for k, v in module.state_dict().items()})
    torch.save(state, path)
    return state


def _assert_holds(model, state):
    ours = model.state_dict()
    assert all(torch.equal(ours[k], v) for k, v in state.items())


def test_lite_medsam_file_loads_key_for_key(tmp_path):
    path = tmp_path / "lite_medsam.pth"
    state = _lite_medsam_file(path)
    model = tiny_model()
    report = load_prompt_seg_checkpoint(model, str(path))
    assert report.complete and len(report.loaded) == len(state) == len(model.state_dict())
    _assert_holds(model, state)


def test_lite_medsam_file_loads_through_model_weights(tmp_path):
    """detectron2's checkpointer (train_net.py's MODEL.WEIGHTS) reads the bare state dict."""
    path = tmp_path / "lite_medsam.pth"
    state = _lite_medsam_file(path, seed=1)
    model = tiny_model()
    AtomicDetectionCheckpointer(model, allow_partial_weights=False).load(str(path))
    _assert_holds(model, state)


def test_medsam_layout_loads_and_is_refused_by_a_tiny_vit_model(tmp_path):
    path = tmp_path / "medsam_vit_b.pth"
    sam = tiny_model(*TINY_SAM_VIT)  # a PromptSegmentor holding a SAM ViT: Sam's key layout
    reference = build_sam(TINY_SAM_SIZE, 32, seed=3)  # segment_anything's Sam
    assert set(reference.state_dict()) == set(sam.state_dict())  # segment_anything's names
    torch.save({"model": reference.state_dict(), "epoch": 3}, path)  # MedSAM training file
    assert load_prompt_seg_checkpoint(sam, str(path)).complete
    _assert_holds(sam, reference.state_dict())

    tiny_vit = tiny_model()
    message = (f"{re.escape(str(path))} holds a SAM ViT \\(MedSAM, encoder sam_vit_b\\) image "
               "encoder; the model's is TinyViT \\(LiteMedSAM, encoder tiny_vit\\)")
    with pytest.raises(ValueError, match=message):
        load_prompt_seg_checkpoint(tiny_vit, str(path))
    before = tiny_vit.image_encoder.neck[0].weight.clone()
    report = load_prompt_seg_checkpoint(tiny_vit, str(path), strict=False)  # DAFT's merge
    assert not report.complete and torch.equal(tiny_vit.image_encoder.neck[0].weight, before)
    assert all(k.startswith(("prompt_encoder.", "mask_decoder.")) for k in report.loaded)
    assert len(report.loaded) == sum(1 for k in sam.state_dict() if not k.startswith("image_"))
    assert "image_encoder.neck.0.weight" in report.missing
    assert "image_encoder.neck.0.weight" in report.unexpected  # same name, other encoder


def test_wrong_shape_is_named_and_nothing_loads(tmp_path):
    path = tmp_path / "bad.pth"
    state = _lite_medsam_file(path, seed=2)
    state["image_encoder.neck.0.weight"] = torch.zeros(256, 48, 1, 1)
    torch.save(state, path)
    model = tiny_model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(ValueError, match=r"(?s)strict loading failed.*bad\.pth.*"
                       r"image_encoder\.neck\.0\.weight: checkpoint \[256, 48, 1, 1\], "
                       r"model \[256, 32, 1, 1\]"):
        load_prompt_seg_checkpoint(model, str(path))
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_another_models_file_is_refused(tmp_path):
    path = tmp_path / "resnet.pth"
    torch.save({"conv1.weight": torch.zeros(8, 3, 7, 7), "fc.bias": torch.zeros(2)}, path)
    with pytest.raises(ValueError, match=r"resnet\.pth is not a MedSAM/LiteMedSAM-layout "
                                         r"checkpoint.*\['conv1', 'fc'\]"):
        load_prompt_seg_checkpoint(tiny_model(), str(path))


def test_encoder_layout_names():
    assert encoder_layout({"image_encoder.foo.weight": torch.zeros(1)}) == \
        "another encoder (image_encoder.foo.weight)"


def test_full_size_medsam_model_has_sam_vit_b_keys_and_shapes():
    """The MedSAM config's model (not run: built on the meta device) has the keys and shapes of
    segment_anything's vit_b, i.e. of medsam_vit_b.pth."""
    from segment_anything import sam_model_registry

    cfg = tiny_cfg("MODEL.PROMPT_SEG.ENCODER", "sam_vit_b", "INPUT.PROMPT_SEG.IMAGE_SIZE", "1024")
    with torch.device("meta"):
        ours = PromptSegmentor(cfg)
        theirs = sam_model_registry["vit_b"]()
    shapes = {k: v.shape for k, v in ours.state_dict().items()}
    assert shapes == {k: v.shape for k, v in theirs.state_dict().items()}
    assert shapes["image_encoder.pos_embed"] == (1, 64, 64, 768)
