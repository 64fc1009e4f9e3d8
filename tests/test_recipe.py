"""The recipe is the contract: validated before any data is read, with errors that teach."""

from __future__ import annotations

import ast
import re
import typing

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from strata.errors import RecipeError
from strata.recipe import Recipe, _fields_at, _model_at

BASE = {"data": {"dataset": "iris", "target": "species"}}


def recipe_with(**changes: object) -> Recipe:
    raw = yaml.safe_load(yaml.safe_dump(BASE))
    for dotted, value in changes.items():
        node = raw
        *parents, last = dotted.split("__")
        for p in parents:
            node = node.setdefault(p, {})
        node[last] = value
    return Recipe.from_dict(raw)


def test_defaults_fill_every_section():
    recipe = Recipe.from_dict(BASE)
    assert recipe.train.optimizer.name == "adam"
    assert recipe.model.hidden == [128, 64]
    assert recipe.split.test == 0.2
    assert recipe.flat()["train.optimizer.lr"] == 1e-3


def test_unknown_choice_names_path_choices_and_close_match():
    with pytest.raises(RecipeError) as err:
        recipe_with(train__optimizer={"name": "adamm"})
    assert str(err.value) == (
        "train.optimizer.name: 'adamm' is not one of sgd, adam, adamw, rmsprop (did you mean 'adam'?)"
    )


def test_unknown_key_suggests_the_right_one():
    with pytest.raises(RecipeError, match=r"train.optimzer: unknown key 'optimzer' \(did you mean 'optimizer'\?\)"):
        recipe_with(train__optimzer={"name": "adam"})


def test_unknown_key_without_close_match_lists_valid_keys():
    with pytest.raises(RecipeError, match=r"model.zzz: unknown key 'zzz' \(valid keys: type, hidden, activation"):
        recipe_with(model__zzz=1)


def test_wrong_type_names_path_and_value():
    with pytest.raises(RecipeError, match=r"train.epochs: input should be a valid integer.*got 'many'"):
        recipe_with(train__epochs="many")


def test_out_of_range_value():
    with pytest.raises(RecipeError, match=r"model.dropout: input should be less than 1"):
        recipe_with(model__dropout=1.5)


def test_missing_target_is_reported():
    with pytest.raises(RecipeError, match=r"data.target: required key is missing"):
        Recipe.from_dict({"data": {"dataset": "iris"}})


def test_unknown_dataset_suggests_close_name():
    with pytest.raises(RecipeError, match=r"data.dataset: 'pengiuns' is not one of .*did you mean 'penguins'"):
        recipe_with(data__dataset="pengiuns")


def test_option_that_would_be_ignored_is_rejected():
    with pytest.raises(
        RecipeError, match=r"train.optimizer: option 'momentum' applies to name sgd, rmsprop, not 'adam'"
    ):
        recipe_with(train__optimizer={"name": "adam", "momentum": 0.9})
    with pytest.raises(RecipeError, match=r"option 'step_size' applies to name step, not 'cosine'"):
        recipe_with(train__schedule={"name": "cosine", "step_size": 3})


def test_several_problems_are_all_listed():
    with pytest.raises(RecipeError) as err:
        recipe_with(train__epochs=0, model__activation="relux")
    text = str(err.value)
    assert "2 problems" in text
    assert "train.epochs" in text and "model.activation: 'relux' is not one of" in text


def test_shorthands_expand():
    recipe = recipe_with(train__optimizer="sgd", train__loss="huber", train__early_stopping=True)
    assert recipe.train.optimizer.name == "sgd"
    assert recipe.train.loss.name == "huber"
    assert recipe.train.early_stopping.monitor == "val_loss"


def test_overrides_are_validated_the_same_way():
    recipe = Recipe.from_dict(BASE).override(["train.optimizer.lr=0.003", "model.hidden=[32, 16]", "model.dropout=0.2"])
    assert recipe.train.optimizer.lr == 0.003
    assert recipe.model.hidden == [32, 16]
    with pytest.raises(RecipeError, match=r"--set: train.optimizer.name: 'adamm' is not one of"):
        recipe.override(["train.optimizer.name=adamm"])
    with pytest.raises(RecipeError, match=r"unknown key 'optimzer' \(did you mean 'optimizer'\?\)"):
        recipe.override(["train.optimzer.lr=0.1"])
    with pytest.raises(RecipeError, match=r"expected KEY=VALUE"):
        recipe.override(["train.epochs"])


def test_override_into_a_section_left_at_its_default():
    recipe = Recipe.from_dict(BASE).override(["train.early_stopping.patience=3", "train.clip.norm=1.0"])
    assert recipe.train.early_stopping.patience == 3
    assert recipe.train.clip.norm == 1.0


