"""Collection: getting objects into the site (folders now; DICOM networking and DICOMweb later)."""

from dicomhaven.collect._folder import FileResult, IntakeTask, count_files, iter_files

__all__ = ["FileResult", "IntakeTask", "count_files", "iter_files"]
