"""BoxPromptPredictor (torch engines): 2D equals the PromptSegmentor's own inference merged by
predicted IoU, boxes reach the decoder scaled in float, chunks of any size agree, 3D encodes each
slice inside the boxes once; routing by modality with a general fallback, loaded lazily."""
import numpy as np
import pytest
import torch

from vertspine.data.prompt_seg import PromptSegCase, preprocess_image, scale_boxes
from vertspine.evaluation.prompt_seg_metrics import merge_box_masks, overlap_scores
from vertspine.modeling.prompt_seg import (
    GENERAL_ROUTE,
    BoxPromptPredictor,
    ModelRouter,
    RoutingError,
    find_routes,
)

from efficientvit_fixtures import single_torch_thread
from prompt_seg_test_utils import TINY_SAM_VIT, tiny_model

S = 32  # tiny SAM ViT, patch 4: an 8 x 8 embedding, 32 x 32 logits


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    with single_torch_thread():
        yield


@pytest.fixture(scope="module")
def model(one_thread):
    return tiny_model(*TINY_SAM_VIT).eval()


def blocks_image(height=40, width=56, seed=0):
    """uint8 [H, W, 3]: noise with two bright rectangles; and their boxes (inclusive)."""
    rng = np.random.RandomState(seed)
    image = rng.randint(0, 60, (height, width, 3)).astype(np.uint8)
    image[5:20, 4:25] += 150
    image[22:36, 30:50] += 120
    return image, np.array([[4.0, 5, 24, 19], [30, 22, 49, 35], [2, 3, 52, 37]])


class Recording:
    """An engine wrapper that records its inputs."""

    def __init__(self, engine):
        self.engine, self.inputs, self.kind = engine, [], engine.kind

    def __call__(self, *inputs):
        self.inputs.append([x.clone() for x in inputs])
        return self.engine(*inputs)


def test_2d_equals_the_segmentor_inference_merged_by_predicted_iou(model):
    image, boxes = blocks_image()
    predictor = BoxPromptPredictor.from_model(model, "torch", box_chunk=2)
    predictor.decoder = Recording(predictor.decoder)
    result = predictor.predict(PromptSegCase("a.npz", image, None, boxes, None))

    tensor, resized = preprocess_image(image, S)
    scaled = scale_boxes(boxes, 40, 56, S)
    with torch.no_grad():
        out = model([{"image": torch.from_numpy(tensor), "boxes": torch.from_numpy(scaled),
                      "height": 40, "width": 56, "resized_size": resized}])[0]["prompt_seg"]
    expected = merge_box_masks(out["masks"].numpy(), out["iou_predictions"].numpy(), [1, 2, 3])
    assert result.segs.dtype == np.uint16 and result.segs.shape == (40, 56)
    np.testing.assert_array_equal(result.segs, expected)
    assert result.encoder_calls == 1 and result.distinct_slices is None
    # two decoder calls (chunks of 2 and 1), boxes in float: x 32 / 56, not rounded
    recorded = torch.cat([call[1] for call in predictor.decoder.inputs]).numpy()
    assert [len(call[1]) for call in predictor.decoder.inputs] == [2, 1]
    np.testing.assert_allclose(recorded, boxes * S / 56, rtol=1e-6)
    assert recorded[0, 2] == pytest.approx(24 * 32 / 56) and recorded[0, 2] % 1 > 0.1


@pytest.mark.parametrize("overlap", ["smaller", "intensity"])
def test_2d_overlap_policies_merge_the_decoded_masks(model, overlap):
    image, boxes = blocks_image(seed=2)
    predictor = BoxPromptPredictor.from_model(model, "torch", overlap=overlap)
    masks, ious = predictor.decode(predictor.encode([image]), boxes, (40, 56))
    result = predictor.predict(PromptSegCase("a.npz", image, None, boxes, None))
    expected = merge_box_masks(masks, overlap_scores(masks, ious, overlap, image), [1, 2, 3])
    np.testing.assert_array_equal(result.segs, expected)


