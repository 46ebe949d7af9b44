"""CIFAR-10 pieces without a run: the two readers and their refusals, the model loader's
layouts and errors, the class pairs, clean-fid features and the real evaluators' error lines."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from ubench.core.errors import InputError, MissingAssetError
from ubench.tasks.cifar10 import data as D
from ubench.tasks.cifar10.recipes import CLIP_LABELS, TWO_CLASS_PAIRS


@pytest.fixture(scope="module")
def arrays() -> tuple[np.ndarray, np.ndarray]:
    return D.synthetic(6, seed=3)


@pytest.fixture()
def no_hf(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty Hugging Face cache and ubench home: a machine without CIFAR-10."""
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
    monkeypatch.setenv("UBENCH_HOME", str(tmp_path / "home"))
    return tmp_path / "hf" / "hub"


# ----------------------------------------------------------------------------- readers
def test_both_formats_decode_to_the_same_images(tmp_path: Path, arrays: tuple) -> None:
    x, y = arrays
    binary = D.load_train(str(D.write_binary(tmp_path / "cifar-10-batches-bin", x, y)))
    parquet = D.load_train(str(D.write_parquet(tmp_path / "train.parquet", x, y)))
    for got in (binary, parquet):
        np.testing.assert_array_equal(got.images, x)
        np.testing.assert_array_equal(got.labels, y)
        assert got.counts() == [6] * 10
    assert binary.digest == parquet.digest  # cache keys do not depend on the format
    # the binary layout: record = label byte + R, G, B planes
    raw = np.fromfile(tmp_path / "cifar-10-batches-bin" / "data_batch_1.bin", np.uint8)
    assert raw[0] == y[0] and raw[1] == x[0, 0, 0, 0] and raw[1 + 1024] == x[0, 0, 0, 1]
    # a parent folder of cifar-10-batches-bin and a folder of parquet files are found too
    assert D.load_train(str(tmp_path)).digest == binary.digest
    hf_layout = tmp_path / "snap" / "plain_text" / "train-00000-of-00001.parquet"
    D.write_parquet(hf_layout, x, y)
    assert D.load_train(str(tmp_path / "snap")).digest == binary.digest


def test_the_hugging_face_cache_is_read_offline(no_hf: Path, arrays: tuple) -> None:
    x, y = arrays
    repo = no_hf / "datasets--uoft-cs--cifar10"
    rev = "0b27149" + "0" * 33
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(rev)
    D.write_parquet(repo / "snapshots" / rev / "plain_text" / "train-00000-of-00001.parquet",
                    x, y)
    got = D.load_train("")
    assert "snapshots" in got.source and got.labels.tolist() == y.tolist()


