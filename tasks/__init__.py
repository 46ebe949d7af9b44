"""Built-in tasks (imported as ``ubench.tasks``); one module or folder per task family."""
