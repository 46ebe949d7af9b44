"""Registry behaviour and the built-in catalogue's consistency with the code."""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import pytest

from tests.conftest import ROOT
from ubench.catalog import builtins as catalog
from ubench.catalog.registry import METHODS, METRICS, TASKS, Registry
from ubench.core.errors import UnknownComponentError


def test_unknown_name_suggests_and_lists() -> None:
    with pytest.raises(UnknownComponentError) as e:
        METHODS.get("boostalgn")
    msg = str(e.value)
    assert "did you mean 'boostalign'" in msg.lower()
    for name in ("boostalign", "graddiff", "ga", "finetune"):
        assert name in msg


def test_registering_twice_is_an_error() -> None:
    reg: Registry[object] = Registry("method", "ubench.api:Method")
    reg.add("x", "a:b", "first")
    with pytest.raises(ValueError, match="already registered"):
        reg.add("x", "c:d", "second")


def test_builtin_cannot_be_shadowed() -> None:
    with pytest.raises(ValueError, match="already registered"):
        METHODS.add("boostalign", "somewhere:Else", "a shadow")


@pytest.mark.parametrize(("registry", "table"), [
    (METHODS, catalog.BUILTIN_METHODS), (TASKS, catalog.BUILTIN_TASKS),
    (METRICS, catalog.BUILTIN_METRICS)])
def test_catalogue_matches_classes(registry: Registry, table: dict) -> None:
    for name, (_target, summary) in table.items():
        cls = registry.get(name)
        assert cls.name == name
        first_line = cls.__doc__.strip().splitlines()[0]
        assert first_line == summary, f"{name}: catalogue summary differs from the docstring"


def test_every_method_module_is_catalogued() -> None:
    modules = {m.name for m in pkgutil.iter_modules([str(ROOT / "methods")])
               if not m.name.startswith("_")}
    targets = {t.split(":")[0].rsplit(".", 1)[1] for t, _ in catalog.BUILTIN_METHODS.values()}
    assert modules == targets


def test_list_does_not_import_torch() -> None:
    code = ("import sys; from ubench.cli.main import app; "
            "from typer.testing import CliRunner; r = CliRunner().invoke(app, ['list', 'methods']);"
            " assert r.exit_code == 0, r.output; assert 'boostalign' in r.output;"
            " print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
