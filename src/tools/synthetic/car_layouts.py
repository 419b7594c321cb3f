"""Canonical car layouts (side, front and rear view) as ordered lists of painted components.

Canonical frame: x to the right, y downwards, the ground at y = 0 (the car stands at negative y), lengths in units
of the car length (side view) or the car width (front and rear views), the car spanning x in [0, 1]. Components are
listed in painting order; a later labelled component hides an earlier one where they overlap.
"""
from dataclasses import dataclass, field

import numpy as np

from src.tools.synthetic.geometry import ellipse_polygon, mirror_x, rectangle, rounded_polygon

PART_NAMES = ("front_bumper", "rear_bumper", "headlamp", "door", "hood")
UNANNOTATED_HOSTS = ("fender", "trunk")
DAMAGEABLE_NAMES = PART_NAMES + UNANNOTATED_HOSTS + ("body", "roof")
VIEWS = ("side", "front", "rear")

CAR_COLOURS_BGR = (
    (235, 235, 235), (190, 190, 192), (120, 120, 125), (28, 28, 30), (40, 40, 190), (150, 70, 30),
    (90, 40, 20), (50, 110, 50), (40, 200, 230), (30, 120, 230), (60, 90, 120), (170, 140, 110),
)


@dataclass
class Component:
    """One painted region of the car.

    name: part or area name (e.g. 'door', 'fender', 'wheel'); polygon: [N, 2] canonical vertices; colour: BGR
    0..255; labelled: True if the region takes its pixels in the label map (False = surface detail only);
    clip_to_body: restrict to the body silhouette; gradient: brightness factor at the top and bottom of the
    polygon; outline: BGR seam colour drawn along the visible boundary (None = no seam); outline_width in
    canonical units.
    """

    name: str
    polygon: np.ndarray
    colour: np.ndarray
    labelled: bool = True
    clip_to_body: bool = True
    gradient: tuple[float, float] = (1.0, 1.0)
    outline: np.ndarray | None = None
    outline_width: float = 0.0


@dataclass
class CarLayout:
    """A car in canonical coordinates: components in painting order and the roof height (positive units)."""

    view: str
    components: list[Component] = field(default_factory=list)
    roof_height: float = 0.5


@dataclass
class CarStyle:
    """Random appearance shared by the views: colours of body, plastic bumpers, lenses, glass, tyres, rims."""

    body: np.ndarray
    bumper: np.ndarray
    seam: np.ndarray
    lens: np.ndarray
    glass: np.ndarray
    tyre: np.ndarray
    rim: np.ndarray
    body_type: str


def sample_style(rng: np.random.Generator) -> CarStyle:
    """Draw a car style: body colour from a palette with jitter; bumpers contrast with the body."""
    base = np.array(CAR_COLOURS_BGR[rng.integers(len(CAR_COLOURS_BGR))], dtype=np.float64)
    body = np.clip(base + rng.normal(0.0, 10.0, 3), 10, 250)
    luminance = float(body @ np.array([0.114, 0.587, 0.299]))
    if luminance > 95:
        bumper = np.full(3, rng.uniform(30, 65)) + rng.normal(0, 3, 3)
    else:
        bumper = np.full(3, rng.uniform(125, 165)) + rng.normal(0, 4, 3)
    seam = np.full(3, rng.uniform(5, 20)) if luminance > 45 else np.full(3, rng.uniform(95, 120))
    lens = np.clip(np.array([rng.uniform(225, 255), rng.uniform(225, 255), rng.uniform(215, 250)]), 0, 255)
    glass = np.array([rng.uniform(55, 85), rng.uniform(40, 65), rng.uniform(30, 55)])
    tyre = np.full(3, rng.uniform(18, 35))
    rim = np.full(3, rng.uniform(140, 200)) if rng.random() < 0.75 else np.full(3, rng.uniform(45, 70))
    body_type = ("sedan", "hatchback", "suv")[rng.integers(3)]
    return CarStyle(body, np.clip(bumper, 0, 255), seam, lens, glass, tyre, rim, body_type)