def test_missing_data_names_both_downloads(no_hf: Path, tmp_path: Path) -> None:
    with pytest.raises(MissingAssetError) as e:
        D.load_train("")
    msg = str(e.value)
    assert "hf download uoft-cs/cifar10 --repo-type dataset" in msg
    assert "cifar-10-binary.tar.gz" in msg and "\n" not in msg
    with pytest.raises(MissingAssetError, match="does not exist"):
        D.load_train(str(tmp_path / "nowhere"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(MissingAssetError, match="no CIFAR-10 train data"):
        D.load_train(str(tmp_path / "empty"))


def test_the_pickle_release_is_refused_unread(tmp_path: Path) -> None:
    py = tmp_path / "cifar-10-batches-py"
    py.mkdir()
    # a file whose unpickling would run code: it must never be opened
    (py / "data_batch_1").write_bytes(b"cos\nsystem\n(S'touch PWNED'\ntR.")
    (py / "batches.meta").write_bytes(b"")
    for where in (py, tmp_path):
        with pytest.raises(InputError) as e:
            D.load_train(str(where))
        assert "never unpickles" in str(e.value) and "binary release" in str(e.value)
    assert not (tmp_path / "PWNED").exists()


def test_a_corrupt_binary_batch_is_one_line(tmp_path: Path, arrays: tuple) -> None:
    x, y = arrays
    folder = D.write_binary(tmp_path / "bin", x, y)
    batch = folder / "data_batch_3.bin"
    good = batch.read_bytes()
    batch.write_bytes(good[:-100])
    with pytest.raises(InputError, match=r"data_batch_3.bin is corrupt: .* 3,073-byte records"):
        D.check_layout(str(folder))
    with pytest.raises(InputError, match="not a whole number"):
        D.load_train(str(folder))
    batch.write_bytes(bytes([37]) + good[1:])  # label byte 37
    with pytest.raises(InputError, match="label byte 37"):
        D.load_train(str(folder))
    (folder / "data_batch_5.bin").unlink()
    with pytest.raises(InputError, match=r"lacks data_batch_5\.bin"):
        D.check_layout(str(folder))


def test_bad_parquet_files_are_one_line(tmp_path: Path) -> None:
    import pandas as pd

    wrong = tmp_path / "wrong.parquet"
    pd.DataFrame({"picture": [b"x"] * 3, "target": [0, 1, 2]}).to_parquet(wrong)
    with pytest.raises(InputError, match=r"has columns \['picture', 'target'\].*'img'"):
        D.check_layout(str(wrong))
    junk = tmp_path / "junk.parquet"
    junk.write_bytes(b"not parquet at all")
    with pytest.raises(InputError, match="not a readable parquet file"):
        D.load_train(str(junk))
    small = tmp_path / "small.parquet"
    D.write_parquet(small, np.zeros((2, 32, 32, 3), np.uint8), np.array([0, 1]))
    table = pd.read_parquet(small)
    from io import BytesIO

    from PIL import Image

    buf = BytesIO()
    Image.new("RGB", (16, 16)).save(buf, format="PNG")
    table.at[1, "img"] = {"bytes": buf.getvalue(), "path": None}
    table.to_parquet(small)
    with pytest.raises(InputError, match="row 1 is a 16x16 RGB image"):
        D.load_train(str(small))
    with pytest.raises(InputError, match="extract it first"):
        (tmp_path / "cifar-10-binary.tar.gz").write_bytes(b"")
        D.load_train(str(tmp_path / "cifar-10-binary.tar.gz"))


# ----------------------------------------------------------------------------- the model loader
def test_model_folders_of_three_layouts_load_and_bad_ones_are_one_line(tmp_path: Path) -> None:
    from diffusers import DDPMScheduler, UNet2DModel

    from ubench.models.diffusion import class_conditional_model, load_class_conditional

    kw = {"num_classes": 10, "in_channels": 3, "resolution": 32, "hint": "HINT"}
    model = class_conditional_model(resolution=32, channels=(16, 32), in_channels=3,
                                    attention_levels=(1,), seed=1)
    model.save(tmp_path / "ubench")
    model.unet.save_pretrained(tmp_path / "pipe" / "unet")
    DDPMScheduler(num_train_timesteps=1000).save_pretrained(tmp_path / "pipe" / "scheduler")
    model.unet.save_pretrained(tmp_path / "bare")
    x = torch.randn(2, 3, 32, 32)
    t, y = torch.tensor([10, 500]), torch.tensor([3, 10])
    ref = model.predict_noise(x, t, y)
    for layout in ("ubench", "pipe", "bare"):
        loaded = load_class_conditional(tmp_path / layout, **kw)
        torch.testing.assert_close(loaded.predict_noise(x, t, y), ref)
        assert loaded.conditioner.null_id == 10
    with pytest.raises(MissingAssetError, match="does not exist; HINT"):
        load_class_conditional(tmp_path / "nowhere", **kw)
    UNet2DModel(sample_size=32, block_out_channels=(16, 32), norm_num_groups=8,
                down_block_types=("DownBlock2D",) * 2, up_block_types=("UpBlock2D",) * 2
                ).save_pretrained(tmp_path / "uncond")
    with pytest.raises(MissingAssetError, match=r"unconditional .* 11 class embeddings"):
        load_class_conditional(tmp_path / "uncond", **kw)
    cfg = json.loads((tmp_path / "bare" / "config.json").read_text())
    (tmp_path / "ten").mkdir()
    (tmp_path / "ten" / "config.json").write_text(json.dumps({**cfg, "num_class_embeds": 10}))
    with pytest.raises(MissingAssetError, match=r"num_class_embeds=10.*null class 10"):
        load_class_conditional(tmp_path / "ten", **kw)
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "config.json").write_text(json.dumps(cfg))
    (tmp_path / "bin" / "diffusion_pytorch_model.bin").write_bytes(b"pickle")
    with pytest.raises(MissingAssetError, match="never unpickles"):
        load_class_conditional(tmp_path / "bin", **kw)
    with pytest.raises(MissingAssetError, match="needs 1x8x8"):
        load_class_conditional(tmp_path / "bare", num_classes=10, in_channels=1, resolution=8)


def test_the_cifar_unet_is_ddpms_network() -> None:
    from ubench.tasks.cifar10.task import Cifar10Class

    task = Cifar10Class(Cifar10Class.Config())
    unet = task.build_model().unet
    assert sum(p.numel() for p in unet.parameters()) == 35_751_939  # DDPM's 35.7M + 11 labels
    assert unet.config.down_block_types[1] == "AttnDownBlock2D"  # attention at 16x16
    assert unet.config.up_block_types[2] == "AttnUpBlock2D"
    assert unet.config.num_class_embeds == 11


def test_samplers_are_deterministic_and_batch_invariant() -> None:
    from ubench.models.diffusion import class_conditional_model

    model = class_conditional_model(resolution=8, channels=(8, 16), in_channels=3, seed=0)
    for sampler in ("ddim", "dpm-solver"):
        both = model.sample([1, 2], steps=4, guidance=2.0, seeds=[5, 6], sampler=sampler,
                            batch_size=1)
        alone = model.sample([2], steps=4, guidance=2.0, seeds=[6], sampler=sampler)
        torch.testing.assert_close(both[1], alone[0], rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="unknown sampler"):
        model.sample([1], steps=2, sampler="euler")


# ----------------------------------------------------------------------------- task pieces
def test_two_class_pairs_and_labels() -> None:
    assert TWO_CLASS_PAIRS[0] == (2, 8) and TWO_CLASS_PAIRS[2] == (4, 6)  # the paper's
    assert TWO_CLASS_PAIRS[5] == (3, 6)
    for k, pair in TWO_CLASS_PAIRS.items():
        assert k not in pair and len(set(pair)) == 2 and set(pair) <= set(range(10))
    assert len(CLIP_LABELS) == 11 and CLIP_LABELS[-1] == "random noise"


def test_clean_features_are_deterministic_and_thread_invariant() -> None:
    from ubench.metrics.frechet import FID, clean_features, gaussian_stats
    from ubench.metrics.injected import tiny_inception_net

    x, _ = D.synthetic(2, seed=1)
    images = torch.from_numpy(x).permute(0, 3, 1, 2)
    net = tiny_inception_net(0)
    one = clean_features(images, net, batch_size=7, workers=1)
    two = clean_features(images, net, batch_size=20, workers=2)
    assert one.shape == (20, 64) and one.dtype == np.float64
    np.testing.assert_allclose(one, two, rtol=1e-6, atol=1e-6)
    fid = FID.from_stats(*gaussian_stats(one), *gaussian_stats(one), 20, {})
    assert abs(fid.value) < 1e-3 and fid.ci_low == fid.ci_high == fid.value


def test_missing_or_broken_inception_weights_are_one_line(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch
                                                          ) -> None:
    from ubench.metrics import frechet

    monkeypatch.setenv("UBENCH_HOME", str(tmp_path))
    if (Path("/tmp") / frechet.INCEPTION_FILE).is_file():
        pytest.skip("this machine has clean-fid's Inception weights in /tmp")
    with pytest.raises(MissingAssetError, match=r"inception-2015-12-05\.pt .*about 95 MB"):
        frechet.resolve_inception_weights("")
    with pytest.raises(MissingAssetError, match="do not exist"):
        frechet.resolve_inception_weights(str(tmp_path / "nope.pt"))
    broken = tmp_path / "weights.pt"
    broken.write_bytes(b"truncated")
    with pytest.raises(MissingAssetError, match="could not load the Inception weights"):
        frechet.inception_net(broken)
