"""Override parsing and typed config building."""

from __future__ import annotations

from typing import Any, ClassVar

import pytest

from ubench.core.config import build_config, parse_overrides
from ubench.core.errors import ConfigError
from ubench.methods._gradient import GradientConfig
from ubench.tasks.digits.task import DigitsConfig


def test_parse_overrides_splits_scopes() -> None:
    ov = parse_overrides(["method.lr=1e-4", "task.forget_class=3", "method.scope = full"])
    assert ov == {"method": {"lr": "1e-4", "scope": "full"}, "task": {"forget_class": "3"}}


@pytest.mark.parametrize("bad", ["lr=1", "method.lr", "model.lr=1", "method.=3", "method.lr=1 "
                                 "method.lr=2"])
def test_parse_overrides_rejects_malformed(bad: str) -> None:
    with pytest.raises(ConfigError):
        parse_overrides(bad.split(" ") if bad.count("=") > 1 else [bad])


def test_duplicate_override_rejected() -> None:
    with pytest.raises(ConfigError, match="twice"):
        parse_overrides(["method.lr=1", "method.lr=2"])


def test_types_are_coerced() -> None:
    cfg = build_config(GradientConfig, {"lr": "3e-4", "steps": "20", "truncation": "threshold"},
                       "method boostalign")
    assert cfg.lr == 3e-4 and cfg.steps == 20 and cfg.truncation == "threshold"
    assert isinstance(cfg.steps, int)


@pytest.mark.parametrize(("key", "value", "match"), [
    ("steps", "2.5", "integer"), ("lr", "fast", "number"), ("truncation", "soft", "one of"),
    ("lr", "nan", "finite"), ("steps", "0", r"in 1\.\.100000"), ("lr", "-1", "> 0"),
    ("steps", "1e9", r"in 1\.\.100000"), ("batch_size", "100000", r"in 1\.\.4096"),
    ("steps", "9007199254740993", r"in 1\.\.100000"), ("steps", "1e300", "too large"),
])
def test_bad_values_are_errors(key: str, value: str, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        build_config(GradientConfig, {key: value}, "method boostalign")


def test_unknown_key_suggests() -> None:
    with pytest.raises(ConfigError, match="remain_weight"):
        build_config(GradientConfig, {"remain_wieght": "5"}, "method graddiff")


def test_task_range_validated() -> None:
    with pytest.raises(ConfigError, match="forget_class"):
        build_config(DigitsConfig, {"forget_class": "12"}, "task digits-class")


def test_bool_parsing() -> None:
    from dataclasses import dataclass

    from ubench.core.config import BaseConfig

    @dataclass(frozen=True)
    class C(BaseConfig):
        flag: bool = False

    assert build_config(C, {"flag": "true"}, "x").flag is True
    with pytest.raises(ConfigError):
        build_config(C, {"flag": "maybe"}, "x")


# ----------------------------------------------------------------------------- recipes
def test_every_task_recipe_names_real_fields() -> None:
    from ubench.catalog.registry import TASKS
    from ubench.run import identity

    for name in TASKS.names():
        identity.check_method_defaults(TASKS.get(name))


def test_a_recipe_key_the_method_lacks_is_a_config_error() -> None:
    """A renamed field must not drop the paper's recipe silently."""
    from ubench.catalog.registry import TASKS
    from ubench.run import identity
    from ubench.tasks.digits.task import DigitsClassTiny

    class Broken(DigitsClassTiny):
        """A task whose recipe names a field boostalign does not have."""

        name: ClassVar[str] = "broken-recipe"
        method_defaults: ClassVar[dict[str, dict[str, Any]]] = {
            "boostalign": {"remain_wieght": 2.0}}

    TASKS.register("broken-recipe")(Broken)
    try:
        with pytest.raises(ConfigError, match=r"prescribes method\.remain_wieght .*"
                                              r"Did you mean 'remain_weight'"):
            identity.resolve("boostalign", "broken-recipe", 0, [])
        with pytest.raises(ConfigError, match="remain_wieght"):
            identity.check_method_defaults(Broken)
        Broken.method_defaults = {"boostalgn": {"lr": 1.0}}
        with pytest.raises(ConfigError, match="unknown method 'boostalgn'"):
            identity.check_method_defaults(Broken)
    finally:
        TASKS.remove("broken-recipe")


def test_presets_change_defaults_only() -> None:
    from ubench.core.config import with_defaults

    Tiny = with_defaults(DigitsConfig, "Tiny", eval_forget=3)
    assert Tiny().eval_forget == 3 and Tiny().forget_class == DigitsConfig().forget_class
    with pytest.raises(ConfigError, match="eval_forget must be"):
        Tiny(eval_forget=0)
    with pytest.raises(ConfigError, match="no field"):
        with_defaults(DigitsConfig, "Bad", nope=1)
