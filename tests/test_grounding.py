"""Visual grounding (`openmuse.media.grounding`): the parser of each coordinate convention against
hand-computed expectations (Qwen2.5-VL pixels of the smart-resized input back to the original
image, Qwen3-VL 0-1000, Molmo percentages, Qwen2-VL box tokens), auto-detection, clamping and
dropping, counting with de-duplication, property tests (hypothesis) that every parsed coordinate
stays in [0, 1], the overlay's pixels where expected, and `ground()` end to end through the
`openai` engine against the recording HTTP endpoint (the test double at the HTTP seam, standing
in for a vision model that no package ships).

Run: `.venv/bin/pytest tests/test_grounding.py -q` (offline, CPU, a few seconds)."""

from __future__ import annotations

import base64
import io
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image, ImageDraw

from openmuse.engines import EngineSettings, create_engine
from openmuse.errors import ConfigError
from openmuse.media.grounding import (
    CONVENTIONS, PALETTE, Grounding, convention_for_model, detect, ground, grounding_prompt,
    image_part, marker_radius, parse, render, smart_resize,
)

from .recording_endpoint import RecordingEndpoint

WHITE = (255, 255, 255)


def points(g: Grounding) -> list[tuple[float, float]]:
    return [(round(a.point[0], 6), round(a.point[1], 6)) for a in g.annotations]


# -- Qwen2.5-VL's resize rule and rescaling ------------------------------------------------------
@pytest.mark.parametrize("size, kw, expected", [
    ((1920, 1080), {}, (1932, 1092)),  # 68.57 -> 69 x 28, 38.57 -> 39 x 28
    # 2 073 600 px over 1280 x 28 x 28: both sides / sqrt(2.0663) = 1.4375, rounded down to x 28
    ((1920, 1080), {"max_pixels": 1280 * 28 * 28}, (1316, 728)),
    ((20, 10), {}, (84, 56)),  # 28 x 28 < 3136: x sqrt(15.68) = 3.96 -> 79.2, 39.6 rounded up
    ((42, 70), {}, (56, 56)),  # 1.5 and 2.5 patches: halves go to the even multiple, as round() does
    ((640, 480), {}, (644, 476)),
])
def test_smart_resize_hand_computed(size, kw, expected):
    assert smart_resize(*size, **kw) == expected


def test_smart_resize_refuses_what_the_processor_refuses():
    with pytest.raises(ConfigError, match="aspect ratio"):
        smart_resize(10_000, 40)
    with pytest.raises(ConfigError, match="positive"):
        smart_resize(0, 10)


def test_qwen25_pixels_of_the_resized_input_back_to_the_original():
    # A 1920x1080 photo reaches the model as 1932x1092; 483/1932 = 273/1092 = 0.25.
    text = ('```json\n[{"point_2d": [483, 273], "label": "pelican"},\n'
            ' {"bbox_2d": [1449, 819, 966, 546], "label": "boat"}]\n```')
    g = parse(text, "qwen2.5-vl", image_size=(1920, 1080))
    assert g.convention == "qwen2.5-vl" and g.count == 2 and g.dropped == 0
    assert points(g) == [(0.25, 0.25), (0.625, 0.625)]
    assert g.annotations[1].box == (0.5, 0.5, 0.75, 0.75)  # corners put in order
    assert [a.label for a in g.annotations] == ["pelican", "boat"]
    assert g.lines()[1].split() == ["1.", "(480,", "270)", "pelican"]  # pixels of the original
    # The server's own bounds change the input size: 1316x728 at 1280 x 28 x 28 pixels.
    g = parse('[{"point_2d": [329, 182]}]', "qwen2.5-vl", image_size=(1920, 1080), max_pixels=1280 * 28 * 28)
    assert points(g) == [(0.25, 0.25)]
    g = parse('[{"point_2d": [100, 50]}]', "qwen2.5-vl", image_size=(1920, 1080), input_size=(400, 200))
    assert points(g) == [(0.25, 0.25)]
    with pytest.raises(ConfigError, match="image_size"):
        parse('[{"point_2d": [100, 50]}]', "qwen2.5-vl")


