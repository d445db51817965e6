//! The reviewer's and auditor's verbs over recorded runs (docs/provenance.md): [`reproduce`]
//! (a run recomputed in a scratch cache, compared byte for byte), [`lineage`] (the record chain
//! behind a file, key or metric), [`explain`] (the key components that changed),
//! [`rocrate`] (a run as a Workflow Run RO-Crate). They read run
//! records ([`crate::provenance`]), cache records and the DAG, and drive the executor: they sit
//! above `exec`, below `cli`.
pub mod explain;
pub mod lineage;
pub mod reproduce;
pub mod rocrate;
