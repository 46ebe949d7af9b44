"""The results store and the asset cache: the one owner of every file a run, an attack or a
cached asset writes (names, records, per-sample data, checkpoints, atomic writes)."""
