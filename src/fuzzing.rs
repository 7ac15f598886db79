//! Entry points for the fuzz targets in `fuzz/` (feature `fuzzing`). Not a stable API.
