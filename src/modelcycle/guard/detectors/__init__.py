"""Built-in guard detectors: one module per family."""