def _detail(name: str, polygon: np.ndarray, colour: np.ndarray, clip_to_body: bool = True) -> Component:
    """Surface detail that changes colour but not the label map (handles, plates, grille bars, reflectors)."""
    return Component(name, polygon, np.asarray(colour, dtype=np.float64), labelled=False, clip_to_body=clip_to_body)


def side_layout(rng: np.random.Generator, style: CarStyle) -> CarLayout:
    """Side view facing right (front at x = 1): body, cabin, doors, fenders, headlamp, bumper ends, wheels."""
    tall = style.body_type == "suv"
    wheel_radius = rng.uniform(0.095, 0.11) if tall else rng.uniform(0.08, 0.093)
    clearance = wheel_radius * rng.uniform(0.4, 0.55)
    belt = -(rng.uniform(0.30, 0.34) if tall else rng.uniform(0.25, 0.29))
    roof = -(rng.uniform(0.45, 0.50) if tall else rng.uniform(0.37, 0.42))
    bottom = -clearance
    rear_wheel_x = rng.uniform(0.17, 0.21)
    front_wheel_x = rng.uniform(0.78, 0.82)
    windshield_base = rng.uniform(0.70, 0.74)
    body_colour = style.body
    seam_width = 0.005
    components: list[Component] = []

    nose_drop = rng.uniform(0.03, 0.06)
    body_outline = np.array([
        [0.0, bottom - 0.02], [0.005, belt + 0.03], [0.03, belt - (0.01 if style.body_type == "sedan" else 0.0)],
        [windshield_base, belt], [0.95, belt + nose_drop * 0.5], [1.0, belt + nose_drop + 0.03],
        [1.0, bottom - 0.025], [0.97, bottom], [0.03, bottom],
    ])
    components.append(Component("body", rounded_polygon(body_outline, 0.025), body_colour, clip_to_body=False,
                                gradient=(1.12, 0.88)))

    if style.body_type == "sedan":
        cabin_rear_base, roof_rear, roof_front = rng.uniform(0.12, 0.17), rng.uniform(0.28, 0.33), 0.60
    else:
        cabin_rear_base, roof_rear, roof_front = rng.uniform(0.02, 0.05), rng.uniform(0.06, 0.10), 0.62
    roof_front = rng.uniform(roof_front - 0.03, roof_front + 0.02)
    cabin = rounded_polygon(np.array([
        [cabin_rear_base, belt + 0.005], [roof_rear, roof], [roof_front, roof], [windshield_base + 0.01, belt + 0.005],
    ]), 0.03)
    components.append(Component("roof", cabin, body_colour * 0.96, clip_to_body=False, gradient=(1.1, 0.95)))
    glass_inset = 0.018
    glass = rounded_polygon(np.array([
        [cabin_rear_base + 0.045, belt - 0.008], [roof_rear + 0.025, roof + glass_inset],
        [roof_front - 0.01, roof + glass_inset], [windshield_base - 0.045, belt - 0.008],
    ]), 0.015)
    components.append(Component("window", glass, style.glass, clip_to_body=False, gradient=(1.6, 0.8)))

    rear_arch_edge = rear_wheel_x + wheel_radius * 1.2 + 0.01
    front_arch_edge = front_wheel_x - wheel_radius * 1.2 - 0.01
    door_top = belt + 0.004
    door_bottom = bottom - 0.012
    front_door_front = min(windshield_base - 0.01, front_arch_edge)
    rear_door_rear = max(rear_arch_edge, cabin_rear_base + 0.1)
    components.append(Component("fender", rectangle(front_door_front, belt - 0.05, 1.05, 0.0), body_colour,
                                gradient=(1.12, 0.88)))
    components.append(Component("fender", rectangle(-0.05, belt - 0.05, rear_door_rear, 0.0), body_colour,
                                gradient=(1.12, 0.88)))

    if rng.random() < 0.2:
        door_edges = [rear_door_rear + 0.12, front_door_front]
    else:
        split = rear_door_rear + (front_door_front - rear_door_rear) * rng.uniform(0.47, 0.53)
        door_edges = [rear_door_rear, split, front_door_front]
        components.append(_detail("pillar", rectangle(split - 0.012, roof, split + 0.008, belt), body_colour * 0.55,
                                  clip_to_body=False))
    door_shade = rng.uniform(0.97, 1.03)
    for left, right in zip(door_edges[:-1], door_edges[1:]):
        door = rounded_polygon(np.array([[left, door_top], [right, door_top], [right, door_bottom],
                                         [left + 0.01, door_bottom]]), 0.012)
        components.append(Component("door", door, body_colour * door_shade, gradient=(1.1, 0.9),
                                    outline=style.seam, outline_width=seam_width))
        handle_x = right - rng.uniform(0.06, 0.09)
        handle_y = door_top + rng.uniform(0.03, 0.045)
        handle_colour = style.seam if rng.random() < 0.5 else np.full(3, 200.0)
        components.append(_detail("handle", rounded_polygon(rectangle(handle_x, handle_y, handle_x + 0.045,
                                                                      handle_y + 0.011), 0.004), handle_colour))
    crease_y = belt + rng.uniform(0.05, 0.08)
    components.append(_detail("crease", rectangle(0.04, crease_y, 0.96, crease_y + 0.004),
                              np.clip(body_colour * 1.25 + 20, 0, 255)))

    lamp_top = belt + nose_drop * 0.5 + 0.012
    headlamp = rounded_polygon(np.array([
        [0.885, lamp_top], [0.995, lamp_top + nose_drop * 0.5 + 0.01], [1.01, lamp_top + nose_drop * 0.5 + 0.05],
        [0.90, lamp_top + 0.045],
    ]), 0.008)
    components.append(Component("headlamp", headlamp, style.lens, gradient=(1.05, 0.9), outline=style.seam * 0.5,
                                outline_width=0.004))
    components.append(_detail("reflector", ellipse_polygon((0.955, lamp_top + 0.03), (0.015, 0.011)),
                              np.clip(style.lens * 0.7, 0, 255)))
    taillamp = rounded_polygon(rectangle(-0.01, belt + 0.02, 0.035, belt + 0.065), 0.008)
    components.append(Component("taillamp", taillamp, np.array([35.0, 35.0, rng.uniform(170, 220)])))

    bumper_top = belt + rng.uniform(0.085, 0.11)
    front_bumper = rounded_polygon(np.array([[0.915, bumper_top], [1.05, bumper_top], [1.05, 0.01], [0.925, 0.01]]),
                                   0.01)
    components.append(Component("front_bumper", front_bumper, style.bumper, gradient=(1.1, 0.85),
                                outline=style.seam, outline_width=seam_width))
    rear_bumper = rounded_polygon(np.array([[-0.05, bumper_top - 0.005], [0.085, bumper_top - 0.005],
                                            [0.075, 0.01], [-0.05, 0.01]]), 0.01)
    components.append(Component("rear_bumper", rear_bumper, style.bumper, gradient=(1.1, 0.85),
                                outline=style.seam, outline_width=seam_width))
    components.append(_detail("intake", rectangle(0.95, bottom - 0.045, 1.05, bottom - 0.03), style.bumper * 0.4))

    for wheel_x in (rear_wheel_x, front_wheel_x):
        arch = ellipse_polygon((wheel_x, -wheel_radius), (wheel_radius * 1.18, wheel_radius * 1.18))
        components.append(Component("wheel", arch, np.full(3, 15.0)))
        tyre = ellipse_polygon((wheel_x, -wheel_radius), (wheel_radius, wheel_radius))
        components.append(Component("wheel", tyre, style.tyre, clip_to_body=False))
        rim = ellipse_polygon((wheel_x, -wheel_radius), (wheel_radius * 0.6, wheel_radius * 0.6))
        components.append(_detail("rim", rim, style.rim, clip_to_body=False))
        hub = ellipse_polygon((wheel_x, -wheel_radius), (wheel_radius * 0.15, wheel_radius * 0.15))
        components.append(_detail("hub", hub, style.rim * 0.5, clip_to_body=False))

    mirror = rounded_polygon(np.array([[windshield_base - 0.045, belt - 0.035], [windshield_base - 0.005, belt - 0.03],
                                       [windshield_base - 0.01, belt + 0.012], [windshield_base - 0.04, belt + 0.012]]),
                             0.008)
    components.append(Component("mirror", mirror, body_colour * 0.8, clip_to_body=False))
    return CarLayout("side", components, roof_height=-roof)


