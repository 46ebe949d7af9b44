"""``ubench pack``: a store's run folders into its compact, columnar dataset."""

from __future__ import annotations

from typing import Annotated

import typer

from ubench.cli.app import app, err


@app.command()
def pack(
    store: Annotated[str, typer.Argument(help="The store to pack (a folder of run folders).")],
    into: Annotated[str | None, typer.Option(
        help="Write the dataset into this folder instead (created or merged into); the store "
             "is left as it is.")] = None,
) -> None:
    """Pack a store's run folders into its dataset: records, per-sample data, sample grids and
    attack records as Parquet tables under <store>/data/<task>/ (pandas and Hugging Face
    `datasets` read them). Nothing is lost: the tables are checked against what was read
    before the packed files leave their folders; unlearned weights (model/) stay. Every
    command that reads a store reads packed data too. This is also how a store written by an
    older ubench is migrated.

    Examples:
      ubench pack results
      ubench pack leaderboard/records
      ubench pack old-results --into migrated
    """
    from ubench.store.pack import pack as run_pack

    res = run_pack(store, into, say=err)
    where = f"{res.into}" + ("" if into is None else f" (from {store})")
    err(f"packed {res.runs} runs and {res.attacks} attacks into {where}"
        + (f"; removed {res.removed_files} packed files from their run folders"
           if into is None else ""))
