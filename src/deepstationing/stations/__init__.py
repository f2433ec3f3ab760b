"""Station parsing: the margin-based rule baseline and the anatomy-encoded network."""
