//! The provenance section (`templates/report/provenance.html`): one row per upstream stage
//! (kind, version, parameters, keys per item, inputs with their digests, tool and library
//! versions), from the [`Lineage`] rows the caller hands over, and the command that rebuilds
//! the page. Nothing that varies from one computation of the same result to the next (times,
//! durations, hosts) is shown: those live in the `run-facts.json` sidecar the publish writes
//! beside the page, which the section links to; the page's bytes depend on its inputs only.
use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::Serialize;

use super::Options;
use crate::report::pseudonyms::Pseudonyms;

/// One upstream node of the report, as the provenance table shows it: what its cache record
/// says, and the arms that share it.
#[derive(Debug, Clone)]
pub struct Lineage {
    /// Arms sharing the node.
    pub arms: Vec<String>,
    /// Stage name (a node shared by several arms records the first).
    pub stage: String,
    pub kind: String,
    pub kind_version: u32,
    /// The item of a shard (patient or slide id), None for a single stage.
    pub item: Option<String>,
    pub key: String,
    /// Resolved parameters.
    pub params: serde_json::Value,
    pub inputs: Vec<LineageInput>,
    /// The tool version that computed it.
    pub tool: String,
    /// Library name → version.
    pub libraries: BTreeMap<String, String>,
}

/// An input file of an upstream node.
#[derive(Debug, Clone)]
pub struct LineageInput {
    pub role: String,
    pub path: String,
    pub blake3: String,
}

#[derive(Debug, Serialize)]
struct KeyRow {
    item: String,
    key: String,
}

#[derive(Debug, Serialize)]
struct InputRow {
    role: String,
    path: String,
    blake3: String,
}

#[derive(Debug, Serialize)]
struct ProvRow {
    stage: String,
    kind: String,
    version: u32,
    arms: String,
    nodes: usize,
    key: String,
    keys: Vec<KeyRow>,
    params: String,
    inputs: Vec<InputRow>,
    inputs_elided: usize,
    tool: String,
    libraries: String,
}

#[derive(Debug, Serialize)]
pub(super) struct ProvView {
    rows: Vec<ProvRow>,
    command: String,
    report_key: String,
    report_stage: String,
    report_params: String,
    tool: String,
    libraries: String,
}

/// A string a POSIX shell reads back as itself.
fn shell_quote(s: &str) -> String {
    if !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || "-_./=+,:@".contains(c)) {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

pub(super) fn provenance(upstream: &[Lineage], ps: &Pseudonyms, opts: &Options) -> ProvView {
    // one row per (stage, kind, version, parameters): the shards of a per-slide stage collapse,
    // arms that differ in parameters stay apart
    let mut rows: Vec<ProvRow> = Vec::new();
    let mut index: HashMap<(String, String, u32, String), usize> = HashMap::new();
    for r in upstream {
        let params = serde_json::to_string(&r.params).unwrap_or_default();
        let k = (r.stage.clone(), r.kind.clone(), r.kind_version, params.clone());
        let i = *index.entry(k).or_insert_with(|| {
            rows.push(ProvRow {
                stage: r.stage.clone(),
                kind: r.kind.clone(),
                version: r.kind_version,
                arms: String::new(),
                nodes: 0,
                key: String::new(),
                keys: Vec::new(),
                params: serde_json::to_string_pretty(&r.params).unwrap_or_default(),
                inputs: Vec::new(),
                inputs_elided: 0,
                tool: r.tool.clone(),
                libraries: r.libraries.iter().map(|(k, v)| format!("{k} {v}")).collect::<Vec<_>>().join(", "),
            });
            rows.len() - 1
        });
        let row = &mut rows[i];
        row.nodes += 1;
        let mut arms: BTreeSet<String> = row.arms.split(", ").filter(|s| !s.is_empty()).map(str::to_string).collect();
        arms.extend(r.arms.iter().cloned());
        row.arms = arms.into_iter().collect::<Vec<_>>().join(", ");
        row.keys.push(KeyRow { item: r.item.as_deref().map(|x| ps.item(x)).unwrap_or_default(), key: r.key.clone() });
        for inp in &r.inputs {
            if row.inputs.len() < 8 {
                row.inputs.push(InputRow {
                    role: inp.role.clone(),
                    path: inp.path.clone(),
                    blake3: inp.blake3.clone(),
                });
            } else {
                row.inputs_elided += 1;
            }
        }
        if row.tool != r.tool && !row.tool.contains(&r.tool) {
            row.tool = format!("{}; {}", row.tool, r.tool);
        }
    }
    for row in rows.iter_mut() {
        row.keys.sort_by(|a, b| a.item.cmp(&b.item).then(a.key.cmp(&b.key)));
        if row.nodes == 1 {
            row.key = row.keys[0].key.clone();
        }
    }
    ProvView {
        rows,
        command: format!("spatia run {}", shell_quote(&opts.spec_file)),
        report_key: opts.key.clone(),
        report_stage: opts.stage.clone(),
        report_params: serde_json::to_string_pretty(&opts.params).unwrap_or_default(),
        tool: opts.tool.clone(),
        libraries: opts.libraries.iter().map(|(k, v)| format!("{k} {v}")).collect::<Vec<_>>().join(", "),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_are_shell_quoted() {
        assert_eq!(shell_quote("experiments/demo.yaml"), "experiments/demo.yaml");
        assert_eq!(shell_quote("my spec's.yaml"), r"'my spec'\''s.yaml'");
    }
}
