"""Reading the store, never running anything: leaderboard tables, the fair protocol's fronts and
rankings, robustness tables, ``ubench compare`` and the web page. Torch-free."""
