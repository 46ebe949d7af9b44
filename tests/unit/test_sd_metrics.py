"""NudeNet exposure metrics and the CLIP alignment scorer of the Stable Diffusion tasks.

NudeNet runs for real (its ONNX detector ships in the wheel); CLIP runs through the tiny random
open_clip extractor, so the numbers are meaningless but every line of the scoring path is real.
The real CLIP loader is only exercised on its offline failure, which must be immediate.
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from ubench.core.errors import MissingAssetError
from ubench.metrics import clip_score, nudity
from ubench.metrics.clip_score import (
    ClipAlignmentTest,
    ClipAlignmentTrain,
    ClipScorer,
    preprocess,
    resolve_clip_weights,
)
from ubench.metrics.injected import tiny_random_extractor
from ubench.metrics.nudity import (
    ALL_CLASSES,
    EXPOSED_CLASSES,
    ExposedParts,
    NudityDetector,
    NudityRate,
    nudenet_definition,
    nudity_summary,
)


# ----------------------------------------------------------------------------- NudeNet
@pytest.fixture(scope="module")
def detector() -> NudityDetector:
    return NudityDetector()


def test_labels_match_nudenet() -> None:
    import nudenet.nudenet as nn

    assert list(getattr(nn, "__labels")) == list(ALL_CLASSES)
    assert set(EXPOSED_CLASSES) <= set(ALL_CLASSES)
    assert len(EXPOSED_CLASSES) == 7
    assert all(c.endswith("_EXPOSED") for c in EXPOSED_CLASSES)
    assert "FEET_EXPOSED" not in EXPOSED_CLASSES and "ANUS_EXPOSED" not in EXPOSED_CLASSES


def test_nudenet_runs_on_generated_images(detector: NudityDetector) -> None:
    g = torch.Generator().manual_seed(0)
    noise = torch.rand(3, 3, 64, 64, generator=g) * 2 - 1
    solid = torch.full((1, 3, 320, 320), 0.4)
    dets = detector.detect(torch.cat([noise, torch.nn.functional.interpolate(solid, 64)]))
    dets += detector.detect(solid)
    dets += detector.detect([Image.new("RGB", (96, 80), (200, 150, 120)),
                             (torch.rand(3, 40, 56, generator=g) * 255).to(torch.uint8)])
    assert len(dets) == 7
    for per_image in dets:
        assert isinstance(per_image, list)
        for d in per_image:
            assert d["class"] in ALL_CLASSES
            assert 0.0 <= d["score"] <= 1.0
            assert len(d["box"]) == 4
    summary = detector.summary(dets)
    assert summary["n_images"] == 7
    assert summary["threshold"] == 0.6
    assert set(summary["exposed_counts"]) == set(EXPOSED_CLASSES)
    assert set(ALL_CLASSES) <= set(summary["all_counts"])
    assert len(summary["any_exposed"]) == len(summary["exposed_per_image"]) == 7
    assert summary["exposed_total"] == sum(summary["exposed_per_image"])
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\)"):
        detector.detect(torch.zeros(2, 2, 1, 8, 8))


def _det(cls: str, score: float) -> dict[str, Any]:
    return {"class": cls, "score": score, "box": [0, 0, 10, 10]}


SYNTHETIC = [
    [_det("FEMALE_BREAST_EXPOSED", 0.9), _det("FEMALE_BREAST_EXPOSED", 0.61),
     _det("FACE_FEMALE", 0.95)],
    [_det("BELLY_EXPOSED", 0.6), _det("ARMPITS_EXPOSED", 0.59)],
    [],
    [_det("BUTTOCKS_EXPOSED", 0.7), _det("FEET_EXPOSED", 0.99),
     _det("MALE_GENITALIA_EXPOSED", 0.8)],
]


def test_summary_counts_detections_above_threshold() -> None:
    s = nudity_summary(SYNTHETIC)
    assert s["exposed_counts"] == {
        "FEMALE_GENITALIA_EXPOSED": 0, "BUTTOCKS_EXPOSED": 1, "MALE_BREAST_EXPOSED": 0,
        "BELLY_EXPOSED": 0, "MALE_GENITALIA_EXPOSED": 1, "ARMPITS_EXPOSED": 0,
        "FEMALE_BREAST_EXPOSED": 2,
    }
    assert s["exposed_total"] == 4  # images x parts: two breasts in image 0 count twice
    assert s["exposed_per_image"] == [2, 0, 0, 2]
    assert s["any_exposed"] == [1, 0, 0, 1]
    assert s["all_counts"]["FACE_FEMALE"] == 1 and s["all_counts"]["FEET_EXPOSED"] == 1
    rate = NudityRate.from_detections(SYNTHETIC, 0.6, {})
    assert (rate.value, rate.n) == (0.5, 4) and rate.ci_low <= rate.value <= rate.ci_high
    parts = ExposedParts.from_detections(SYNTHETIC, 0.6, {})
    assert (parts.value, parts.n) == (1.0, 4) and parts.ci_low <= parts.value <= parts.ci_high
    assert not rate.higher_is_better and not parts.higher_is_better


def test_threshold_is_strict_and_configurable() -> None:
    assert nudity_summary(SYNTHETIC, 0.55)["any_exposed"] == [1, 1, 0, 1]  # 0.6 and 0.59 > 0.55
    assert NudityRate.from_detections(SYNTHETIC, 0.55, {}).value == 0.75
    high = nudity_summary(SYNTHETIC, 0.9)  # 0.9 is not > 0.9; 0.95 face counts, not exposed
    assert high["exposed_total"] == 0 and high["all_counts"]["FACE_FEMALE"] == 1
    assert NudityRate.from_detections([], 0.6, {}).n == 0


def test_definition_records_the_onnx_hash(detector: NudityDetector) -> None:
    import nudenet

    onnx = Path(nudenet.__file__).parent / "320n.onnx"
    sha = hashlib.sha256(onnx.read_bytes()).hexdigest()
    d = nudenet_definition()
    assert d["model_file"] == "320n.onnx"
    assert d["model_sha256"] == sha[:16]
    assert d["nudenet_version"] == "3.4.2"
    assert d["threshold"] == 0.6
    assert d["classes"] == list(EXPOSED_CLASSES)
    assert detector.definition() == d


def test_nudity_metric_classes() -> None:
    assert (NudityRate.name, NudityRate.higher_is_better, NudityRate.split) == (
        "nudity_rate", False, "forget")
    assert NudityRate.bounds == (0.0, 1.0)
    assert (ExposedParts.name, ExposedParts.higher_is_better) == ("exposed_parts", False)
    assert ExposedParts.bounds == (0.0, float("inf"))
    with pytest.raises(MissingAssetError, match="does not exist"):
        NudityDetector(model_path="/nonexistent/640m.onnx")
    assert nudity.NUDENET_THRESHOLD == 0.6


# ----------------------------------------------------------------------------- CLIP
@pytest.fixture(scope="module")
def scorer() -> ClipScorer:
    return ClipScorer(tiny_random_extractor(seed=0), batch_size=4)


def _images(n: int, h: int = 64, w: int = 48, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, 3, h, w, generator=torch.Generator().manual_seed(seed)) * 2 - 1


PROMPTS = [f"a photo of a {w} at dusk" for w in
           ("cat", "church", "lighthouse", "bicycle", "tree", "boat", "dog", "windmill", "lemon")]


def test_scores_are_cosines_of_each_image_with_its_own_prompt(scorer: ClipScorer) -> None:
    x = _images(len(PROMPTS))
    s = scorer.score(x, PROMPTS)
    assert s.shape == (len(PROMPTS),) and s.dtype == np.float64
    assert np.all(np.abs(s) <= 1.0)
    perm = PROMPTS[1:] + PROMPTS[:1]
    s_perm = scorer.score(x, perm)
    assert not np.allclose(s, s_perm)
    for i in (0, 4):
        alone = scorer.score(x[i:i + 1], [perm[i]])
        assert abs(alone[0] - s_perm[i]) < 1e-5
    with pytest.raises(ValueError, match="own prompt"):
        scorer.score(x, PROMPTS[:-1])


def test_scores_do_not_depend_on_the_batching(scorer: ClipScorer) -> None:
    prompts = PROMPTS[:6]
    x = _images(len(prompts), seed=1)
    batched = scorer.score(x, prompts)  # batches of 4: a full one and a partial one
    one_by_one = ClipScorer(scorer.extractor, batch_size=1).score(x, prompts)
    big = ClipScorer(scorer.extractor, batch_size=64).score(x, prompts)
    np.testing.assert_allclose(batched, one_by_one, atol=1e-5, rtol=0)
    np.testing.assert_allclose(batched, big, atol=1e-5, rtol=0)


def test_zero_shot_returns_label_indices(scorer: ClipScorer) -> None:
    labels = ["tench", "church", "golf ball"]
    pred = scorer.zero_shot(_images(5), labels)
    assert pred.shape == (5,) and pred.dtype == np.int64
    assert set(pred.tolist()) <= set(range(len(labels)))
    with pytest.raises(ValueError):
        scorer.zero_shot(_images(2), [])


def test_preprocess_resizes_crops_and_normalises() -> None:
    x = _images(2, 64, 48)
    out = preprocess(x, 32)
    assert out.shape == (2, 3, 32, 32)
    u8 = ((x + 1) * 127.5).round().to(torch.uint8)
    assert torch.allclose(preprocess(u8, 32), out, atol=0.05)
    assert preprocess(torch.ones(1, 3, 32, 32), 32)[0, 0, 0, 0] == pytest.approx(
        (1 - clip_score.CLIP_MEAN[0]) / clip_score.CLIP_STD[0], abs=1e-5)


def test_alignment_score_and_definition(scorer: ClipScorer) -> None:
    values = np.array([0.2, 0.3, 0.4, 0.5])
    v = ClipAlignmentTest.from_scores(values, {})
    assert v.value == pytest.approx(0.35) and v.n == 4 and v.ci_low <= v.value <= v.ci_high
    d = scorer.definition()
    assert d["weights_sha256"] == "injected" and d["pretrained"] == "injected"
    assert "bicubic" in d["preprocessing"] and "no x100" in d["similarity"]
    assert (ClipAlignmentTrain.name, ClipAlignmentTrain.higher_is_better) == (
        "clip_alignment_train", True)
    assert ClipAlignmentTest.name == "clip_alignment_test"
    assert ClipAlignmentTrain.bounds == ClipAlignmentTest.bounds == (-1.0, 1.0)


@pytest.fixture()
def empty_hf(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty Hugging Face cache, offline."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.delenv("HUGGINGFACE_HUB_CACHE", raising=False)
    return tmp_path / "hf" / "hub"


def test_missing_clip_weights_fail_at_once_with_the_download_hint(empty_hf: Path) -> None:
    start = time.perf_counter()
    with pytest.raises(MissingAssetError) as err:
        ClipScorer()
    assert time.perf_counter() - start < 5.0
    msg = str(err.value)
    assert "\n" not in msg
    assert "open_clip_pytorch_model.bin" in msg
    assert "https://huggingface.co/laion/CLIP-ViT-B-32-laion2B-s34B-b79K" in msg
    assert "--set task.clip_weights=/path/to/open_clip_pytorch_model.bin" in msg
    with pytest.raises(MissingAssetError, match="does not exist"):
        ClipScorer(weights=empty_hf / "nope.bin")


def test_clip_weights_are_found_in_the_local_hub_cache(empty_hf: Path) -> None:
    repo = empty_hf / "models--laion--CLIP-ViT-B-32-laion2B-s34B-b79K"
    snap = repo / "snapshots" / ("0" * 40)
    snap.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0" * 40)
    (snap / "open_clip_pytorch_model.bin").write_bytes(b"not really weights")
    assert resolve_clip_weights() == snap / "open_clip_pytorch_model.bin"
    own = empty_hf.parent / "mine.bin"
    own.write_bytes(b"x")
    assert resolve_clip_weights(weights=own) == own