def _face_layout(rng: np.random.Generator, style: CarStyle, front: bool) -> CarLayout:
    """Front or rear view, symmetric about x = 0.5: wheels, body, cabin, hood or trunk, lamps, grille, bumper."""
    tall = style.body_type == "suv"
    body_top = -(rng.uniform(0.44, 0.50) if tall else rng.uniform(0.36, 0.42))
    roof = body_top - (rng.uniform(0.30, 0.36) if tall else rng.uniform(0.25, 0.30))
    bottom = -rng.uniform(0.05, 0.08)
    lid_height = rng.uniform(0.09, 0.13) if front else rng.uniform(0.08, 0.11)
    lamp_line = body_top + lid_height
    lamp_height = rng.uniform(0.06, 0.085)
    bumper_top = lamp_line + lamp_height + rng.uniform(0.015, 0.03)
    seam_width = 0.006
    body_colour = style.body
    components: list[Component] = []

    for tyre_left in (0.05, 0.81):
        components.append(Component("wheel", rounded_polygon(rectangle(tyre_left, bottom - 0.12, tyre_left + 0.14,
                                                                       0.0), 0.02), style.tyre, clip_to_body=False))
    body_outline = np.array([[0.02, body_top], [0.98, body_top], [1.0, body_top + 0.06], [1.0, bottom],
                             [0.0, bottom], [0.0, body_top + 0.06]])
    components.append(Component("body", rounded_polygon(body_outline, 0.04), body_colour, clip_to_body=False,
                                gradient=(1.12, 0.85)))
    cabin_inset = rng.uniform(0.15, 0.22)
    cabin = rounded_polygon(np.array([[0.07, body_top + 0.005], [cabin_inset, roof], [1 - cabin_inset, roof],
                                      [0.93, body_top + 0.005]]), 0.035)
    components.append(Component("roof", cabin, body_colour * 0.96, clip_to_body=False, gradient=(1.1, 0.95)))
    glass = rounded_polygon(np.array([[0.115, body_top - 0.012], [cabin_inset + 0.035, roof + 0.025],
                                      [1 - cabin_inset - 0.035, roof + 0.025], [0.885, body_top - 0.012]]), 0.02)
    components.append(Component("window", glass, style.glass, clip_to_body=False,
                                gradient=(1.7, 0.8) if front else (1.3, 0.9)))
    for side in (0, 1):
        mirror = rounded_polygon(rectangle(-0.07, body_top - 0.045, 0.03, body_top + 0.01), 0.015)
        if side:
            mirror = mirror_x(mirror)
        components.append(Component("mirror", mirror, body_colour * 0.8, clip_to_body=False))

    components.append(Component("fender", rectangle(-0.05, body_top - 0.05, 0.2, bumper_top), body_colour,
                                gradient=(1.12, 0.9)))
    components.append(Component("fender", rectangle(0.8, body_top - 0.05, 1.05, bumper_top), body_colour,
                                gradient=(1.12, 0.9)))
    lid_name = "hood" if front else "trunk"
    lid_half_top = rng.uniform(0.34, 0.38)
    lid_half_bottom = rng.uniform(0.38, 0.43)
    lid = rounded_polygon(np.array([[0.5 - lid_half_top, body_top - 0.004], [0.5 + lid_half_top, body_top - 0.004],
                                    [0.5 + lid_half_bottom, lamp_line], [0.5 - lid_half_bottom, lamp_line]]), 0.015)
    lid_gradient = (1.3, 1.0) if front else (1.15, 0.95)
    components.append(Component(lid_name, lid, body_colour, gradient=lid_gradient, outline=style.seam,
                                outline_width=seam_width))
    if front:
        for crease_x in (0.5 - lid_half_top * 0.45, 0.5 + lid_half_top * 0.45 - 0.005):
            crease = np.array([[crease_x, body_top + 0.01], [crease_x + 0.005, body_top + 0.01],
                               [crease_x + 0.005 + (crease_x - 0.5) * 0.1, lamp_line - 0.012],
                               [crease_x + (crease_x - 0.5) * 0.1, lamp_line - 0.012]])
            components.append(_detail("crease", crease, np.clip(body_colour * 1.3 + 25, 0, 255)))

    lamp_inner = rng.uniform(0.27, 0.33)
    slant = rng.uniform(-0.02, 0.025)
    lamp_name = "headlamp" if front else "taillamp"
    lamp_colour = style.lens if front else np.array([30.0, 30.0, rng.uniform(170, 220)])
    for side in (0, 1):
        lamp = rounded_polygon(np.array([[0.035, lamp_line + 0.006], [lamp_inner, lamp_line + 0.006 + slant],
                                         [lamp_inner - 0.015, lamp_line + lamp_height + slant],
                                         [0.05, lamp_line + lamp_height]]), 0.012)
        reflector = ellipse_polygon(((0.05 + lamp_inner) / 2, lamp_line + lamp_height / 2 + slant / 2),
                                    (lamp_height * 0.35, lamp_height * 0.3))
        if side:
            lamp, reflector = mirror_x(lamp), mirror_x(reflector)
        components.append(Component(lamp_name, lamp, lamp_colour, gradient=(1.05, 0.9), outline=style.seam * 0.5,
                                    outline_width=0.005))
        components.append(_detail("reflector", reflector, np.clip(lamp_colour * 0.7, 0, 255)))

    if front:
        grille = rounded_polygon(rectangle(lamp_inner + 0.04, lamp_line + 0.012, 0.96 - lamp_inner,
                                           lamp_line + lamp_height + 0.005), 0.012)
        components.append(Component("grille", grille, np.full(3, rng.uniform(18, 35))))
        for bar in range(3):
            bar_y = lamp_line + 0.02 + bar * lamp_height * 0.28
            components.append(_detail("grille_bar", rectangle(lamp_inner + 0.05, bar_y, 0.95 - lamp_inner,
                                                              bar_y + 0.006), np.full(3, 75.0)))
    else:
        components.append(_detail("badge", ellipse_polygon((0.5, lamp_line + lamp_height * 0.5), (0.03, 0.015)),
                                  np.full(3, 190.0)))

    bumper_name = "front_bumper" if front else "rear_bumper"
    bumper = rounded_polygon(np.array([[-0.05, bumper_top], [1.05, bumper_top], [1.05, 0.01], [-0.05, 0.01]]), 0.01)
    components.append(Component(bumper_name, bumper, style.bumper, gradient=(1.1, 0.85), outline=style.seam,
                                outline_width=seam_width))
    plate_half = 0.11
    plate_top = bumper_top + (bottom - bumper_top) * 0.25
    plate_bottom = bumper_top + (bottom - bumper_top) * 0.7
    components.append(_detail("plate", rectangle(0.5 - plate_half, plate_top, 0.5 + plate_half, plate_bottom),
                              np.full(3, 225.0)))
    for glyph in range(5):
        glyph_x = 0.5 - plate_half + 0.02 + glyph * 0.04
        components.append(_detail("glyph", rectangle(glyph_x, plate_top + 0.01, glyph_x + 0.022, plate_bottom - 0.01),
                                  np.full(3, 40.0)))
    if not front:
        components.append(_detail("exhaust", ellipse_polygon((0.78, bottom - 0.012), (0.03, 0.01)), np.full(3, 20.0)))
    return CarLayout("front" if front else "rear", components, roof_height=-roof)


def build_layout(view: str, rng: np.random.Generator, style: CarStyle) -> CarLayout:
    """Layout for view 'side', 'front' or 'rear'."""
    if view == "side":
        return side_layout(rng, style)
    if view in ("front", "rear"):
        return _face_layout(rng, style, front=view == "front")
    raise ValueError(f"view: expected one of {VIEWS}, got {view!r}")
