"""Prediction on CT files and DICOM folders: batches, per-case progress, every output format."""