def test_recipe_is_immutable():
    recipe = Recipe.from_dict(BASE)
    with pytest.raises(ValueError, match="frozen"):
        recipe.seed = 3  # type: ignore[misc]


def test_yaml_round_trip_and_hash(tmp_path):
    recipe = recipe_with(seed=7, model__hidden=[8])
    path = tmp_path / "r.yaml"
    path.write_text(recipe.to_yaml())
    again = Recipe.from_yaml(path)
    assert again.model_copy(update={"name": None}) == recipe
    assert again.model_copy(update={"name": None}).hash() == recipe.hash()
    assert recipe_with(seed=8, model__hidden=[8]).hash() != recipe.hash()


def test_relative_data_path_is_relative_to_the_recipe_file(tmp_path):
    (tmp_path / "sub").mkdir()
    path = tmp_path / "sub" / "r.yaml"
    path.write_text("data: {path: table.csv, target: y}\n")
    assert Recipe.from_yaml(path).data.path == str(tmp_path / "sub" / "table.csv")
    assert Recipe.from_yaml(path).name == "r"


def test_bad_recipe_files(tmp_path):
    with pytest.raises(RecipeError, match=r"recipe file '.*nope.yaml' not found"):
        Recipe.from_yaml(tmp_path / "nope.yaml")
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    with pytest.raises(RecipeError, match="is empty"):
        Recipe.from_yaml(empty)
    broken = tmp_path / "broken.yaml"
    broken.write_text("data:\n  target: [unclosed\n")
    with pytest.raises(RecipeError, match=r"broken.yaml' line \d+: not valid YAML"):
        Recipe.from_yaml(broken)
    listy = tmp_path / "list.yaml"
    listy.write_text("- 1\n- 2\n")
    with pytest.raises(RecipeError, match="expected a mapping of sections, got list"):
        Recipe.from_yaml(listy)


def test_seeds_are_derived_independently_and_stably():
    a, b = Recipe.from_dict({**BASE, "seed": 1}).seeds, Recipe.from_dict({**BASE, "seed": 2}).seeds
    assert len({a.data, a.model, a.train}) == 3
    assert a != b
    assert Recipe.from_dict({**BASE, "seed": 1}).seeds == a


def test_incompatible_settings():
    with pytest.raises(RecipeError, match="nesterov needs momentum"):
        recipe_with(train__optimizer={"name": "sgd", "nesterov": True})
    with pytest.raises(RecipeError, match="give exactly one of 'norm'"):
        recipe_with(train__clip={"norm": 1.0, "value": 1.0})
    with pytest.raises(RecipeError, match="leaves too little to train on"):
        recipe_with(split={"test": 0.5, "val": 0.45})
    with pytest.raises(RecipeError, match="column 'a' is listed more than once"):
        recipe_with(features={"columns": ["a", {"name": "a", "type": "numeric"}]})
    with pytest.raises(RecipeError, match="option 'encoding' applies to type categorical, not 'numeric'"):
        recipe_with(features={"columns": [{"name": "a", "type": "numeric", "encoding": "onehot"}]})


def test_direct_construction_explains_errors_like_from_dict():
    with pytest.raises(RecipeError) as err:
        Recipe(data={"dataset": "iris", "target": "species"}, train={"epoch": 5})
    assert str(err.value) == "train.epoch: unknown key 'epoch' (did you mean 'epochs'?)"


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("data.target=5", "data.target: expected str | list[str], got 5"),
        ("train.optimizer.betas=[0.9]", "train.optimizer.betas: too few values \\(item 2 is missing\\)"),
        ("train.early_stopping=5", "train.early_stopping: expected a mapping of keys, got 5"),
        ("model.activation=Relu", "model.activation: 'Relu' is not one of relu, .* \\(did you mean 'relu'\\?\\)"),
        ("train.optimizer.name=ADAM", "train.optimizer.name: 'ADAM' is not one of .* \\(did you mean 'adam'\\?\\)"),
        (
            "train.loss={name: mse, huber_delta: 0.5}",
            "train.loss: option 'huber_delta' applies to name huber, not 'mse'",
        ),
    ],
)
def test_set_errors_are_one_line_naming_the_key(setting, message):
    with pytest.raises(RecipeError) as err:
        Recipe.from_dict(BASE).override([setting])
    assert "\n" not in str(err.value)
    assert re.match(rf"--set: {message}", str(err.value)), str(err.value)


def test_an_unknown_capitalised_key_is_named():
    with pytest.raises(RecipeError, match=r"^--set: train.Epochs: unknown key 'Epochs' \(did you mean 'epochs'\?\)$"):
        Recipe.from_dict(BASE).override(["train.Epochs=3"])


