"""Export targets, one file each: the converter, its structural checks, the runtime backend that
runs its artifacts here (if any) and everything it declares (suffix, precisions, task inputs,
options). A file placed here registers itself in ``edgemtl.export.TARGETS``; the CLI, profile,
bench, runtime and docs table read the registry.

Importing a target module must not import torch or the converter's package: the runtime scans
this package to find the backend of an artifact (an ``.onnx`` file runs with onnxruntime alone).
"""
