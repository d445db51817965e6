//! provenance (being built).