def test_qwen3_relative_0_to_1000_whatever_the_size():
    text = 'Here they are: [{"bbox_2d": [100, 200, 300, 600], "label": "cat"}, {"point_2d": [900, 50]}]'
    for size in [(640, 480), (3000, 100), None]:
        g = parse(text, "qwen3-vl", image_size=size)
        assert points(g) == [(0.2, 0.4), (0.9, 0.05)]
        assert g.annotations[0].box == (0.1, 0.2, 0.3, 0.6) and g.annotations[1].box is None
        assert [a.label for a in g.annotations] == ["cat", ""]


def test_molmo_percentages_single_and_multi_point():
    text = ('<points x1="10.5" y1="20" x2="80" y2="90" x3="33" alt="pelicans">pelicans</points> and '
            '<point x="50" y="25">the boat</point>')
    g = parse(text, image_size=(800, 600))
    assert g.convention == "molmo"
    assert points(g) == [(0.105, 0.2), (0.8, 0.9), (0.5, 0.25)]
    assert [a.label for a in g.annotations] == ["pelicans", "pelicans", "the boat"]
    assert g.dropped == 1  # x3 without y3


def test_qwen2_box_tokens_with_labels_and_without_special_tokens():
    text = ("<|object_ref_start|>the dog<|object_ref_end|><|box_start|>(100,200),(300,400)<|box_end|> and "
            "<|object_ref_start|>a ball<|object_ref_end|><|box_start|>(500,500),(700,900)<|box_end|>"
            "<|box_start|>(1,2,3)<|box_end|>")
    g = parse(text)
    assert g.convention == "qwen2-vl" and g.dropped == 1
    assert [a.box for a in g.annotations] == [(0.1, 0.2, 0.3, 0.4), (0.5, 0.5, 0.7, 0.9)]
    assert points(g) == [(0.2, 0.3), (0.6, 0.7)]
    assert [a.label for a in g.annotations] == ["the dog", "a ball"]
    # vLLM drops special tokens by default: "label(x1,y1),(x2,y2)" is all that is left.
    g = parse("the dog(100,200),(300,400), a ball(500,500),(700,900)")
    assert g.convention == "qwen2-vl" and [a.label for a in g.annotations] == ["the dog", "a ball"]
    assert points(g) == [(0.2, 0.3), (0.6, 0.7)]


@pytest.mark.parametrize("text, hint, expected", [
    ('[{"point_2d": [1500, 20]}]', None, "qwen2.5-vl"),  # over 1000: pixels
    ('[{"point_2d": [500, 20]}]', None, "qwen3-vl"),
    ('[{"point_2d": [500, 20]}]', "qwen2.5-vl", "qwen2.5-vl"),  # the convention asked for settles it
    ('[{"point_2d": [500, 20]}]', "molmo", "qwen3-vl"),
    ('<point x="5" y="6" alt="a">a</point>', "qwen3-vl", "molmo"),
    ("<|box_start|>(1,2),(3,4)<|box_end|>", None, "qwen2-vl"),
    ("There are no pelicans in this picture.", None, None),
    ("", None, None),
])
def test_detection(text, hint, expected):
    assert detect(text, hint) == expected


def test_nothing_recognisable_is_an_empty_grounding_not_an_error():
    g = parse("I cannot see any pelicans.", image_size=(10, 10))
    assert g.count == 0 and g.convention is None and g.raw == "I cannot see any pelicans."


def test_model_names():
    assert convention_for_model("Qwen/Qwen2.5-VL-7B-Instruct") == "qwen2.5-vl"
    assert convention_for_model("qwen2_5_vl") == "qwen2.5-vl"
    assert convention_for_model("Qwen/Qwen3-VL-8B-Instruct") == "qwen3-vl"
    assert convention_for_model("Qwen/Qwen2-VL-2B-Instruct") == "qwen2-vl"
    assert convention_for_model("allenai/Molmo-7B-D-0924") == "molmo"
    assert convention_for_model("llava-1.5") is None


