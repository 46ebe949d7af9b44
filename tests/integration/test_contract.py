"""Contract tests, parametrized over the method registry (a new method is covered automatically).

Every method that fits a tiny task — the class-conditional digits task and the text-conditioned
t2i task — must run on it, change only the parameters it declares in
``UnlearnOutput.changed_parameters``, leave its parameters frozen afterwards, and yield a valid
record.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tests.conftest import FAST, TINY
from ubench.api import RunContext
from ubench.catalog.registry import METHODS
from ubench.run import identity, runner
from ubench.store.records import read_record

T2I_TINY = "t2i-attribute-tiny"
AGREEMENT = {"judge_agreement_forget", "judge_agreement_remain"}
METRICS = {TINY: {"ua", "ra", "garbage_rate", "fd", "neighbour_accuracy", *AGREEMENT},
           T2I_TINY: {"concept_rate", "concept_rate_paraphrase", "alignment_train", "garbage_rate",
                      "alignment_test", "fd", "forget_fidelity", "neighbour_alignment",
                      *AGREEMENT}}
FITTING = identity.methods_for(TINY)
CASES = [(m, t) for t in (TINY, T2I_TINY) for m in identity.methods_for(t)]


def _fast(method: str) -> list[str]:
    fields = METHODS.get(method).Config.field_names()
    return [f for f in FAST if f.split("=")[0][len("method."):] in fields]


def test_registry_methods_that_do_not_fit_are_refused() -> None:
    for name in set(METHODS.names()) - set(FITTING) - {"external"}:  # (a given model's row)
        with pytest.raises(Exception, match="cannot run on task"):
            identity.resolve(name, TINY, 0, _fast(name))


def test_every_method_fits_the_text_task() -> None:
    assert set(identity.methods_for(T2I_TINY)) == set(METHODS.names()) - {"external"}


@pytest.mark.parametrize(("method", "task"), CASES)
def test_changes_only_declared_parameters(method: str, task: str, store: Path,
                                          tmp_path: Path) -> None:
    spec = identity.resolve(method, task, 0, _fast(method))
    task = spec.task_cls(spec.task_config)
    task.prepare()
    model = task.base_model("cpu")
    before = {n: p.detach().clone() for n, p in model.unet.named_parameters()}
    out = spec.method_cls().unlearn(model, task.request(0), spec.method_config,
                                    RunContext(seed=0, device="cpu", run_dir=tmp_path))
    after = dict(out.model.unet.named_parameters())
    changed = {n for n, p in after.items() if not torch.equal(p.detach(), before[n])}
    declared = set(out.changed_parameters)
    assert changed <= declared, f"{method} changed undeclared parameters: {changed - declared}"
    if spec.method_cls.training_free:  # it changes sampling, not weights
        assert not changed and out.model.sampling_rule is not None
    elif not spec.method_cls.reference:
        assert changed, f"{method} changed nothing"
    assert not any(p.requires_grad for p in out.model.unet.parameters())


@pytest.mark.parametrize(("method", "task"), CASES)
def test_yields_a_valid_record(method: str, task: str, store: Path) -> None:
    res = runner.run(identity.resolve(method, task, 0, _fast(method)), store=store)
    rec = read_record(res.path)
    assert rec["status"] == "ok" and set(rec["metrics"]) == METRICS[task]
    assert rec["method"]["id"] == method and rec["seed"] == 0
    assert rec["method"]["reference"] == METHODS.get(method).reference
    for m in rec["metrics"].values():
        assert m["n"] > 0 and m["ci_low"] <= m["ci_high"]
        assert {"sampler", "steps", "guidance", "judge_digest"} <= set(m["definition"])
    assert (res.path.parent / "samples.png").is_file()
    assert rec["cost"]["total_seconds"] > 0 and rec["env"]["packages"]["torch"]