def test_masks_do_not_depend_on_the_chunk_size(model):
    image, boxes = blocks_image(seed=1)
    embedding = BoxPromptPredictor.from_model(model, "torch").encode([image])
    results = [BoxPromptPredictor.from_model(model, "torch", box_chunk=c).decode(
        embedding, np.repeat(boxes, 3, axis=0), (40, 56)) for c in (4, 16)]
    np.testing.assert_array_equal(results[0][0], results[1][0])
    np.testing.assert_allclose(results[0][1], results[1][1], atol=1e-5)
    assert results[0][0].shape == (9, 40, 56)


def test_3d_encodes_each_slice_inside_the_boxes_once(model):
    rng = np.random.RandomState(0)
    volume = rng.randint(0, 50, (9, 32, 40)).astype(np.uint8)
    volume[1:5, 4:14, 5:18] += 150
    volume[2:6, 16:28, 20:36] += 100
    boxes = np.array([[5.0, 4, 1, 17, 13, 4], [20, 16, 2, 35, 27, 5], [3, 3, 8, 30, 30, 8]])
    predictor = BoxPromptPredictor.from_model(model, "torch", batch_slices=2)
    predictor.encoder = Recording(predictor.encoder)
    result = predictor.predict(PromptSegCase("v.npz", volume, None, boxes, (3.0, 1.0, 1.0)))
    assert result.segs.shape == (9, 32, 40) and result.segs.dtype == np.uint16
    # slices 1..5 and 8 (6 distinct), in batches of 2: 2 + 2 + 2
    assert result.distinct_slices == result.encoder_calls == 6
    assert [len(call[0]) for call in predictor.encoder.inputs] == [2, 2, 2]
    assert not result.segs[[0, 6, 7]].any()  # slices outside every box stay background
    assert set(np.unique(result.segs)) <= {0, 1, 2, 3}


def test_a_case_without_boxes_is_refused(model):
    predictor = BoxPromptPredictor.from_model(model, "torch")
    with pytest.raises(ValueError, match="no boxes"):
        predictor.predict(PromptSegCase("e.npz", blocks_image()[0], None, np.zeros((0, 4)), None))


def _touch(path):
    path.write_bytes(b"")
    return str(path)


def test_routes_from_a_folder_of_modality_checkpoints(tmp_path):
    ct, xray, general = (_touch(tmp_path / n) for n in ("CT.pth", "X-Ray.pth", "general.pth"))
    (tmp_path / "notes.txt").write_text("not a model")
    assert find_routes(str(tmp_path)) == {"CT": ct, "XRay": xray, GENERAL_ROUTE: general}
    loaded = []
    router = ModelRouter(find_routes(str(tmp_path)), lambda p: loaded.append(p) or p)
    assert [router.route(m) for m in ("CT", "XRay", "MR", None)] == \
        ["CT", "XRay", GENERAL_ROUTE, GENERAL_ROUTE]
    assert router.model("CT")[0] == ct and router.model("CT") == (ct, 0.0)
    assert loaded == [ct]  # loaded once, then kept


def test_routes_from_a_map_or_a_single_file_and_without_fallback(tmp_path):
    ct = _touch(tmp_path / "ct_model.pth")
    (tmp_path / "routes.yaml").write_text("CT: ct_model.pth\n")
    router = ModelRouter(find_routes(str(tmp_path)), lambda p: p)
    assert router.routes == {"CT": ct}
    with pytest.raises(RoutingError, match="No model for modality 'MR'.*general.pth"):
        router.route("MR")
    assert find_routes(ct) == {GENERAL_ROUTE: ct}
    (tmp_path / "routes.yaml").write_text("CT: missing.pth\n")
    with pytest.raises(FileNotFoundError, match="missing.pth"):
        find_routes(str(tmp_path))


def test_bad_route_folders(tmp_path):
    with pytest.raises(FileNotFoundError, match="holds no model"):
        find_routes(str(tmp_path))
    _touch(tmp_path / "XRay.pth"), _touch(tmp_path / "X-Ray.pth")
    with pytest.raises(ValueError, match="both give the route 'XRay'"):
        find_routes(str(tmp_path))