def test_clamping_and_malformed_entries():
    text = json.dumps([
        {"point_2d": [1040, 500]},  # 4 % over the edge: clamped onto it
        {"point_2d": [-30, 1000]},  # 3 % before it: clamped
        {"point_2d": [1500, 500]},  # 50 % outside: not a point of this image
        {"point_2d": ["x", 1]}, {"bbox_2d": [1, 2, 3]}, {"label": "no coordinates"}, "junk", 7,
        {"bbox_2d": [[100, 100], [200, 300]], "label": "nested pairs"},
    ])
    g = parse(text, "qwen3-vl")
    assert points(g) == [(1.0, 0.5), (0.0, 1.0), (0.15, 0.2)]
    assert g.dropped == 6
    assert parse('[{"point_2d": [NaN, 3]}, {"point_2d": [Infinity, 3]}]', "qwen3-vl").dropped == 2
    # A list cut off by max_tokens keeps its complete objects.
    g = parse('```json\n[{"point_2d": [100, 100]}, {"point_2d": [300, 300]}, {"point_2d": [5', "qwen3-vl")
    assert points(g) == [(0.1, 0.1), (0.3, 0.3)]


def test_counting_merges_near_identical_points():
    # Tolerance: 1 % of the longer side. On 1000x1000, 3.6 px apart is one pelican; 20 px is two.
    text = json.dumps([{"point_2d": p} for p in ([500, 500], [503, 502], [520, 500], [100, 900], [100, 900])])
    g = parse(text, "qwen3-vl", image_size=(1000, 1000))
    assert g.count == 3 and g.duplicates == 2
    assert [a.index for a in g.annotations] == [1, 2, 3]
    assert points(g) == [(0.5, 0.5), (0.52, 0.5), (0.1, 0.9)]
    # Wide image: 0.008 of the width is 16 px of 2000 (under 20: merged) ...
    assert parse('[{"point_2d": [500, 500]}, {"point_2d": [508, 500]}]', "qwen3-vl", image_size=(2000, 500)).count == 1
    # ... while 0.008 of the short side is only 4 px: also merged (the longer side sets the tolerance).
    assert parse('[{"point_2d": [500, 500]}, {"point_2d": [500, 508]}]', "qwen3-vl", image_size=(2000, 500)).count == 1
    assert parse('[{"point_2d": [500, 500]}, {"point_2d": [500, 508]}]', "qwen3-vl", dedup=0).count == 2
    # Molmo's multi-point tag counts each distinct point.
    xs = " ".join(f'x{i}="{4 * i}" y{i}="50"' for i in range(1, 26))
    assert parse(f'<points {xs} alt="pelican">pelican</points>').count == 25


# -- property tests: whatever a model writes, coordinates stay in [0, 1] -------------------------
plausible = st.one_of(st.integers(0, 100), st.integers(0, 1000), st.floats(-20, 1050))  # near the image
number = st.one_of(plausible, st.integers(-3000, 5000), st.floats(allow_nan=True, allow_infinity=True),
                   st.text(max_size=4), st.none())
box, point = st.lists(plausible, min_size=4, max_size=4), st.lists(plausible, min_size=2, max_size=2)
qwen_entry = st.one_of(
    st.fixed_dictionaries({"bbox_2d": box, "label": st.text(max_size=8)}),
    st.fixed_dictionaries({"point_2d": point}),
    st.fixed_dictionaries({"bbox_2d": st.lists(number, max_size=6), "point_2d": st.lists(number, max_size=3)}),
    number,
)
qwen_json = st.lists(qwen_entry, max_size=8).map(lambda v: "```json\n" + json.dumps(v) + "\n```")
molmo_tag = st.lists(st.one_of(st.tuples(plausible, plausible), st.tuples(number, number)), max_size=6).map(
    lambda ps: "<points " + " ".join(f'x{i}="{x}" y{i}="{y}"' for i, (x, y) in enumerate(ps, 1)) + ' alt="a">a</points>'
    if len(ps) != 1 else f'<point x="{ps[0][0]}" y="{ps[0][1]}">b</point>')
