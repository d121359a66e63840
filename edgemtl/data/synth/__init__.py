"""Procedural 3D multi-task scenes with exact ground truth for six tasks (see docs/synth.md).

``render_scene(seed, size, preset)`` renders one scene in memory; ``generate(out, num, ...)``
writes a whole dataset in the generic layout (:mod:`edgemtl.data.layout`). Image ``i`` of a
dataset made with ``seed`` is ``render(sample_scene(image_rng(seed, i), preset), size)``.

Modules: ``presets`` (class / part vocabularies), ``objects`` (object builders), ``scene``
(scene sampling), ``raycast`` (vectorised intersection), ``shading`` (textures, lights, sensor),
``renderer`` (labels + image), ``driver`` (dataset writer).
"""

from __future__ import annotations

from edgemtl.data.synth.driver import VERSION, generate, image_rng, preset_meta, render_index, split_ids
from edgemtl.data.synth.presets import PRESETS, Preset, get_preset
from edgemtl.data.synth.renderer import OPTIONAL_TASKS, TASKS, edges_from_instances, render, render_scene
from edgemtl.data.synth.scene import Camera, Scene, sample_scene

__all__ = [
    "OPTIONAL_TASKS",
    "PRESETS",
    "TASKS",
    "VERSION",
    "Camera",
    "Preset",
    "Scene",
    "edges_from_instances",
    "generate",
    "get_preset",
    "image_rng",
    "preset_meta",
    "render",
    "render_index",
    "render_scene",
    "sample_scene",
    "split_ids",
]
