"""Tests of vertspine.data.phantom: determinism, annotations, cues, lesions, files, caching."""
import json
import os

import cv2
import numpy as np
import pytest
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO

from preloaded_processes import CONTEXT

import vertspine  # noqa: F401  (makes detectron2 importable)
from detectron2.data.datasets import load_coco_json
from vertspine.data.phantom import (
    LESION_CLASSES,
    VERTEBRA_LEVELS,
    PhantomConfig,
    ensure_phantom_dataset,
    generate_phantom_dataset,
    generate_phantom_image,
)
from vertspine.data.phantom.lesions import (
    COLLAPSE, IMPLANT, LISTHESIS, NARROWING, OSTEOPHYTES, OTHER, STENOSIS, LesionPlan, draw_lesion,
)
from vertspine.data.phantom.shapes import ellipse, rasterize, rotation
from vertspine.data.phantom.spine import Deformation, place_run, sample_spine
from vertspine.data.phantom.vertebra import BODY, foramen, vertebra_parts

# pycocotools' decode under numpy 2 warns about a copy= keyword; harmless
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")

SMALL = PhantomConfig(image_height=128, image_width=128, num_train=200, num_val=20,
                       num_test=5, seed=1)
LARGE = PhantomConfig(seed=2)  # 256 px: lesion signatures are a few pixels wide
CERVICAL, LUMBAR = range(1, 8), range(20, 26)  # category ids; thoracic is 8..19


@pytest.fixture(scope="module")
def small_samples():
    """100 train images of SMALL, generated in memory."""
    return [generate_phantom_image(SMALL, "train", i) for i in range(100)]


@pytest.fixture(scope="module")
def large_samples():
    """60 train images of LARGE, generated in memory."""
    return [generate_phantom_image(LARGE, "train", i) for i in range(60)]


@pytest.fixture(scope="module")
def small_dataset(tmp_path_factory):
    """SMALL written to disk (200 train, 20 val images); returns the paths dict."""
    return generate_phantom_dataset(str(tmp_path_factory.mktemp("phantom")), SMALL)


def _boxes(annotations):
    return [a["bbox"] for a in annotations]


def _read_png(folder, name):
    return cv2.imread(os.path.join(folder, name), cv2.IMREAD_UNCHANGED)


def test_names_and_ids():
    assert len(VERTEBRA_LEVELS) == 25 and VERTEBRA_LEVELS[0] == "C1" and VERTEBRA_LEVELS[7] == "T1"
    assert VERTEBRA_LEVELS[19] == "L1" and VERTEBRA_LEVELS[24] == "L6"
    assert LESION_CLASSES[2] == "Spondylolysthesis" and len(LESION_CLASSES) == 7


def test_same_arguments_give_identical_output_and_other_seeds_differ():
    image, vertebrae, lesions = generate_phantom_image(SMALL, "train", 7)
    generate_phantom_image(SMALL, "train", 3)  # order does not matter
    again, vertebrae_again, lesions_again = generate_phantom_image(SMALL, "train", 7)
    assert image.dtype == np.uint8 and image.shape == (128, 128)
    assert np.array_equal(image, again)
    assert _boxes(vertebrae) == _boxes(vertebrae_again) and lesions == lesions_again
    for other in (PhantomConfig(image_height=128, image_width=128, seed=5), SMALL):
        split = "val" if other is SMALL else "train"
        different = generate_phantom_image(other, split, 7)[0]
        assert np.mean(different != image) > 0.5
    held_out = generate_phantom_image(SMALL, "test", 7)[0]  # each split has its own seeds
    assert np.mean(held_out != generate_phantom_image(SMALL, "val", 7)[0]) > 0.5


def test_boxes_inside_image_with_positive_area(small_samples):
    for image, vertebrae, lesions in small_samples:
        for annotation in vertebrae + lesions:
            x0, y0, x1, y1 = annotation["bbox"]
            assert 0 <= x0 < x1 <= 128 and 0 <= y0 < y1 <= 128
            assert annotation["area"] > 0