def test_sections_that_contradict_each_other():
    with pytest.raises(RecipeError, match=r"^column 'a' is both in data.drop and in features.columns; keep one$"):
        recipe_with(data__drop=["a"], features={"columns": ["a", "b"]})
    with pytest.raises(RecipeError, match=r"^data.drop: 'species' is the target$"):
        recipe_with(data__drop=["species"])
    with pytest.raises(RecipeError, match=r"^model.norm: batch norm needs train.batch_size of at least 2$"):
        recipe_with(model__norm="batch", train__batch_size=1)
    assert recipe_with(model__norm="batch", train__batch_size=2).train.batch_size == 2


def test_hash_ignores_the_name_and_where_the_data_comes_from():
    recipe = recipe_with(name="first")
    assert recipe_with(name="second").hash() == recipe.hash()
    from_file = Recipe.from_dict({"name": "x", "data": {"path": "/somewhere/iris.csv", "target": "species"}})
    assert from_file.hash() == recipe.hash()
    assert recipe_with(train__optimizer={"lr": 0.01}).hash() != recipe.hash()
    assert recipe_with(data__target="other").hash() != recipe.hash()


# Property: whatever a user writes into a recipe, the answer is a valid Recipe or a RecipeError
# naming a key path that exists in the recipe — never a crash from deep inside pydantic or Python,
# never pydantic's internal names (union tags such as 'list[str]' or 'function-after[...]').
values = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 500) | st.floats(allow_nan=True) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=6,
)
paths = st.sampled_from(
    [
        "train.epochs",
        "train.optimizer",
        "train.optimizer.lr",
        "train.optimizer.name",
        "train.optimizer.betas",
        "train.schedule",
        "train.loss",
        "train.loss.class_weights",
        "train.early_stopping",
        "train.clip",
        "model.hidden",
        "model.activation",
        "split.test",
        "features.columns",
        "features.categorical",
        "features.numeric.scale",
        "data.target",
        "data.drop",
        "seed",
        "bogus.key",
    ]
)
_KEY = re.compile(r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"|[\w-]+")


def key_path(line: str) -> tuple[str, ...] | None:
    """The dotted key path a problem line starts with ('features.columns.0.name: ...'), keys that
    are not plain words being quoted; None when the line does not start with one."""
    parts, pos = [], 0
    while match := _KEY.match(line, pos):
        token, pos = match.group(), match.end()
        parts.append(ast.literal_eval(token) if token[0] in "'\"" else token)
        if line.startswith(": ", pos):
            return tuple(parts)
        if not line.startswith(".", pos):
            return None
        pos += 1
    return None


def _allows(annotation: object, kinds: tuple[type, ...]) -> bool:
    """Whether a field's type is (or is a union with) one of `kinds`, e.g. list or dict."""
    if annotation in kinds or typing.get_origin(annotation) in kinds:
        return True
    return any(_allows(arg, kinds) for arg in typing.get_args(annotation))


def schema_path(parts: tuple[str, ...]) -> bool:
    """Every part is a field of the section at that point, an index into a list-valued field, or a
    key of a dict-valued field (class_weights)."""
    prefix: list[object] = []
    for part in parts:
        if part not in _fields_at(tuple(prefix)):
            model = _model_at(tuple(prefix[:-1])) if prefix and isinstance(prefix[-1], str) else None
            field = model.model_fields.get(prefix[-1]) if model else None
            if field is None:
                return False
            if part.isdigit() and _allows(field.annotation, (list, tuple)):
                part = int(part)
            elif not _allows(field.annotation, (dict,)):
                return False
        prefix.append(part)
    return True


def test_key_path_reads_back_what_error_lines_write():
    assert key_path("features.columns.0.name: required key is missing") == ("features", "columns", "0", "name")
    assert key_path("train.loss.class_weights.'a: b'.x: bad") == ("train", "loss", "class_weights", "a: b", "x")
    assert key_path("column 'a' is both in data.drop") is None
    assert schema_path(("features", "columns", "0", "name"))
    assert schema_path(("train", "loss", "class_weights", "any class"))
    assert not schema_path(("train", "str"))
    assert not schema_path(("data", "target", "list[str]"))


@settings(max_examples=300, deadline=None)
@given(paths, values)
def test_any_value_gives_a_recipe_or_a_recipe_error(path, value):
    try:
        Recipe.from_dict(BASE).override({path: value})
    except RecipeError as err:
        lines = str(err).splitlines()
        problems = [line.strip() for line in lines[1:]] if "problems" in lines[0] else lines
        for line in problems:
            parts = key_path(line)
            assert parts is not None, line
            assert parts[0] == path.split(".")[0], line
            message = line.split(": ", 1)[1] if ": " in line else ""
            if message.startswith("unknown key"):  # the path ends with the unknown key itself
                assert message.startswith(f"unknown key {parts[-1]!r}"), line
                parts = parts[:-1]
            assert schema_path(parts), line
