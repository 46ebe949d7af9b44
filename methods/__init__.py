"""Built-in unlearning methods (imported as ``ubench.methods``); one file per method."""