def test_vertebra_box_is_its_mask_bbox_and_polygons_decode_to_the_mask(small_samples):
    for _, vertebrae, _ in small_samples[:30]:
        for vertebra in vertebrae:
            mask = vertebra["mask"]
            rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
            assert vertebra["bbox"] == [cols[0], rows[0], cols[-1] + 1, rows[-1] + 1]
            assert vertebra["area"] == mask.sum()
            rle = mask_utils.merge(mask_utils.frPyObjects(vertebra["segmentation"], 128, 128))
            decoded = mask_utils.decode(rle).astype(bool)
            assert (decoded & mask).sum() / (decoded | mask).sum() > 0.99


def test_vertebrae_are_consecutive_levels_ordered_top_to_bottom(small_samples):
    counts = []
    for _, vertebrae, _ in small_samples:
        ids = [v["category_id"] for v in vertebrae]
        centers = [(v["bbox"][1] + v["bbox"][3]) / 2 for v in vertebrae]
        assert ids == list(range(ids[0], ids[0] + len(ids)))
        assert np.all(np.diff(centers) > 0)
        counts.append(len(ids))
    assert min(counts) >= 4 and max(counts) <= 12 and len(set(counts)) >= 5


def test_run_of_levels_varies_and_position_does_not_give_the_level(small_samples):
    tops = np.array([(v[0]["category_id"], v[0]["bbox"][1]) for _, v, _ in small_samples])
    assert len(set(tops[:, 0])) >= 12
    below_c1 = tops[tops[:, 0] > 1]  # C1 sits lower: the skull base above it takes room
    assert abs(np.corrcoef(below_c1[:, 0], below_c1[:, 1])[0, 1]) < 0.3
    band = tops[tops[:, 1] < 8]  # top vertebra starting in the same 8-px band
    assert len(set(band[:, 0])) >= 8


def test_vertebra_size_grows_from_cervical_to_lumbar(small_samples):
    heights = {"cervical": [], "thoracic": [], "lumbar": []}
    for _, vertebrae, _ in small_samples:
        for v in vertebrae:
            level = v["category_id"]
            group = "cervical" if level in CERVICAL else "lumbar" if level in LUMBAR else "thoracic"
            heights[group].append(v["bbox"][3] - v["bbox"][1])
    mean = {group: np.mean(values) for group, values in heights.items()}
    assert mean["lumbar"] > 1.15 * mean["thoracic"] and mean["thoracic"] > 1.1 * mean["cervical"]
    # but size alone is ambiguous: the size ranges of neighbouring regions overlap
    assert np.percentile(heights["cervical"], 90) > np.percentile(heights["thoracic"], 25)


def test_lesion_classes_and_normal_images(small_dataset):
    with open(small_dataset["train"]["lesions_json"]) as f:
        coco = json.load(f)
    assert [c["name"] for c in coco["categories"]] == list(LESION_CLASSES)
    assert [c["id"] for c in coco["categories"]] == list(range(1, 8))
    counts = np.bincount([a["category_id"] for a in coco["annotations"]], minlength=8)[1:]
    assert counts.min() >= 15, counts
    per_image = {}
    for a in coco["annotations"]:
        per_image.setdefault(a["image_id"], []).append(a["category_id"])
    assert len(coco["images"]) == 200
    assert abs(1 - len(per_image) / 200 - SMALL.normal_fraction) < 0.1
    for classes in per_image.values():
        assert 1 <= len(classes) <= 4 and len(set(classes)) == len(classes)
    min_size = 8 * 128 / 256
    assert all(min(a["bbox"][2:]) >= min_size - 1e-6 for a in coco["annotations"])


def test_implants_are_the_only_saturated_pixels(large_samples):
    inside, outside = [], []
    for image, _, lesions in large_samples:
        implant = np.zeros(image.shape, bool)
        for lesion in lesions:
            if lesion["category_id"] == IMPLANT:
                x0, y0, x1, y1 = (int(round(v)) for v in lesion["bbox"])
                implant[y0:y1, x0:x1] = True
                inside.append(np.mean(image[y0:y1, x0:x1] >= 250))
        outside.append(np.mean(image[~implant] >= 250))
    assert len(inside) >= 5 and min(inside) > 0.03
    assert max(outside) < 1e-3


