"""One definition of the level, lesion and split names, used by every spine dataset."""
from vertspine.data import builtin_verse, phantom, spine_categories
from vertspine.data.verse import convert as verse_convert, discovery as verse_discovery
from vertspine.data.verse.labels import VERSE_LABEL_NAMES
from vertspine.data.vindr import annotations as vindr_annotations, convert as vindr_convert
from vertspine.data.vindr import coco as vindr_coco


def test_names_and_order():
    levels = spine_categories.VERTEBRA_LEVELS
    assert len(levels) == 25 and levels[:2] == ("C1", "C2") and levels[7] == "T1"
    assert levels[19] == "L1" and levels[-1] == "L6"
    assert spine_categories.LESION_CLASSES == (
        "Osteophytes", "Surgical implant", "Spondylolysthesis", "Foraminal stenosis",
        "Disc space narrowing", "Vertebral collapse", "Other lesions")
    assert spine_categories.SPLITS == ("train", "val", "test")
    assert [VERSE_LABEL_NAMES[k] for k in (1, 20, 25, 26, 28)] == ["C1", "L1", "L6", "Sacrum", "T13"]


def test_every_dataset_uses_the_same_objects():
    assert phantom.VERTEBRA_LEVELS is spine_categories.VERTEBRA_LEVELS
    assert phantom.LESION_CLASSES is vindr_annotations.LESION_CLASSES is \
        vindr_coco.LESION_CLASSES is spine_categories.LESION_CLASSES
    for module in (phantom, verse_convert, verse_discovery, vindr_convert, builtin_verse):
        assert module.SPLITS is spine_categories.SPLITS, module.__name__
