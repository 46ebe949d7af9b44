"""The ground layer: errors, typed configs, digests, locks, paths, the environment, shared
statistics. Imports nothing else of ubench and never torch at import time."""
