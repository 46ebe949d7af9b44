"""The offline text-to-image world (t2i-* tasks)."""
