"""Data: geometry-aware images and file I/O, and the synthetic phantom cohort."""

from deepstationing.data.image import (
    Image,
    check_same_geometry,
    read_dicom_series,
    read_image,
    write_image,
)

__all__ = ["Image", "check_same_geometry", "read_dicom_series", "read_image", "write_image"]