qwen2_tokens = st.lists(st.one_of(box, point, st.lists(number, max_size=5)), max_size=6).map(lambda boxes: "".join(
    f"<|object_ref_start|>o<|object_ref_end|><|box_start|>({','.join(map(str, b))})<|box_end|>" for b in boxes))
model_output = st.one_of(qwen_json, molmo_tag, qwen2_tokens, st.text(max_size=60),
                         st.lists(st.one_of(qwen_json, molmo_tag, qwen2_tokens, st.text(max_size=20)),
                                  max_size=3).map(" ".join))
side = st.integers(21, 4096)  # aspect ratios stay under Qwen2.5-VL's 200


@settings(max_examples=300, deadline=None)
@given(text=model_output, size=st.tuples(side, side), convention=st.sampled_from(["auto", *CONVENTIONS]))
def test_parsed_coordinates_stay_in_the_unit_square(text, size, convention):
    g = parse(text, convention, image_size=size)
    assert g.count == len(g.annotations)
    assert [a.index for a in g.annotations] == list(range(1, g.count + 1))
    for a in g.annotations:
        assert all(0.0 <= v <= 1.0 for v in a.point)
        if a.box is not None:
            x1, y1, x2, y2 = a.box
            assert 0.0 <= x1 < x2 <= 1.0 and 0.0 <= y1 < y2 <= 1.0
            assert x1 <= a.point[0] <= x2 and y1 <= a.point[1] <= y2


@settings(max_examples=200, deadline=None)
@given(size=st.tuples(side, side), fractions=st.lists(st.tuples(st.floats(-0.3, 1.3), st.floats(-0.3, 1.3)),
                                                      min_size=1, max_size=6))
def test_qwen25_points_map_back_to_the_same_fraction_of_the_original(size, fractions):
    iw, ih = smart_resize(*size)
    text = json.dumps([{"point_2d": [round(fx * iw), round(fy * ih)]} for fx, fy in fractions])
    g = parse(text, "qwen2.5-vl", image_size=size, dedup=0)
    kept = [(round(fx * iw) / iw, round(fy * ih) / ih) for fx, fy in fractions]
    kept = [(min(1, max(0, x)), min(1, max(0, y))) for x, y in kept if -0.1 <= x <= 1.1 and -0.1 <= y <= 1.1]
    assert g.count == len(kept) and g.dropped == len(fractions) - len(kept)
    for a, (x, y) in zip(g.annotations, kept):
        assert a.point == pytest.approx((x, y), abs=1e-12) and all(0 <= v <= 1 for v in a.point)


# -- the prompts -------------------------------------------------------------------------------
def test_prompts_for_every_convention_and_kind():
    for convention in CONVENTIONS:
        for kind in ("points", "boxes"):
            p = grounding_prompt("  How many pelicans are there? ", convention, kind)
            assert p.startswith("How many pelicans are there?\n") and "{" not in p.replace("{\"", "")
    assert "point_2d" in grounding_prompt("q", "qwen2.5-vl") and "pixels" in grounding_prompt("q", "qwen2.5-vl")
    assert "bbox_2d" in grounding_prompt("q", "qwen3-vl", "boxes") and "1000" in grounding_prompt("q", "qwen3-vl")
    assert "<|box_start|>" in grounding_prompt("q", "qwen2-vl")
    with pytest.raises(ConfigError):
        grounding_prompt("q", "yolo")


# -- the overlay -------------------------------------------------------------------------------
def disc_share(img: Image.Image, cx: float, cy: float, r: int, colour) -> float:
    """Share of the pixels within 0.8 r of (cx, cy) painted ``colour``."""
    inside = [(x, y) for x in range(int(cx - r), int(cx + r) + 1) for y in range(int(cy - r), int(cy + r) + 1)
              if (x - cx) ** 2 + (y - cy) ** 2 <= (0.8 * r) ** 2]
    return sum(img.getpixel(p) == colour for p in inside) / len(inside)


