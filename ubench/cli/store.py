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
             "is left as it is. With --unpack: the folder to write the run folders into.")
                    ] = None,
    without: Annotated[list[str] | None, typer.Option(
        help="With --into: leave the files of this name out of the dataset written there "
             "(repeatable), e.g. --without features.safetensors for a published copy; the "
             "store keeps them.")] = None,
    unpack: Annotated[bool, typer.Option(
        "--unpack", help="The other way: write a packed store's runs back as run folders "
                         "into --into (for a tool that reads run folders).")] = False,
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
      ubench pack results --into published --without features.safetensors
      ubench pack leaderboard/records --unpack --into /tmp/run-folders
    """
    from ubench.core.errors import ConfigError
    from ubench.store.pack import pack as run_pack
    from ubench.store.pack import unpack as run_unpack

    if unpack:
        if without:
            raise ConfigError("--without applies to packing; drop it with --unpack")
        if into is None:
            raise ConfigError("--unpack needs --into <folder> to write the run folders into")
        run_unpack(store, into, say=err)
        return
    res = run_pack(store, into, say=err, without=tuple(without or ()))
    where = f"{res.into}" + ("" if into is None else f" (from {store})")
    err(f"packed {res.runs} runs and {res.attacks} attacks into {where}"
        + (f"; removed {res.removed_files} packed files from their run folders"
           if into is None else ""))
