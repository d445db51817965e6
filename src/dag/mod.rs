//! dag (being built).