def test_lesion_pixels_differ_from_the_bone_around_them(large_samples):
    """Osteophytes add bone outside the vertebra masks; other lesions change body intensity."""
    checked = {OSTEOPHYTES: 0, OTHER: 0}
    for image, vertebrae, lesions in large_samples:
        bone = np.logical_or.reduce([v["mask"] for v in vertebrae])
        near_bone = cv2.dilate(bone.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
        bone_level = np.median(image[bone])
        for lesion in lesions:
            x0, y0, x1, y1 = (int(round(v)) for v in lesion["bbox"])
            box = np.zeros(image.shape, bool)
            box[y0:y1, x0:x1] = True
            if lesion["category_id"] == OSTEOPHYTES:
                # beaks reach beyond the (2-px blurred) body edge and are as bright as bone
                assert np.sum(box & near_bone & ~bone & (image >= 0.9 * bone_level)) >= 3
                checked[OSTEOPHYTES] += 1
            elif lesion["category_id"] == OTHER:
                grown = cv2.dilate(box.astype(np.uint8), np.ones((9, 9), np.uint8)).astype(bool)
                ring = grown & ~box
                assert abs(np.median(image[box & bone]) - np.median(image[ring & bone])) > 8
                checked[OTHER] += 1
    assert min(checked.values()) >= 3


@pytest.fixture(scope="module")
def straight_run():
    """A T10..L2 run laid out at 256 px, and the placement arguments to lay it out again."""
    rng = np.random.default_rng(0)
    spine = sample_spine(rng, 0.0)
    run = (16, 21, 1.2)
    return spine, run


def _place(spine, run, deformation=None):
    return place_run(np.random.default_rng(1), LARGE, spine, run, deformation).poses


@pytest.mark.parametrize("category", range(1, 8))
def test_each_lesion_draws_its_signature_inside_its_box(straight_run, category):
    spine, run = straight_run
    count = {IMPLANT: 3, COLLAPSE: 1, OTHER: 1}.get(category, 2)
    params = {
        OSTEOPHYTES: (2.0, 0.2), IMPLANT: (3.0,), LISTHESIS: (0.3,), STENOSIS: (0.7,),
        NARROWING: (0.2,), COLLAPSE: (0.5, 0.95), OTHER: (1.0, 0.1, 0.0, 0.25, *np.zeros(8)),
    }[category]
    plan = LesionPlan(category, 1, count, params)
    deformation = Deformation.none(5)
    deformation.slip[1] = params[0] if category == LISTHESIS else 0.0
    deformation.gap[1] = params[0] if category == NARROWING else 1.0
    if category == COLLAPSE:
        deformation.anterior[1], deformation.posterior[1] = params
    normal, poses = _place(spine, run), _place(spine, run, deformation)
    canvas, metal = np.zeros(LARGE.size, np.float32), np.zeros(LARGE.size, np.float32)
    lesion = draw_lesion(canvas, metal, poses, plan, LARGE)
    x0, y0, x1, y1 = lesion["bbox"]
    assert lesion["category_id"] == category and min(x1 - x0, y1 - y0) >= 8
    box = np.zeros(LARGE.size, bool)
    box[int(y0):int(np.ceil(y1)), int(x0):int(np.ceil(x1))] = True
    drawn = (canvas != 0) | (metal > 0)
    assert not (drawn & ~box).any()
    body = rasterize([p.polygon for p in vertebra_parts(poses[1]) if p.kind == BODY], *LARGE.size)
    if category == OSTEOPHYTES:
        assert (canvas > 0)[~body].sum() >= 10
    elif category == IMPLANT:
        assert metal.sum() > 100 and (metal > 0)[body].sum() > 20
    elif category == LISTHESIS:  # vertebra 1 moved anteriorly (along -u of vertebra 2) vs 2
        shift = (poses[1].center - normal[1].center) - (poses[2].center - normal[2].center)
        posterior = rotation(poses[2].angle)[:, 0]
        assert np.dot(shift, posterior) < -0.2 * poses[2].depth
    elif category == STENOSIS:
        center, radii = foramen(poses[1])
        foramen_mask = rasterize([poses[1].to_frame(ellipse(center, radii))], *LARGE.size)
        assert canvas[foramen_mask].mean() > 0.1
    elif category == NARROWING:
        assert poses[1].gap < 0.35 * min(poses[0].gap, poses[2].gap)
        assert drawn.sum() > 50  # sclerotic endplates
    elif category == COLLAPSE:
        assert poses[1].anterior_height < 0.6 * normal[1].anterior_height
        assert canvas[body].mean() > 0
    else:
        assert canvas[body].min() < 0 and drawn.sum() > 30


def test_written_coco_loads_with_pycocotools_and_detectron2(small_dataset):
    for split, count in (("train", 200), ("val", 20), ("test", 5)):
        paths = small_dataset[split]
        for key, classes in (("vertebrae_json", VERTEBRA_LEVELS), ("lesions_json", LESION_CLASSES)):
            coco = COCO(paths[key])
            assert [coco.cats[i]["name"] for i in sorted(coco.cats)] == list(classes)
            records = load_coco_json(paths[key], paths["image_root"], f"phantom_test_{split}_{key}")
            assert len(records) == count and all(os.path.isfile(r["file_name"]) for r in records)
        vertebrae = COCO(paths["vertebrae_json"])
        annotation = vertebrae.loadAnns(vertebrae.getAnnIds(imgIds=[1]))[0]
        assert vertebrae.annToMask(annotation).sum() == annotation["area"]
        image = _read_png(paths["image_root"], f"{split}_00000.png")
        assert np.array_equal(image, generate_phantom_image(SMALL, split, 0)[0])


def test_ensure_reuses_matching_data_and_regenerates_on_change(tmp_path):
    root = str(tmp_path / "phantom")
    cfg = PhantomConfig(image_height=96, image_width=96, num_train=6, num_val=2, num_test=1)
    paths = ensure_phantom_dataset(root, cfg)
    first_image = os.path.join(paths["train"]["image_root"], "train_00000.png")
    mtimes = [os.stat(path).st_mtime_ns for path in (paths["manifest"], first_image)]
    assert ensure_phantom_dataset(root, cfg) == paths
    assert [os.stat(path).st_mtime_ns for path in (paths["manifest"], first_image)] == mtimes
    changed = PhantomConfig(image_height=96, image_width=96, num_train=4, num_val=2,
                            num_test=1)
    ensure_phantom_dataset(root, changed)
    with open(paths["manifest"]) as f:
        assert json.load(f)["config"]["num_train"] == 4
    expected = [f"train_{i:05d}.png" for i in range(4)]
    assert sorted(os.listdir(paths["train"]["image_root"])) == expected
    assert os.listdir(tmp_path) == ["phantom"]  # no staging or stale folders left


def test_ensure_refuses_a_foreign_folder(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "keep.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="not a phantom dataset"):
        ensure_phantom_dataset(str(tmp_path / "data"), PhantomConfig(num_train=1, num_val=1,
                                                                         num_test=1))
    assert (tmp_path / "data" / "keep.txt").read_text() == "mine"
    assert sorted(os.listdir(tmp_path)) == ["data"]


def _ensure_after_barrier(barrier, root, cfg):
    barrier.wait()
    ensure_phantom_dataset(root, cfg)


def test_two_processes_ensuring_at_once_both_succeed(tmp_path):
    root = str(tmp_path / "phantom")
    cfg = PhantomConfig(image_height=96, image_width=96, num_train=30, num_val=5, num_test=3,
                        seed=4)
    barrier = CONTEXT.Barrier(2)  # processes forked from a server that has imported vertspine
    workers = [
        CONTEXT.Process(target=_ensure_after_barrier, args=(barrier, root, cfg)) for _ in range(2)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
    assert [worker.exitcode for worker in workers] == [0, 0]
    assert os.listdir(tmp_path) == ["phantom"]
    paths = ensure_phantom_dataset(root, cfg)  # matches: nothing regenerated
    assert len(os.listdir(paths["train"]["image_root"])) == 30
    assert len(COCO(paths["val"]["lesions_json"]).imgs) == 5
    image = _read_png(paths["train"]["image_root"], "train_00029.png")
    assert np.array_equal(image, generate_phantom_image(cfg, "train", 29)[0])  # same in any process


def test_generate_phantom_script_writes_and_summarises_every_split(tmp_path, capsys):
    from conftest import load_script

    module = load_script("scripts/generate_phantom.py", "generate_phantom_script")
    root = str(tmp_path / "phantom")
    module.main(["--root", root, "--num-train", "3", "--num-val", "2", "--num-test", "1",
                 "--size", "96"])
    out = capsys.readouterr().out
    for split, count in (("train", 3), ("val", 2), ("test", 1)):
        assert f"{split}:\n  images: {count}," in out
        assert len(os.listdir(os.path.join(root, "images", split))) == count
