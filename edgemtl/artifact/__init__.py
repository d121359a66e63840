"""The artifact format, one leaf that both ``edgemtl.export`` (writer) and ``edgemtl.runtime``
(reader) import, and that apps can use without PyTorch (numpy; OpenCV for resizing):

- :mod:`~edgemtl.artifact.manifest`: the ``<artifact>.json`` schema, its digests, reading and checking;
- :mod:`~edgemtl.artifact.signature`: how a task is passed to a graph and where its output is;
- :mod:`~edgemtl.artifact.processing`: the image -> input tensor and output -> image-size steps;
- :mod:`~edgemtl.artifact.decoding`: raw output -> prediction -> colours, as each task declares.

Nothing here imports torch or any other edgemtl module than ``edgemtl.errors`` (and
``edgemtl.data.layout`` for atomic writes); ``tests/test_artifact.py`` checks it.
"""
