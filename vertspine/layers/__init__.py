"""Network parts shared by model families.

A family (``vertspine/modeling/<family>/``) imports what it needs from here; nothing here imports
a family, the engine or the data path. Heavy libraries (segment_anything, ...) are imported inside
the functions that build a part, so importing this package stays light.

- :mod:`vertspine.layers.sam`: building, loading and feeding Segment Anything models (SAM,
  MedSAM, LVM-Med's SAM-layout ViT-B) at any size.
- :mod:`vertspine.layers.engines`: a frozen network run by PyTorch, ONNX Runtime or OpenVINO
  (exported once, cached by a fingerprint of its weights).
- :mod:`vertspine.layers.checkpoint_layouts`: other projects' checkpoint layouts, converted to
  the model's names when ``MODEL.WEIGHTS`` is loaded (families register converters).
- :mod:`vertspine.layers.weights`: loading a state dict into a module key for key, with a
  :class:`~vertspine.utils.checkpoint_report.CheckpointReport`.
"""
