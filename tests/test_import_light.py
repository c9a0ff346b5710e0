"""``import vertspine`` stays light: no heavy model library is imported until a model needs it.

In a fresh interpreter, an import hook watches the first import of each heavy library and
records the chain of modules that led to it (``__main__ -> vertspine -> ... -> the importer``),
so a failure names the vertspine module to fix (import the library inside the function that
builds the model or transform).
"""
import json
import os
import subprocess
import sys

from conftest import REPO_ROOT

HEAVY = ("segment_anything", "open_clip", "timm", "segmentation_models_pytorch", "monai")

_PROBE = """
import json, sys
HEAVY = set(json.loads(sys.argv[1]))
chains = {}

class FirstImportRecorder:
    def find_spec(self, name, path=None, target=None):
        top = name.partition(".")[0]
        if top in HEAVY and top not in chains:
            modules, frame = [], sys._getframe(1)
            while frame is not None:
                module = frame.f_globals.get("__name__", "?")
                if not module.startswith(("importlib", "_frozen_importlib")) and \\
                        (not modules or modules[-1] != module):
                    modules.append(module)
                frame = frame.f_back
            chains[top] = list(reversed(modules)) + [name]
        return None  # never loads anything itself

sys.meta_path.insert(0, FirstImportRecorder())
import vertspine
loaded = sorted(m for m in HEAVY if m in sys.modules)
print(json.dumps({m: chains.get(m, ["?"]) for m in loaded}))
"""


def heavy_imports_of(module: str = "vertspine", python_path: str = "") -> dict:
    """``{library: [module chain]}`` for each heavy library that ``import <module>`` loads."""
    probe = _PROBE.replace("import vertspine\n", f"import {module}\n")
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    if python_path:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [python_path, env.get("PYTHONPATH")]))
    result = subprocess.run([sys.executable, "-c", probe, json.dumps(HEAVY)], cwd=REPO_ROOT,
                            env=env, capture_output=True, text=True)
    assert result.returncode == 0, f"import {module} failed:\n{result.stderr[-3000:]}"
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_import_vertspine_loads_no_heavy_library():
    loaded = heavy_imports_of()
    assert not loaded, "import vertspine imports heavy libraries (import them where a model is " \
        "built):\n" + "\n".join(f"  {lib}: {' -> '.join(chain)}" for lib, chain in loaded.items())


def test_the_probe_names_the_importing_chain(tmp_path):
    """A package whose submodule imports timm at module level: the chain names that submodule."""
    package = tmp_path / "heavy_probe_pkg"
    package.mkdir()
    (package / "__init__.py").write_text("from . import light, model\n")
    (package / "light.py").write_text("import json\n")
    (package / "model.py").write_text("def build():\n    pass\n\nimport timm.layers\n")
    assert heavy_imports_of("heavy_probe_pkg", str(tmp_path)) == {
        "timm": ["__main__", "heavy_probe_pkg", "heavy_probe_pkg.model", "timm"]}
