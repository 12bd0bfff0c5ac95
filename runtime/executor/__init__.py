"""Local execution of a bundle: main segments in order, exit heads, the early-exit rule."""
