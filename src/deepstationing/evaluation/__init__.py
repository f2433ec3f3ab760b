"""Evaluation: segmentation metrics in millimetres and result tables."""
