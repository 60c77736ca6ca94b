//! Reading PET DICOM series: pixel data to Bq/mL, geometry, SUV metadata (DESIGN S2).