def test_overlay_pixels_where_expected(tmp_path):
    white = Image.new("RGB", (800, 600), WHITE)
    g = parse('[{"point_2d": [250, 500]}, {"bbox_2d": [600, 200, 900, 800]}]', "qwen3-vl", image_size=(800, 600))
    out = tmp_path / "annotated.png"
    result = render(white, g, out)
    img = Image.open(out)
    assert img.format == "PNG" and img.size == (800, 600) and img.convert("RGB").tobytes() == result.tobytes()
    assert white.getpixel((199, 299)) == WHITE  # the input is left alone
    img = img.convert("RGB")
    r = marker_radius(img.size)
    cx, cy = 0.25 * 799, 0.5 * 599
    assert disc_share(img, cx, cy, r, PALETTE[0]) > 0.6  # marker 1, its number in white on top
    assert img.getpixel((round(cx - 0.6 * r), round(cy))) == PALETTE[0]
    assert disc_share(img, 0.75 * 799, 0.5 * 599, r, PALETTE[1]) > 0.6  # marker 2 at the box's centre
    assert img.getpixel((round(0.6 * 799), round(0.3 * 599))) == PALETTE[1]  # the box's left edge
    assert img.getpixel((round(0.9 * 799), round(0.7 * 599))) == PALETTE[1]  # its right edge
    assert img.getpixel((round(0.75 * 799), round(0.3 * 599))) == WHITE  # inside the box, off the marker
    for far in [(200, 500), (799, 599), (400, 100), (cx + 3 * r, cy), (cx, cy - 3 * r)]:
        assert img.getpixel((round(far[0]), round(far[1]))) == WHITE
    legend = [img.getpixel((x, y)) for x in range(r, r + 80) for y in range(r, r + r)]
    assert legend.count((0, 0, 0)) > 100 and WHITE in legend  # "2 objects": white on black


def test_overlay_numbers_25_pelicans(tmp_path):
    xs = " ".join(f'x{i}="{8 + 3.5 * i}" y{i}="{30 + 40 * (i % 2)}"' for i in range(1, 26))
    g = parse(f'<points {xs} alt="pelican">pelican</points>', image_size=(1200, 500))
    img = render(Image.new("RGB", (1200, 500), WHITE), g, tmp_path / "pelicans.png")
    r = marker_radius(img.size)
    assert g.count == 25
    for a in g.annotations:
        assert disc_share(img, a.point[0] * 1199, a.point[1] * 499, r, PALETTE[(a.index - 1) % len(PALETTE)]) > 0.5


# -- ground(): one request through the openai engine to a recording endpoint ---------------------
def photo(path, size=(640, 480)):
    img = Image.new("RGB", size, (90, 140, 200))
    ImageDraw.Draw(img).ellipse((150, 110, 170, 130), fill=WHITE)
    img.save(path, format="PNG")
    return path


