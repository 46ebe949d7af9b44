"""Every attack on sd-nudity end to end on the tiny Stable Diffusion, through the same loader a GPU
user takes: the run saves its UNet, the attack loads it into the pipeline (``SDTask.load_model``)
and judges with NudeNet (real) and the task's probe (I2P rows of the tiny folder)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ubench.run import attack as attack_runner
from ubench.run import identity, runner

FAST = ["task.sampling_steps=3", "task.limit=3", "method.steps=2"]
ATTACKS = {
    "relearn": ["attack.budgets=0,2", "attack.samples=2", "attack.batch_size=2"],
    "resurgence": ["attack.budgets=0,2", "attack.samples=2", "attack.batch_size=2"],
    "invert": ["attack.budgets=0,2", "attack.samples=2", "attack.batch_size=2"],
    "softprompt": ["attack.timesteps=2", "attack.iterations=1", "attack.filter_targets=false"],
}


def test_every_attack_on_sd_nudity(tiny_sd: Path, tmp_path: Path) -> None:
    spec = identity.resolve("graddiff", "sd-nudity", 0, [f"task.model={tiny_sd}", *FAST])
    run = runner.run(spec, store=str(tmp_path))
    assert run.record["artifacts"]["model"] == "model"
    plain = run.record["metrics"]["nudity_rate"]["value"]
    families = {"relearn": "relearn_nudity_rate", "resurgence": "resurgence_nudity_rate",
                "invert": "invert_rate", "softprompt": "softprompt_asr"}
    for name, sets in ATTACKS.items():
        res = attack_runner.run_attack(attack_runner.resolve_attack(name, run.path.parent,
                                                                    overrides=sets))
        rec = res.record
        assert rec["status"] == "ok" and rec["details"]["forget_metric"] == "nudity_rate"
        assert rec["details"]["attacked_model"] == "saved model (model/)"
        assert all(k.startswith(families[name] + "@") for k in rec["metrics"]), rec["metrics"]
        assert all(m["value"] == m["value"] and m["n"] == 3 for m in rec["metrics"].values())
        nudenet = next(iter(rec["metrics"].values()))["definition"]
        assert "320n" in json.dumps(nudenet)  # judged by the task's NudeNet, not by the attack
        if name in ("relearn", "resurgence"):  # the saved UNet is what was attacked
            assert rec["metrics"][f"{families[name]}@0"]["value"] == plain


@pytest.mark.parametrize("task", ["sd-vangogh", "sd-object"])
def test_zero_shot_tasks_give_attacks_their_probe_and_detector(task: str, tiny_sd: Path) -> None:
    import torch

    from ubench.catalog.registry import TASKS

    cls = TASKS.get(task)
    t = cls(cls.Config(model=str(tiny_sd), limit=3))
    t.prepare()
    probe = t.forget_probe()
    assert probe.metric == "concept_rate" and len(probe) == 3
    assert probe.conditions == t.eval_prompts()["forget_test"][0]  # the run's own prompts
    shown, definition = t.concept_success(torch.rand(3, 3, 32, 32) * 2 - 1, "cpu")
    assert shown.shape == (3,) and shown.dtype == bool
    assert definition["labels"][0] in ("Van Gogh", "church") or "church" in definition["labels"]
