"""Organ segmentation: the stratified anchor / non-anchor cascade."""