def test_ground_end_to_end_qwen25(tmp_path):
    path = photo(tmp_path / "photo.png")
    # 640x480 reaches Qwen2.5-VL as 644x476: pixels 161,119 -> 0.25; 483,357 -> 0.75.
    answer = ('```json\n[\n  {"point_2d": [161, 119], "label": "pelican"},\n  {"point_2d": [483, 357], '
              '"label": "pelican"},\n  {"point_2d": [484, 357], "label": "pelican"}\n]\n```')
    ep = RecordingEndpoint(reasoning="", answer=answer, style="reasoning_content")
    try:
        engine = create_engine(EngineSettings(engine="openai", base_url=ep.url, model="Qwen/Qwen2.5-VL-7B-Instruct"))
        g = ground(engine, path, "How many pelicans are there?")
    finally:
        ep.close()
    sent = ep.requests[0]["messages"]
    assert len(ep.requests) == 1 and len(sent) == 1 and sent[0]["role"] == "user"
    data_url = "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode()
    assert sent[0]["content"][0] == {"type": "image_url", "image_url": {"url": data_url}}  # the file, unchanged
    prompt = sent[0]["content"][1]
    assert prompt["type"] == "text" and prompt["text"].startswith("How many pelicans are there?")
    assert "point_2d" in prompt["text"] and "pixels" in prompt["text"]  # asked in the model's convention
    assert ep.requests[0]["temperature"] == 0
    assert g.convention == "qwen2.5-vl" and g.image_size == (640, 480)
    assert g.count == 2 and g.duplicates == 1 and points(g) == [(0.25, 0.25), (0.75, 0.75)]
    assert g.model == "Qwen/Qwen2.5-VL-7B-Instruct" and g.usage.prompt_tokens == 11
    assert json.loads(json.dumps(g.to_json()))["count"] == 2
    img = render(path, g, tmp_path / "photo-ground.png").convert("RGB")
    r = marker_radius(img.size)
    assert disc_share(img, 0.25 * 639, 0.25 * 479, r, PALETTE[0]) > 0.6
    assert disc_share(img, 0.75 * 639, 0.75 * 479, r, PALETTE[1]) > 0.6
    assert img.getpixel((600, 50)) == (90, 140, 200)  # the photo elsewhere


def test_ground_sends_a_given_part_unchanged_and_forces_a_convention(tmp_path):
    part, size = image_part(photo(tmp_path / "p.png", (300, 200)))
    assert size == (300, 200)
    ep = RecordingEndpoint(reasoning="", answer='<point x="50" y="50" alt="disc">disc</point>', style="think-tags")
    try:
        engine = create_engine(EngineSettings(engine="openai", base_url=ep.url))
        g = ground(engine, part, "Point to the disc.", convention="molmo", kind="boxes")
    finally:
        ep.close()
    assert ep.requests[0]["messages"][0]["content"][0] == part
    assert g.convention == "molmo" and points(g) == [(0.5, 0.5)] and g.annotations[0].label == "disc"


def test_bad_input_gets_a_clear_error(tmp_path):
    ep = RecordingEndpoint(reasoning="", answer="[]", style="reasoning_content")
    try:
        engine = create_engine(EngineSettings(engine="openai", base_url=ep.url, model="m"))
        img = photo(tmp_path / "ok.png")
        with pytest.raises(ConfigError, match="empty"):
            ground(engine, img, "  ")
        with pytest.raises(ConfigError, match="unknown grounding convention"):
            ground(engine, img, "q", convention="yolo")
        with pytest.raises(ConfigError, match="no image file"):
            ground(engine, tmp_path / "missing.png", "q")
        (tmp_path / "text.png").write_text("not an image")
        with pytest.raises(ConfigError, match="not an image"):
            ground(engine, tmp_path / "text.png", "q")
        with pytest.raises(ConfigError, match="the image itself"):
            ground(engine, {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}, "q")
        assert ep.requests == []  # nothing was sent for any of them
        g = ground(engine, img, "q")  # an empty list: zero objects, still a result
        assert g.count == 0 and g.convention is None
    finally:
        ep.close()


