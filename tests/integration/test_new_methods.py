"""uce, ca, sa and erasediff through the runner on the tiny tasks: resume, the Fisher cache,
CA's key/value group, the UCE edit on the text encoder's real states."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tests.conftest import TINY
from ubench.api import RunContext
from ubench.core.errors import InterruptedRun
from ubench.run import identity, runner

T2I_TINY = "t2i-attribute-tiny"
QUICK = {"sa": ["method.steps=6", "method.batch_size=16", "method.fisher_samples=10",
                "method.fisher_timesteps=2"],
         "erasediff": ["method.steps=6", "method.batch_size=16"],
         "ca": ["method.steps=6", "method.batch_size=16"]}


@pytest.mark.parametrize("method", ["sa", "erasediff"])
def test_interrupted_run_resumes_bit_for_bit(method: str, store: Path, tmp_path: Path) -> None:
    """SA holds the base weights and the Fisher outside the loop, EraseDiff an inner optimiser:
    a resumed run must still equal a straight one."""

    def stop_at_3(step: int, total: int, scalars: dict[str, float]) -> None:
        if step == 3:
            raise KeyboardInterrupt

    spec = identity.resolve(method, TINY, 0, QUICK[method])
    with pytest.raises(InterruptedRun, match="resume from step 2"):
        runner.run(spec, store=store, checkpoint_every=2, on_step=stop_at_3)
    resumed = runner.run(spec, store=store, checkpoint_every=2).record
    assert resumed["train_log"]["resumed_from"] == 2
    straight = runner.run(spec, store=tmp_path / "straight", checkpoint_every=0).record
    assert {k: v["value"] for k, v in resumed["metrics"].items()} == \
        {k: v["value"] for k, v in straight["metrics"].items()}
    if method == "sa":  # one Fisher pass served all three runs
        assert resumed["train_log"]["fisher_folder"] == straight["train_log"]["fisher_folder"]


def test_sa_shares_its_fisher_pass_across_seeds_and_forget_classes(store: Path) -> None:
    logs = [runner.run(identity.resolve("sa", TINY, seed, [*QUICK["sa"], f"task.forget_class={c}"]),
                       store=store).record["train_log"] for seed, c in ((0, 0), (1, 0), (0, 3))]
    assert len({log["fisher_folder"] for log in logs}) == 1
    assert logs[0]["fisher_key"]["samples"] == 10


def test_ca_trains_only_cross_attention_keys_and_values_on_text(store: Path,
                                                                tmp_path: Path) -> None:
    spec = identity.resolve("ca", T2I_TINY, 0, QUICK["ca"])
    task = spec.task_cls(spec.task_config)
    task.prepare()
    model = task.base_model("cpu")
    before = {n: p.detach().clone() for n, p in model.unet.named_parameters()}
    out = spec.method_cls().unlearn(model, task.request(0), spec.method_config,
                                    RunContext(seed=0, device="cpu", run_dir=tmp_path))
    changed = {n for n, p in out.model.unet.named_parameters() if not torch.equal(p, before[n])}
    assert changed and changed == set(out.changed_parameters)
    assert all("attn2.to_k" in n or "attn2.to_v" in n for n in changed)
    assert out.train_log["scope"] == "xattn keys/values"


def test_uce_maps_the_concept_states_to_the_guide_outputs(store: Path, tmp_path: Path) -> None:
    """On the real (tiny) t2i model and MiniLM states: with a vanishing regulariser and nothing
    preserved but the null prompt, each projection sends the concept's states (nearly) where it
    sent the empty prompt's, and leaves the null prompt's outputs in place."""
    spec = identity.resolve("uce", T2I_TINY, 0, ["method.lamb=1e-6", "method.preserve=none"])
    task = spec.task_cls(spec.task_config)
    task.prepare()
    model = task.base_model("cpu")
    request = task.request(0)
    assert request.concept
    concept = model.encode(request.concept[:1])[0]
    null = model.null_condition(1)[0]
    from ubench.methods.uce import cross_attention_projections

    old = {n: m.weight.detach().clone() for n, m in cross_attention_projections(model)}
    out = spec.method_cls().unlearn(model, request, spec.method_config,
                                    RunContext(seed=0, device="cpu", run_dir=tmp_path))
    for name, module in cross_attention_projections(out.model):
        w_old, w_new = old[name], module.weight.detach()
        torch.testing.assert_close(null @ w_new.T, null @ w_old.T, rtol=1e-3, atol=1e-3)
        moved = (concept @ w_new.T - null @ w_old.T).norm() / (concept @ w_old.T
                                                               - null @ w_old.T).norm()
        assert float(moved) < 0.05, name  # from 1 (untouched) to near 0 (mapped)
    assert out.train_log["erase_residual"] < 0.05
