"""The stress set's deformations and the judges' augmentations do what their docstrings say."""

from __future__ import annotations

import torch

from ubench.tasks.digits import stress
from ubench.tasks.digits.data import load_digits_splits
from ubench.tasks.digits.judge import (
    NOT_A_DIGIT,
    VALIDATED_JUDGES,
    PartnerJudge,
    partner_augment,
    robust_augment,
)


def _zeros() -> torch.Tensor:
    _, held = load_digits_splits()
    return held.of_class(0)[:12]


def _ink(x: torch.Tensor) -> torch.Tensor:
    return ((x + 1) / 2).clamp(0, 1)


def test_every_transform_keeps_shape_range_and_is_deterministic() -> None:
    x = _zeros()
    for name, fn in stress.TRANSFORMS.items():
        a = fn(x, torch.Generator().manual_seed(1))
        b = fn(x, torch.Generator().manual_seed(1))
        assert a.shape == x.shape, name
        assert float(a.min()) >= -1 and float(a.max()) <= 1, name
        assert torch.equal(a, b), name
        assert not torch.allclose(a, x), f"{name} left the digits unchanged"


def test_squeeze_narrows_and_thin_and_thicken_change_the_ink() -> None:
    x = _zeros()
    gen = torch.Generator().manual_seed(0)
    cols = (_ink(x).sum(dim=(1, 2)) > 0.5).sum(1).float().mean()
    squeezed = (_ink(stress.squeeze(x, gen)).sum(dim=(1, 2)) > 0.5).sum(1).float().mean()
    assert squeezed < cols - 1.5, (float(cols), float(squeezed))
    ink = _ink(x).sum()
    assert _ink(stress.thicken(x, gen)).sum() > 1.2 * ink
    assert (_ink(stress.thin(x, gen)) > 0.5).sum() < (_ink(x) > 0.5).sum()
    # the identity strengths give the digit back
    same = stress.squeeze(x, gen, 1.0, 1.0)
    assert torch.allclose(same, x, atol=1e-5)


def test_erase_removes_ink_and_shift_moves_it_sideways() -> None:
    x = _zeros()
    gen = torch.Generator().manual_seed(0)
    assert (_ink(stress.erase(x, gen)).sum(dim=(1, 2, 3)) < _ink(x).sum(dim=(1, 2, 3))).all()
    moved = stress.shift(x, gen)
    centre = (torch.arange(8.0) * _ink(moved).sum(dim=(1, 2))).sum(1) / _ink(moved).sum((1, 2, 3))
    before = (torch.arange(8.0) * _ink(x).sum(dim=(1, 2))).sum(1) / _ink(x).sum((1, 2, 3))
    assert ((centre - before).abs() > 0.8).all()


def test_speckles_are_a_few_isolated_specks_on_an_empty_square() -> None:
    a = stress.speckles(200, torch.Generator().manual_seed(3))
    assert a.shape == (200, 1, 8, 8)
    assert torch.equal(a, stress.speckles(200, torch.Generator().manual_seed(3)))
    inked = (_ink(a) > 0).sum(dim=(1, 2, 3))
    assert int(inked.min()) == 3 and int(inked.max()) == 10
    assert float(_ink(a)[_ink(a) > 0].min()) >= 0.5 - 1e-6


def test_narrow_filled_zeros_are_narrower_and_have_no_hole() -> None:
    x = _zeros()
    a = stress.narrow_filled(x, torch.Generator().manual_seed(0))
    assert a.shape == x.shape and float(a.min()) >= -1 and float(a.max()) <= 1
    cols = (_ink(x).sum(dim=(1, 2)) > 0.5).sum(1).float().mean()
    narrow = (_ink(a).sum(dim=(1, 2)) > 0.5).sum(1).float().mean()
    assert narrow < cols - 0.5, (float(cols), float(narrow))  # squeezed, then dilated by 2
    # the zero's hole (the centre columns of the middle rows) is filled
    assert float(_ink(a)[:, 0, 3:5, 3:5].mean()) > float(_ink(x)[:, 0, 3:5, 3:5].mean()) + 0.3


def test_accuracy_table_counts_hits_per_transform_and_class() -> None:
    _, held = load_digits_splits()
    images, labels = held.images[:50], held.labels[:50]
    always_zero = stress.accuracy_table(lambda x: torch.zeros(len(x), dtype=torch.long),
                                        images, labels, variants=2)
    assert set(always_zero) == {"real", *stress.TRANSFORMS}
    for row in always_zero.values():
        assert row["class_0"] == 1.0
        assert abs(row["all"] - float((labels == 0).float().mean())) < 1e-6
    rejects = stress.accuracy_table(lambda x: torch.full((len(x),), NOT_A_DIGIT), images, labels,
                                    variants=1)
    assert all(row["all"] == 0.0 for row in rejects.values())
    assert always_zero["squeezed"]["n"] == 100


def test_augmentations_are_deterministic_and_keep_range() -> None:
    x = _zeros()
    for fn in (robust_augment, partner_augment):
        a = fn(x, torch.Generator().manual_seed(3))
        assert torch.equal(a, fn(x, torch.Generator().manual_seed(3)))
        assert a.shape == x.shape and float(a.min()) >= -1 and float(a.max()) <= 1


def test_the_partner_is_another_architecture() -> None:
    kinds = {r.arch for r in VALIDATED_JUDGES.values()}
    assert kinds == {"cnn-maxpool", "cnn-strided"}
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in PartnerJudge().modules())
    assert PartnerJudge()(torch.zeros(2, 1, 8, 8)).shape == (2, 11)
