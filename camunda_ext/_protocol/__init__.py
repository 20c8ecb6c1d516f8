"""Private machinery of the workers: one role per module, names may change without notice."""
