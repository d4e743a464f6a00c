from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from edgesr.errors import ConfigError
from edgesr.recipe import SCHEMA_VERSION, available_recipes, dump_recipe, load_recipe

REQUIRED = [f"{a}_x{s}" for a in ("espcn", "fsrcnn", "anchornet") for s in (2, 3, 4)]


def test_required_recipes_ship_and_load() -> None:
    names = available_recipes()
    for name in REQUIRED:
        assert name in names
        r = load_recipe(name)
        assert r.name == name
        assert r.schema == SCHEMA_VERSION
        assert r.model.scale == int(name[-1])


def test_recipe_is_frozen() -> None:
    r = load_recipe("espcn_x4")
    with pytest.raises(dataclasses.FrozenInstanceError):
        r.train.steps = 5  # type: ignore[misc]
    with pytest.raises(TypeError):
        r.model.params["num_feat"] = 3  # type: ignore[index]


def test_unknown_key_names_valid_keys() -> None:
    with pytest.raises(ConfigError) as info:
        load_recipe("espcn_x4", ["train.stpes=10"])
    msg = str(info.value)
    assert "train.stpes" in msg and "did you mean 'train.steps'" in msg
    for key in ("steps", "lr", "schedule", "loss"):
        assert key in msg


def test_unknown_top_level_and_arch_param() -> None:
    with pytest.raises(ConfigError, match="valid keys: schema, name, model"):
        load_recipe("espcn_x4", ["trian.steps=10"])
    with pytest.raises(ConfigError, match=r"model\.params\.width.*num_feat=64"):
        load_recipe("espcn_x4", ["model.params.width=8"])


def test_overrides_are_typed() -> None:
    r = load_recipe(
        "espcn_x4",
        ["train.lr=1e-3", "train.steps=2_000", "data.augment=false", "train.milestones=[10, 20]"],
    )
    assert r.train.lr == pytest.approx(1e-3) and isinstance(r.train.lr, float)
    assert r.train.steps == 2000 and isinstance(r.train.steps, int)
    assert r.data.augment is False
    assert r.train.milestones == (10, 20)
    for bad, expected in [
        ("train.steps=many", "must be an integer"),
        ("train.steps=2.5", "must be an integer"),
        ("data.augment=3", "true or false"),
        ("train.loss=l3", "one of 'l1', 'mse', 'charbonnier'"),
        ("train.steps", "key.path=value"),
        ("model.arch.x=1", "is a value, not a section"),
        ("model.arch=edsr", "unknown arch"),
        ("train.lr=-1", "train.lr must be positive"),
    ]:
        with pytest.raises(ConfigError, match=expected):
            load_recipe("espcn_x4", [bad])


def test_override_does_not_touch_the_file_or_other_loads() -> None:
    a = load_recipe("espcn_x4", ["train.steps=7"])
    b = load_recipe("espcn_x4")
    assert a.train.steps == 7 and b.train.steps != 7
    assert a.hash() != b.hash()
    assert b.replace(["train.steps=7"]).hash() == a.hash()


def test_user_recipe_by_path(tmp_path: Path) -> None:
    path = tmp_path / "mine.yaml"
    path.write_text(dump_recipe(load_recipe("fsrcnn_x3", ["name=mine"])))
    r = load_recipe(str(path))
    assert r.name == "mine" and r.model.arch == "fsrcnn" and r.source == str(path)


@pytest.mark.parametrize(
    "text,expected",
    [
        ("schema: 99\nname: x\nmodel: {arch: espcn, scale: 4}\n", "schema"),
        ("name: x\nmodel: {arch: espcn, scale: 4}\n", "schema"),
        ("schema: 1\nname: x\n", "missing required key 'model'"),
        ("schema: 1\nname: x\nmodel: {arch: espcn, scale: 4}\nsource: y\n", "set by edgesr"),
        ("- just\n- a list\n", "must be a YAML mapping"),
        ("schema: 1\nname: [unclosed\n", "not valid YAML"),
    ],
)
def test_bad_recipe_files(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=expected):
        load_recipe(str(path))


def test_unknown_recipe_name_suggests() -> None:
    with pytest.raises(ConfigError, match="Did you mean espcn_x4"):
        load_recipe("espcn_x5")
    with pytest.raises(ConfigError, match="does not exist"):
        load_recipe("/nonexistent/recipe.yaml")


def test_shipped_weights_match_their_recipes() -> None:
    """Every recipe that names weights ships them, trained with that very recipe (same hash)."""
    from edgesr.modelio import read_info, shipped_weights

    for name in available_recipes():
        recipe = load_recipe(name)
        if recipe.model.weights is None:
            continue
        info = read_info(shipped_weights(recipe))
        assert (info.recipe, info.recipe_hash) == (name, recipe.hash()), name
        assert (info.arch, info.scale, info.color) == (
            recipe.model.arch,
            recipe.model.scale,
            recipe.model.color,
        )
    gan = load_recipe("srgan_lite_x4")
    assert gan.gan is not None and gan.data.degradation == "camera"
    assert gan.compress.int8_max_drop_db is not None


def test_int8_settings_are_checked() -> None:
    r = load_recipe("espcn_x4", ["compress.int8_targets=[tensorrt]", "compress.ort_weight_bits=8"])
    assert r.compress.int8_targets == ("tensorrt",) and r.compress.ort_weight_bits == 8
    assert load_recipe("espcn_x4").compress.ort_weight_bits == 7  # the portable default
    with pytest.raises(ConfigError, match="one of 7, 8"):
        load_recipe("espcn_x4", ["compress.ort_weight_bits=6"])
    with pytest.raises(ConfigError, match="int8_targets must name"):
        load_recipe("espcn_x4", ["compress.int8_targets=[]"])
    with pytest.raises(ConfigError, match="int8_models must name"):
        load_recipe("espcn_x4", ["compress.int8_models=[]"])
    assert load_recipe("espcn_x4", ["compress.int8_models=[pruned]"]).compress.int8_models == (
        "pruned",
    )
    with pytest.raises(ConfigError, match="'onnxruntime-cpu', 'tensorrt'"):
        load_recipe("espcn_x4", ["compress.int8_targets=[cuda]"])
    assert load_recipe("espcn_x4", ["compress.qdq_qat_steps=null"]).compress.qdq_qat_steps is None
    with pytest.raises(ConfigError, match="qdq_qat_steps must not be negative"):
        load_recipe("espcn_x4", ["compress.qdq_qat_steps=-1"])
    # A recipe's hash covers training only: INT8 settings keep shipped weights matched.
    assert r.hash() == load_recipe("espcn_x4").hash()
