"""vertspine: a detectron2-based research framework for spine imaging with foundation models.

Dependencies are installed by ``scripts/install.sh`` (``make install``), because torch and
detectron2 need an install order and a build choice that pip metadata cannot express.
"""
from setuptools import find_packages, setup

setup(
    name="vertspine",
    version="0.1.0",
    description="Spine and medical imaging research framework on detectron2",
    packages=find_packages(include=("vertspine", "vertspine.*")),
    python_requires=">=3.9",
    include_package_data=True,
)
