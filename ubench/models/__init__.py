"""The model layer: one wrapper over diffusers components that every method uses."""