# -- the CLI: `muse "…" --image photo.png --ground` ---------------------------------------------
def test_cli_ground_writes_the_png_and_prints_count_and_points(tmp_path):
    from .conftest import run_muse

    path = photo(tmp_path / "birds.png")
    answer = ('[{"point_2d": [250, 250], "label": "pelican"}, {"point_2d": [750, 750], "label": "pelican"}, '
              '{"point_2d": [500, 100], "label": "pelican"}]')
    ep = RecordingEndpoint(reasoning="", answer=answer, style="reasoning_content")
    out = tmp_path / "numbered.png"
    try:
        r = run_muse("How many pelicans? Number them.", "--image", str(path), "--ground", "--engine", "openai",
                     "--base-url", ep.url, "--model", "Qwen/Qwen3-VL-8B-Instruct", "--modalities", "text,image",
                     "--ground-out", str(out))
        rj = run_muse("How many pelicans?", "--image", str(path), "--ground", "--engine", "openai",
                      "--base-url", ep.url, "--modalities", "image", "--ground-out", str(tmp_path / "j.png"), "--json")
    finally:
        ep.close()
    assert r.returncode == 0, r.stderr
    lines = r.stdout.strip().splitlines()
    assert lines[0] == "3 objects (qwen3-vl)"  # Qwen3-VL: 0-1000 of the image
    assert lines[1].split() == ["1.", "(160,", "120)", "pelican"]  # 0.25 of 640 x 480
    img = Image.open(out).convert("RGB")
    assert img.size == (640, 480)
    assert disc_share(img, 0.75 * 639, 0.75 * 479, marker_radius(img.size), PALETTE[1]) > 0.6
    assert rj.returncode == 0, rj.stderr
    data = json.loads(rj.stdout)
    assert data["mode"] == "ground" and data["answer"].splitlines()[0].startswith("3 objects")
    assert data["trace"]["grounding"]["count"] == 3 and data["trace"]["image"].endswith("j.png")
    assert (tmp_path / "j.png").read_bytes()[:4] == b"\x89PNG"
    assert all(0 <= v <= 1 for a in data["trace"]["grounding"]["annotations"] for v in a["point"])


def test_cli_ground_needs_an_engine_that_sees_images_and_one_image(tmp_path):
    from .conftest import run_muse

    path = photo(tmp_path / "birds.png")
    r = run_muse("How many pelicans?", "--image", str(path), "--ground")  # the embedded text-only model
    assert r.returncode != 0 and "Traceback" not in r.stderr
    assert r.stderr.strip().splitlines()[-1].startswith("error: grounding needs an engine that sees images")
    r = run_muse("How many pelicans?", "--ground")
    assert r.returncode != 0 and "error: --ground takes exactly one --image" in r.stderr
    assert not list(tmp_path.glob("*-ground.png"))


# -- the server: `muse.ground` ---------------------------------------------------------------
def test_server_ground_returns_annotations_and_the_image(tmp_path):
    from fastapi.testclient import TestClient

    from openmuse.server.app import ServerConfig, create_app

    path = photo(tmp_path / "birds.png")
    part = {"type": "image_url",
            "image_url": {"url": "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode()}}
    ep = RecordingEndpoint(reasoning="", answer='<point x="25" y="50" alt="pelican">pelican</point>',
                           style="reasoning_content")
    try:
        settings = EngineSettings(engine="openai", base_url=ep.url, model="allenai/Molmo-7B-D", modalities="image")
        config = ServerConfig(engine=settings, database_url=f"sqlite:///{tmp_path / 'muse.db'}")
        with TestClient(create_app(config, create_engine(settings)), base_url="http://127.0.0.1") as client:
            ask = {"model": "muse-instant", "messages": [{"role": "user", "content": [
                {"type": "text", "text": "Point to the pelican."}, part]}]}
            r = client.post("/v1/chat/completions", json={**ask, "muse": {"ground": True}})
            bad = client.post("/v1/chat/completions", json={
                "model": "muse-instant", "muse": {"ground": {"kind": "boxes"}},
                "messages": [{"role": "user", "content": "Point to the pelican."}]})
            wrong = client.post("/v1/chat/completions", json={**ask, "muse": {"ground": {"kind": "lines"}}})
    finally:
        ep.close()
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["choices"][0]["message"]["content"].splitlines()[0] == "1 object (molmo)"
    assert body["muse"]["mode"] == "ground"
    g = body["muse"]["trace"]["grounding"]
    assert g["count"] == 1 and g["annotations"][0]["point"] == [0.25, 0.5]
    png = base64.b64decode(body["muse"]["trace"]["image"].split(",", 1)[1])
    assert Image.open(io.BytesIO(png)).size == (640, 480)
    assert ep.requests[0]["messages"][0]["content"][0] == part  # the image went unchanged
    assert bad.status_code == 400 and "grounding needs exactly one image" in bad.json()["error"]["message"]
    assert wrong.status_code == 422 and wrong.json()["error"]["type"] == "invalid_request_error"
