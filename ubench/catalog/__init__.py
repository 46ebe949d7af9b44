"""Components known by name, without importing them: the registries, the built-in table, the
facts the report needs, the fast command-line checks and the presets. Torch-free."""
