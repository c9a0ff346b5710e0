"""vertspine's layers point one way: every import of every module under vertspine/ is checked.

Layers, bottom up: ``utils`` <- ``config`` <- ``data``, ``evaluation`` <- ``layers`` <-
``modeling/<family>`` <- ``engine``. The rules checked (on the source, with ``ast``: imports
inside functions and under ``if TYPE_CHECKING`` count, relative imports are resolved, and
``importlib.import_module("vertspine...")`` with a literal name counts too):

- ``vertspine.utils`` imports nothing of vertspine but ``vertspine.utils``;
- ``vertspine.config`` imports only ``vertspine.utils`` and itself;
- ``vertspine.data`` and ``vertspine.evaluation`` never import ``vertspine.engine``,
  ``vertspine.modeling`` or ``vertspine.layers``;
- ``vertspine.layers`` never imports ``vertspine.modeling`` or ``vertspine.engine``;
- a family ``vertspine/modeling/<family>/`` never imports another family, the
  ``vertspine.modeling`` package (which imports every family) or the engine; the one exception
  is a base family (:data:`BASE_FAMILIES`: the generic ``Segmentor``), which other families
  extend by subclassing and which itself imports no family.
No layered module imports the root package ``vertspine`` (it imports every layer).
"""
import ast
import os
from typing import List, Optional, Tuple

import pytest

# Families other families may build on (``VesselSegmentor`` subclasses ``Segmentor``).
BASE_FAMILIES = ("segmentation",)
PACKAGE_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "vertspine")


def module_name(path: str, package_dir: str = PACKAGE_DIR) -> str:
    """``vertspine/data/phantom/writer.py`` -> ``vertspine.data.phantom.writer`` (a package's
    ``__init__.py`` -> the package)."""
    relative = os.path.relpath(path, os.path.dirname(package_dir))
    parts = relative[:-len(".py")].split(os.sep)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_module(dotted: str, package_dir: str) -> bool:
    """Whether ``dotted`` (``vertspine.x.y``) is a module or package on disk."""
    base = os.path.join(os.path.dirname(package_dir), *dotted.split("."))
    return os.path.isfile(base + ".py") or os.path.isfile(os.path.join(base, "__init__.py"))


def imported_modules(path: str, package_dir: str = PACKAGE_DIR) -> List[Tuple[int, str]]:
    """(line, absolute module name) of every import in the file at ``path``, in line order.

    ``from a.b import c`` gives ``a.b.c`` when that is a module, else ``a.b``; relative imports
    are resolved against the file's package.
    """
    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read(), filename=path)
    name = module_name(path, package_dir)
    package = name if path.endswith("__init__.py") else name.rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[:len(parts) - node.level + 1])
                base = f"{base}.{node.module}" if node.module else base
            else:
                base = node.module
            for alias in node.names:
                candidate = f"{base}.{alias.name}"
                found.append((node.lineno, candidate if _is_module(candidate, package_dir) else base))
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
              and node.func.attr == "import_module" and node.args
              and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)
              and not node.args[0].value.startswith(".")):
            found.append((node.lineno, node.args[0].value))
    return sorted(found)


