"""Scene styles: class / part vocabularies and the sampling ranges that differ per preset."""

from __future__ import annotations

from dataclasses import dataclass, field

from edgemtl.errors import EdgeMTLError, did_you_mean

# Room faces are numbered 2*axis + (0 = low side, 1 = high side): 0 x-, 1 x+, 2 floor, 3 ceiling/sky,
# 4 back (z-), 5 front (z+, behind the camera).
FACE_NAMES = ("left", "right", "floor", "top", "back", "front")


@dataclass(frozen=True)
class Preset:
    name: str
    classes: tuple[str, ...]  # semseg names, index = class id
    parts: tuple[str, ...]  # part names, index = part id (0 = background)
    part_classes: frozenset[str]  # object classes whose parts are annotated ("composite objects")
    room_classes: frozenset[str]  # classes of room surfaces (saliency 0)
    face_class: tuple[str, ...]  # class of each room face
    face_instance: tuple[int, ...]  # instance id of each room face (shared id = one segment)
    objects: dict[str, float]  # floor-standing object classes -> sampling weight
    supported: dict[str, float]  # small objects that may also stand on tables / cabinets
    n_objects: tuple[int, int]
    n_pictures: tuple[int, int]
    distance: dict[str, tuple[float, float]] = field(default_factory=dict)  # camera distance per class
    default_distance: tuple[float, float] = (1.0, 6.0)
    camera_clearance: float = 0.6  # min horizontal distance from the camera to any object footprint
    hero: bool = False  # the first object is placed near the camera (a prominent subject)
    near_span: float = 2.0  # the hero's distance range is [dmin, dmin + near_span]
    depth_range: tuple[float, float] = (0.0, 10.0)
    edge_max_dist: float = 0.011
    indoor: bool = True

    def class_id(self, name: str) -> int:
        return self.classes.index(name)


NYUD = Preset(
    name="nyud",
    classes=(
        "wall",
        "floor",
        "ceiling",
        "cabinet",
        "bed",
        "chair",
        "sofa",
        "table",
        "lamp",
        "box",
        "picture",
    ),
    parts=("background", "top", "back", "leg", "arm", "shade", "stand"),
    part_classes=frozenset({"bed", "chair", "sofa", "table", "lamp"}),
    room_classes=frozenset({"wall", "floor", "ceiling"}),
    face_class=("wall", "wall", "floor", "ceiling", "wall", "wall"),
    face_instance=(1, 2, 3, 4, 5, 6),
    objects={"cabinet": 1.0, "bed": 0.6, "chair": 1.5, "sofa": 0.8, "table": 1.2, "lamp": 0.7, "box": 0.8},
    supported={"box": 1.0, "lamp": 0.6},
    n_objects=(4, 9),
    n_pictures=(0, 3),
    default_distance=(1.0, 6.0),
    camera_clearance=0.6,
    # z-depth bounds implied by the sampling ranges (see docs/synth.md, checked by the tests)
    depth_range=(0.25, 10.0),
    edge_max_dist=0.011,
    indoor=True,
)

PASCAL = Preset(
    name="pascal",
    classes=("background", "ground", "person", "animal", "car", "bottle", "chair", "sofa", "table", "plant"),
    parts=("background", "head", "torso", "arm", "leg", "tail"),
    part_classes=frozenset({"person", "animal"}),
    room_classes=frozenset({"background", "ground"}),
    face_class=("background", "background", "ground", "background", "background", "background"),
    face_instance=(1, 1, 2, 1, 1, 1),
    objects={
        "person": 3.0,
        "animal": 1.6,
        "car": 0.8,
        "bottle": 0.5,
        "chair": 1.0,
        "sofa": 0.6,
        "table": 0.8,
        "plant": 0.8,
    },
    supported={"bottle": 1.0, "plant": 0.5},
    n_objects=(3, 8),
    n_pictures=(0, 0),
    distance={"car": (4.0, 12.0), "bottle": (1.5, 4.0)},
    default_distance=(1.8, 7.0),
    camera_clearance=1.0,
    hero=True,
    near_span=2.0,
    depth_range=(0.65, 41.0),
    edge_max_dist=0.0075,
    indoor=False,
)

PRESETS: dict[str, Preset] = {p.name: p for p in (NYUD, PASCAL)}


def get_preset(name: str | Preset) -> Preset:
    if isinstance(name, Preset):
        return name
    if name not in PRESETS:
        raise EdgeMTLError(
            f"--preset: unknown scene preset '{name}'.{did_you_mean(str(name), PRESETS)} "
            f"Valid choices: {', '.join(sorted(PRESETS))}."
        )
    return PRESETS[name]
