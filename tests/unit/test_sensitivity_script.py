"""scripts/sensitivity.py still finds the committed sensitivity runs when method configs gain
fields (protocol v2 added ``batching`` and ``threshold_unit``: its table came out empty)."""

from __future__ import annotations

from tests.conftest import ROOT, load_script
from ubench.catalog.registry import METHODS
from ubench.store.reader import load_records


def test_every_cell_of_the_committed_study_is_found() -> None:
    s = load_script("sensitivity")
    reference = METHODS.get("boostalign").Config().to_dict()
    found = s.cells(load_records(ROOT / "leaderboard" / "sensitivity"), 0, reference)
    assert len(found) == 9  # lambda {0.5, 1, 5} x alpha {0.01, 0.1, 1}
    for cell, methods in found.items():
        assert set(methods) == {"boostalign", "graddiff"}, cell
        assert all(sorted(seeds) == [0, 1, 2] for seeds in methods.values()), cell
