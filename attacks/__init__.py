"""Built-in attacks on unlearned models (imported as ``ubench.attacks``); one file per attack."""
