//! stages (being built).