def _within(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def violation(source: str, target: str, package_dir: str = PACKAGE_DIR) -> Optional[str]:
    """Why ``source`` (a vertspine module) may not import ``target``, or None when it may."""
    if not _within(target, "vertspine"):
        return None
    parts = source.split(".")
    layer = parts[1] if len(parts) > 1 else ""
    if layer in ("utils", "config", "data", "evaluation", "layers", "modeling") and \
            target == "vertspine":
        return "the root package vertspine imports every layer"
    if layer == "utils" and not _within(target, "vertspine.utils"):
        return "utils imports nothing of vertspine above utils"
    if layer == "config" and not (_within(target, "vertspine.utils")
                                  or _within(target, "vertspine.config")):
        return "config imports only vertspine.utils"
    if layer in ("data", "evaluation"):
        for above in ("engine", "modeling", "layers"):
            if _within(target, f"vertspine.{above}"):
                return f"{layer} never imports vertspine.{above}"
    if layer == "layers":
        for above in ("engine", "modeling"):
            if _within(target, f"vertspine.{above}"):
                return f"layers never imports vertspine.{above}"
    family = _family(source, package_dir)
    if family:
        if _within(target, "vertspine.engine"):
            return f"the family {family} never imports the engine"
        if target == "vertspine.modeling":
            return f"the family {family} imports vertspine.modeling, which imports every family"
        other = target.split(".")[2] if _within(target, "vertspine.modeling") else family
        if other != family and (other not in BASE_FAMILIES or family in BASE_FAMILIES):
            return f"the family {family} never imports another family ({target.split('.')[2]})"
    return None


def _family(module: str, package_dir: str) -> Optional[str]:
    """``<family>`` for a module of a folder ``vertspine/modeling/<family>/``, else None."""
    parts = module.split(".")
    if len(parts) < 3 or parts[1] != "modeling":
        return None
    folder = os.path.join(os.path.dirname(package_dir), *parts[:3])
    return parts[2] if os.path.isdir(folder) else None


def python_files(package_dir: str = PACKAGE_DIR) -> List[str]:
    files = []
    for folder, dirnames, filenames in os.walk(package_dir):
        dirnames[:] = sorted(d for d in dirnames if d != "__pycache__")
        files += [os.path.join(folder, f) for f in sorted(filenames) if f.endswith(".py")]
    return files


def layering_violations(package_dir: str = PACKAGE_DIR) -> List[str]:
    """``path:line: source imports target: rule`` for every import that breaks a rule."""
    found = []
    for path in python_files(package_dir):
        source = module_name(path, package_dir)
        for line, target in sorted(set(imported_modules(path, package_dir))):
            reason = violation(source, target, package_dir)
            if reason:
                found.append(f"{os.path.relpath(path, os.path.dirname(package_dir))}:{line}: "
                             f"{source} imports {target}: {reason}")
    return found


def test_no_module_imports_upward():
    found = layering_violations()
    assert not found, f"{len(found)} upward imports:\n" + "\n".join(found)


def test_every_module_is_parsed():
    files = python_files()
    names = {module_name(path) for path in files}
    assert {"vertspine", "vertspine.utils.file_io", "vertspine.data.phantom.writer",
            "vertspine.modeling.sparse_rcnn.checkpoint"} <= names
    assert len(files) > 100


@pytest.mark.parametrize("source, target, rule", [
    ("vertspine.utils.file_io", "vertspine.data.image_io", "utils imports nothing"),
    ("vertspine.utils.file_io", "vertspine.utils.state_dict", None),
    ("vertspine.config.defaults", "vertspine.data", "config imports only"),
    ("vertspine.config.defaults", "vertspine.utils.file_io", None),
    ("vertspine.data.builtin", "vertspine.engine.checkpoint", "data never imports vertspine.engine"),
    ("vertspine.evaluation.vindr", "vertspine.layers.weights", "never imports vertspine.layers"),
    ("vertspine.evaluation.vindr", "vertspine.data.image_io", None),
    ("vertspine.layers.weights", "vertspine.modeling.lvmmed", "layers never imports"),
    ("vertspine.modeling.lvmmed.checkpoint", "vertspine.modeling.sparse_rcnn.checkpoint",
     "never imports another family (sparse_rcnn)"),
    ("vertspine.modeling.lvmmed.checkpoint", "vertspine.modeling.lvmmed.config", None),
    ("vertspine.modeling.vessel.meta_arch", "vertspine.modeling.segmentation", None),
    ("vertspine.modeling.segmentation.segmentor", "vertspine.modeling.vessel.inference",
     "never imports another family (vessel)"),
    ("vertspine.modeling.lvmmed.checkpoint", "vertspine.layers.sam", None),
    ("vertspine.modeling.lvmmed", "vertspine.engine.trainer", "never imports the engine"),
    ("vertspine.modeling.lvmmed", "vertspine.modeling", "which imports every family"),
    ("vertspine.data.builtin", "vertspine", "the root package"),
    ("vertspine.engine.trainer", "vertspine.modeling", None),
    ("vertspine.data.builtin", "detectron2.engine", None),
])
def test_rules(source, target, rule):
    reason = violation(source, target)
    assert (reason is None) if rule is None else (rule in reason), reason


def test_relative_and_function_level_imports_are_resolved(tmp_path):
    package = tmp_path / "vertspine"
    for folder in ("utils", "data", "engine", "modeling/famA", "modeling/famB"):
        (package / folder).mkdir(parents=True)
        (package / folder / "__init__.py").write_text("")
    (package / "__init__.py").write_text("")
    (package / "engine" / "trainer.py").write_text("")
    (package / "modeling" / "famB" / "head.py").write_text("")
    (package / "data" / "reader.py").write_text(
        "import os\n"
        "from ..utils import file_io\n"
        "def build():\n"
        "    from ..engine import trainer\n"
        "    from .. import engine\n"
        "    return trainer, engine\n")
    (package / "modeling" / "famA" / "model.py").write_text(
        "import importlib\n"
        "from .config import X\n"
        "def head():\n"
        "    from ..famB.head import Head\n"
        "    return importlib.import_module('vertspine.modeling.famB')\n")
    data_file = str(package / "data" / "reader.py")
    assert imported_modules(data_file, str(package)) == [
        (1, "os"), (2, "vertspine.utils"), (4, "vertspine.engine.trainer"), (5, "vertspine.engine")]
    family_file = str(package / "modeling" / "famA" / "model.py")
    assert imported_modules(family_file, str(package)) == [
        (1, "importlib"), (2, "vertspine.modeling.famA.config"),
        (4, "vertspine.modeling.famB.head"), (5, "vertspine.modeling.famB")]
    assert module_name(str(package / "modeling" / "famA" / "__init__.py"), str(package)) == \
        "vertspine.modeling.famA"
    assert layering_violations(str(package)) == [
        "vertspine/data/reader.py:4: vertspine.data.reader imports vertspine.engine.trainer: "
        "data never imports vertspine.engine",
        "vertspine/data/reader.py:5: vertspine.data.reader imports vertspine.engine: "
        "data never imports vertspine.engine",
        "vertspine/modeling/famA/model.py:4: vertspine.modeling.famA.model imports "
        "vertspine.modeling.famB.head: the family famA never imports another family (famB)",
        "vertspine/modeling/famA/model.py:5: vertspine.modeling.famA.model imports "
        "vertspine.modeling.famB: the family famA never imports another family (famB)",
    ]
