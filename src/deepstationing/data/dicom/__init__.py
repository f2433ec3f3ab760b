"""DICOM for radiotherapy: CT series, RT Structure Sets and Segmentations.

* :mod:`.series` — a CT series as the reference of derived objects; write any volume as a
  CT Image Storage series.
* :mod:`.contours` — planar contours from masks (holes included) and masks from contours.
* :mod:`.tracing` — marching-squares outlines of all labels of a label map at once.
* :mod:`.encoding` — an RT structure set's ROI Contour Sequence encoded directly.
* :mod:`.rtstruct` — write label maps as an RT Structure Set; read and rasterise one.
* :mod:`.seg` — write label maps as a DICOM SEG with coded concepts (highdicom); read back.
* :mod:`.export` — what ``deepstationing export`` / ``predict --format`` write.
* :mod:`.values` — decimal strings within DICOM's 16 characters, UIDs, de-identification.

Everything is in the patient (LPS) frame of the CT series; left stays left.
"""

from deepstationing.data.dicom.export import export_dicom, parse_formats
from deepstationing.data.dicom.rtstruct import (
    rasterize_rtstruct,
    read_rtstruct,
    rois_from_label_map,
    write_rtstruct,
)
from deepstationing.data.dicom.seg import read_seg, write_seg
from deepstationing.data.dicom.series import (
    SeriesReference,
    read_series_reference,
    write_ct_series,
)

__all__ = ["export_dicom", "parse_formats", "rasterize_rtstruct", "read_rtstruct",
           "rois_from_label_map", "write_rtstruct", "read_seg", "write_seg",
           "SeriesReference", "read_series_reference", "write_ct_series"]
