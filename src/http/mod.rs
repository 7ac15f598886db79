//! The HTTP/1.1 binding (feature `http`). Work in progress.
