//! The run-facts sidecar, `run-facts.json`, written beside a published page (a stage kind
//! that wants lineage, i.e. `report`): what varies from one computation of the same result to
//! the next — when each node ran, for how long, on which host, with which tool build — kept
//! out of the page's bytes so the page is byte-identical whoever rebuilds it and however
//! (`--jobs`, executor, thread counts). The page names the sidecar (as text: the page holds no link outside itself); it never embeds it.
//!
//! Built from cache records only (the page's own and its transitive upstream nodes'), so a
//! given set of cache entries always yields the same sidecar. Items (patient or slide ids) are
//! not written: nodes are named by stage and key, as the page's provenance table names them.
use crate::cache::Record;
use serde::Serialize;

/// The sidecar's file name in a published directory.
pub const FILE: &str = "run-facts.json";
/// Its `format` field.
pub const FORMAT: &str = "spatia-run-facts/1";

#[derive(Debug, Serialize)]
struct Fact<'a> {
    stage: &'a str,
    kind: &'a str,
    key: &'a str,
    started: &'a str,
    finished: &'a str,
    duration_s: f64,
    host: &'a str,
    tool: &'a str,
}

fn fact(r: &Record) -> Fact<'_> {
    Fact {
        stage: &r.stage,
        kind: &r.kind,
        key: &r.key,
        started: &r.started,
        finished: &r.finished,
        duration_s: r.duration_s,
        host: &r.host,
        tool: &r.tool,
    }
}

/// The sidecar's bytes for the node recorded in `own`, whose upstream records are `upstream`
/// (any order: listed by stage, then key).
pub fn sidecar(own: &Record, upstream: &[Record]) -> Vec<u8> {
    let mut up: Vec<Fact> = upstream.iter().map(fact).collect();
    up.sort_by(|a, b| a.stage.cmp(b.stage).then(a.key.cmp(b.key)));
    let total: f64 = upstream.iter().map(|r| r.duration_s).sum();
    let v = serde_json::json!({
        "format": FORMAT,
        "about": "Run-dependent facts of the page beside this file (times, durations, hosts, tool builds), kept out of the page so that its bytes do not depend on how it was computed.",
        "page": fact(own),
        "upstream_duration_s": total,
        "upstream": up,
    });
    (serde_json::to_string_pretty(&v).unwrap_or_default() + "\n").into_bytes()
}
