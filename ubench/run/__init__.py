"""One run and one attack: a run's identity, the runner, the attack runner, and the job that
runs a run and then its attacks (what the CLI and the sweep worker both call)."""
