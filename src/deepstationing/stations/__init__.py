"""The anatomy-encoded station network (paper section 2.2) and its held-out evaluation."""
