//! The compiled DAG: one node per distinct stage key, across all arms and shards.
//!
//! [`build`] walks every arm's stages in dependency order, fans per-item stages out into one
//! shard per cohort item, computes each node's key from its [`StageHashable`] and merges nodes
//! whose key is equal, so arms that share a prefix share those nodes and run them once.
//!
//! **Invariant:** a key depends only on the kind, its version, resolved parameters, the keys
//! of what it needs, the content digests of its input files, its item's digest and (for kinds
//! that draw random numbers) the seed — never on absolute paths, the time or the host.
//! `dag` reads input files only to hash them (through the stat cache) and the cohort tables
//! only to list items.
pub mod items;

use crate::cache::hash::StatCache;
use crate::spec::{Spec, StageDecl};
use crate::stages::{Fanout, Item, ResolvedInput};
use anyhow::{Context, Result};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// Version of the key encoding; bump to invalidate every key.
pub const KEY_SCHEMA_VERSION: u32 = 1;

/// Exactly what a key is the blake3 digest of (as canonical JSON, with the stage's resolved
/// parameters under `params`).
#[derive(Debug, Clone, Serialize)]
pub struct StageHashable {
    // identity of the computation
    pub schema: u32,
    pub kind: String,
    pub kind_version: u32,
    pub seed: Option<u64>,
    // what it reads
    pub upstream: BTreeMap<String, Vec<String>>,
    pub inputs: BTreeMap<String, String>,
    pub item: Option<(String, String)>,
}

fn js(s: &str) -> String {
    serde_json::to_string(s).expect("string serialises")
}

impl StageHashable {
    /// The canonical encoding: fields in sorted order, `params_canonical` being the canonical
    /// JSON of the resolved parameters. Equal to `util::canonical_json` of the same object
    /// (checked by a test), written directly because no-op runs hash thousands of these.
    pub fn encode(&self, params_canonical: &str) -> String {
        let mut s = String::with_capacity(256 + params_canonical.len());
        s.push_str("{\"inputs\":{");
        for (i, (k, v)) in self.inputs.iter().enumerate() {
            if i > 0 {
                s.push(',');
            }
            s.push_str(&js(k));
            s.push(':');
            s.push_str(&js(v));
        }
        s.push_str("},\"item\":");
        match &self.item {
            None => s.push_str("null"),
            Some((id, d)) => {
                s.push('[');
                s.push_str(&js(id));
                s.push(',');
                s.push_str(&js(d));
                s.push(']');
            }
        }
        s.push_str(",\"kind\":");
        s.push_str(&js(&self.kind));
        s.push_str(&format!(",\"kind_version\":{},\"params\":", self.kind_version));
        s.push_str(params_canonical);
        s.push_str(&format!(",\"schema\":{},\"seed\":", self.schema));
        match self.seed {
            None => s.push_str("null"),
            Some(x) => s.push_str(&x.to_string()),
        }
        s.push_str(",\"upstream\":{");
        for (i, (k, keys)) in self.upstream.iter().enumerate() {
            if i > 0 {
                s.push(',');
            }
            s.push_str(&js(k));
            s.push_str(":[");
            for (j, key) in keys.iter().enumerate() {
                if j > 0 {
                    s.push(',');
                }
                s.push_str(&js(key));
            }
            s.push(']');
        }
        s.push_str("}}");
        s
    }
    /// The key: blake3 of the canonical encoding, hex.
    pub fn key(&self, params_canonical: &str) -> String {
        blake3::hash(self.encode(params_canonical).as_bytes()).to_hex().to_string()
    }
}

/// A need of a node: the stage name and the nodes providing it.
#[derive(Debug, Clone)]
pub struct NodeNeed {
    pub name: String,
    pub kind: String,
    /// (item id for a shard, node index)
    pub nodes: Vec<(Option<String>, usize)>,
    /// The arm each of `nodes` comes from.
    pub arms: Vec<String>,
}

/// One unit of work.
#[derive(Debug, Clone)]
pub struct Node {
    pub key: String,
    pub stage: String,
    /// Arms sharing this node.
    pub arms: Vec<String>,
    pub decl: Arc<StageDecl>,
    pub item: Option<Item>,
    pub needs: Vec<NodeNeed>,
    /// Nodes this one depends on (indices, all smaller than its own).
    pub deps: Vec<usize>,
    pub inputs: Vec<ResolvedInput>,
    pub hashable: StageHashable,
}

/// One arm's stages: (stage name, node indices), in declaration order.
pub type ArmStages = Vec<(String, Vec<usize>)>;

/// The compiled DAG.
#[derive(Debug)]
pub struct Dag {
    /// Nodes in a topological order.
    pub nodes: Vec<Node>,
    /// arm name → (stage name → node indices), stages in declaration order.
    pub arms: Vec<(String, ArmStages)>,
    pub graph: petgraph::graph::DiGraph<usize, ()>,
    /// The cohort's slides (empty without a manifest).
    pub slides: Vec<Item>,
}

/// Builds the DAG of a spec, hashing input files through `stat`.
pub fn build(spec: &Spec, stat: &mut StatCache) -> Result<Dag> {
    let mut nodes: Vec<Node> = Vec::new();
    let mut by_key: HashMap<String, usize> = HashMap::new();
    let mut digests: HashMap<String, String> = HashMap::new();
    let needs_patients = spec.arms.iter().flat_map(|a| &a.stages).any(|s| s.checked.fanout == Fanout::PerPatient);
    // slides are listed whenever the cohort has a manifest: `ingest` records their digests
    let needs_slides = spec.cohort.as_ref().is_some_and(|c| c.slides.is_some());
    let patients = if needs_patients { items::patients(spec)? } else { Vec::new() };
    let slides = if needs_slides { items::slides(spec, stat)? } else { Vec::new() };
    // limits that depend on the data (a tile µm/px finer than the slide's): the slides' headers
    let plans =
        spec.arms.iter().flat_map(|a| &a.stages).any(|s| s.checked.fanout == Fanout::PerSlide && s.kind.plans_slides());
    let memo = stat.file().and_then(|f| f.parent()).map(|d| d.join("slide-facts.tsv"));
    let facts = if plans { items::slide_facts(&slides, memo.as_deref()) } else { HashMap::new() };
    // Stage-major: every arm places stage s before any arm places s+1, so a kind that gathers
    // arms finds the needed stage placed in all of them. Matrices vary parameters only, so the
    // stage order is the same in every arm.
    let order = spec.arms.first().map(|a| topo_order(&a.stages)).unwrap_or_default();
    // per arm: stage name → (fanout, [(item id, node)])
    type Placed<'a> = HashMap<&'a str, (Fanout, Vec<(Option<String>, usize)>)>;
    let mut placed: Vec<Placed> = vec![HashMap::new(); spec.arms.len()];
    let by_name: Vec<HashMap<&str, &StageDecl>> =
        spec.arms.iter().map(|arm| arm.stages.iter().map(|s| (s.name.as_str(), s.as_ref())).collect()).collect();
    for &si in &order {
        for (ai, arm) in spec.arms.iter().enumerate() {
            let by_name = &by_name[ai];
            let decl = &arm.stages[si];
            let gathers = decl.kind.gathers_arms();
            let mut inputs = Vec::new();
            for inp in &decl.checked.inputs {
                let full = spec.root.join(&inp.path);
                let digest = match digests.get(&inp.path) {
                    Some(d) => d.clone(),
                    None => {
                        let d = stat.digest(&full).with_context(|| format!("cannot hash input {}", full.display()))?;
                        digests.insert(inp.path.clone(), d.clone());
                        d
                    }
                };
                inputs.push(ResolvedInput { role: inp.role.clone(), path: full, digest });
            }
            let shard_items: Vec<Option<&Item>> = match decl.checked.fanout {
                Fanout::Single => vec![None],
                Fanout::PerPatient => patients.iter().map(Some).collect(),
                Fanout::PerSlide => slides
                    .iter()
                    .filter(|it| match &decl.checked.stains {
                        None => true,
                        Some(st) => it.slide.as_ref().is_some_and(|s| st.contains(&s.stain)),
                    })
                    .map(Some)
                    .collect(),
            };
            let mut mine = Vec::new();
            for item in shard_items {
                if let Some(f) = item.filter(|_| decl.kind.plans_slides()).and_then(|it| facts.get(&it.id)) {
                    plan_check(spec, arm, decl, item.map(|i| i.id.as_str()).unwrap_or(""), f)?;
                }
                let mut upstream = BTreeMap::new();
                let mut needs = Vec::new();
                let mut deps = Vec::new();
                for n in &decl.needs {
                    let up_decl = by_name[n.as_str()];
                    let (chosen, chosen_arms, keys) = if gathers {
                        // every arm's nodes of the needed stage; a fanned-out stage's shards once
                        let mut chosen = Vec::new();
                        let mut chosen_arms = Vec::new();
                        let mut keys = Vec::new();
                        let mut seen = std::collections::HashSet::new();
                        for (bi, other) in spec.arms.iter().enumerate() {
                            let (nf, provided) = &placed[bi][n.as_str()];
                            for (id, j) in provided {
                                if *nf != Fanout::Single && !seen.insert(*j) {
                                    continue;
                                }
                                chosen.push((id.clone(), *j));
                                chosen_arms.push(other.name.clone());
                                keys.push(if *nf == Fanout::Single {
                                    format!("{}={}", other.name, nodes[*j].key)
                                } else {
                                    nodes[*j].key.clone()
                                });
                            }
                        }
                        (chosen, chosen_arms, keys)
                    } else {
                        let (nf, provided) = &placed[ai][n.as_str()];
                        let chosen: Vec<(Option<String>, usize)> = match (item, nf) {
                            (Some(it), f) if *f == decl.checked.fanout => {
                                provided.iter().filter(|(id, _)| id.as_deref() == Some(&it.id)).cloned().collect()
                            }
                            _ => provided.clone(),
                        };
                        let keys: Vec<String> = match (item, nf) {
                            (Some(it), Fanout::Single) if up_decl.kind.item_scoped() => {
                                let view = serde_json::json!({
                                    "kind": up_decl.kind.name(),
                                    "kind_version": up_decl.kind.version(),
                                    "params": up_decl.checked.params,
                                    "item": [it.id, it.digest],
                                });
                                vec![format!(
                                    "item:{}",
                                    blake3::hash(crate::util::canonical_json(&view).as_bytes()).to_hex()
                                )]
                            }
                            _ => chosen.iter().map(|(_, i)| nodes[*i].key.clone()).collect(),
                        };
                        let chosen_arms = vec![arm.name.clone(); chosen.len()];
                        (chosen, chosen_arms, keys)
                    };
                    upstream.insert(n.clone(), keys);
                    deps.extend(chosen.iter().map(|(_, i)| *i));
                    needs.push(NodeNeed {
                        name: n.clone(),
                        kind: up_decl.kind.name().to_string(),
                        nodes: chosen,
                        arms: chosen_arms,
                    });
                }
                let hashable = StageHashable {
                    schema: KEY_SCHEMA_VERSION,
                    kind: decl.kind.name().to_string(),
                    kind_version: decl.kind.version(),
                    seed: decl.checked.uses_seed.then_some(spec.seed),
                    upstream,
                    inputs: inputs.iter().map(|i| (i.role.clone(), i.digest.clone())).collect(),
                    item: item.map(|i| (i.id.clone(), i.digest.clone())),
                };
                let key = hashable.key(&decl.params_canonical);
                let idx = match by_key.get(&key) {
                    Some(&i) => {
                        if !nodes[i].arms.contains(&arm.name) {
                            nodes[i].arms.push(arm.name.clone());
                        }
                        i
                    }
                    None => {
                        deps.sort_unstable();
                        deps.dedup();
                        nodes.push(Node {
                            key: key.clone(),
                            stage: decl.name.clone(),
                            arms: vec![arm.name.clone()],
                            decl: Arc::clone(decl),
                            item: item.cloned(),
                            needs,
                            deps,
                            inputs: inputs.clone(),
                            hashable,
                        });
                        by_key.insert(key, nodes.len() - 1);
                        nodes.len() - 1
                    }
                };
                mine.push((item.map(|i| i.id.clone()), idx));
            }
            placed[ai].insert(decl.name.as_str(), (decl.checked.fanout, mine));
        }
    }
    let arms_out = spec
        .arms
        .iter()
        .zip(&placed)
        .map(|(arm, pl)| {
            let stages = arm
                .stages
                .iter()
                .map(|s| (s.name.clone(), pl[s.name.as_str()].1.iter().map(|(_, i)| *i).collect()))
                .collect();
            (arm.name.clone(), stages)
        })
        .collect();
    let mut graph = petgraph::graph::DiGraph::new();
    let ids: Vec<_> = (0..nodes.len()).map(|i| graph.add_node(i)).collect();
    for (i, n) in nodes.iter().enumerate() {
        for &d in &n.deps {
            graph.add_edge(ids[d], ids[i], ());
        }
    }
    Ok(Dag { nodes, arms: arms_out, graph, slides })
}

/// A stage's plan-time check against one slide, as a spec error at the parameter (or at the
/// matrix list the value came from).
fn plan_check(
    spec: &Spec,
    arm: &crate::spec::Arm,
    decl: &StageDecl,
    item: &str,
    facts: &crate::stages::SlideFacts,
) -> Result<()> {
    use crate::spec::locate::Seg;
    let Err(e) = decl.kind.plan_slide(&decl.checked.params, facts) else { return Ok(()) };
    let msg =
        format!("stage `{}` ({}), slide {}: {}", decl.name, decl.kind.name(), crate::util::display_id(item), e.msg);
    let first = match e.path.first() {
        Some(Seg::Key(k)) => format!("{}.{k}", decl.name),
        _ => String::new(),
    };
    let err = if arm.settings.iter().any(|(k, _)| *k == first) {
        spec.error_at(
            &[Seg::key("matrix"), Seg::Key(first)],
            format!("{msg} (value from the matrix, arm `{}`)", arm.name),
        )
    } else {
        let mut at = vec![Seg::key("stages"), Seg::key(&decl.name)];
        at.extend(e.path);
        spec.error_at(&at, msg)
    };
    Err(err.into())
}

/// Stage indices of an arm in dependency order (declaration order among independent ones).
fn topo_order(stages: &[Arc<StageDecl>]) -> Vec<usize> {
    let index: HashMap<&str, usize> = stages.iter().enumerate().map(|(i, s)| (s.name.as_str(), i)).collect();
    let mut done = vec![false; stages.len()];
    let mut order = Vec::with_capacity(stages.len());
    fn visit(
        i: usize,
        stages: &[Arc<StageDecl>],
        index: &HashMap<&str, usize>,
        done: &mut Vec<bool>,
        order: &mut Vec<usize>,
    ) {
        if done[i] {
            return;
        }
        done[i] = true;
        for n in &stages[i].needs {
            visit(index[n.as_str()], stages, index, done, order);
        }
        order.push(i);
    }
    for i in 0..stages.len() {
        visit(i, stages, &index, &mut done, &mut order);
    }
    order
}

impl Dag {
    /// Graphviz DOT of the nodes, labelled with stage, item, kind and short key; `state` gives
    /// each node's state word.
    pub fn to_dot(&self, state: &dyn Fn(usize) -> String) -> String {
        let mut s = String::from("digraph spatia {\n  rankdir=LR;\n  node [shape=box, fontname=\"monospace\"];\n");
        for (i, n) in self.nodes.iter().enumerate() {
            let item = n.item.as_ref().map(|it| format!(" [{}]", it.shown())).unwrap_or_default();
            let st = state(i);
            let color = match st.as_str() {
                "cached" => "palegreen",
                "stale" => "lightsalmon",
                _ => "lightgrey",
            };
            s.push_str(&format!(
                "  n{i} [label=\"{}{}\\n{} {}\\n{}\", style=filled, fillcolor={color}];\n",
                esc(&n.stage),
                esc(&item),
                n.decl.kind.name(),
                &n.key[..12],
                st
            ));
        }
        for e in self.graph.edge_indices() {
            if let Some((a, b)) = self.graph.edge_endpoints(e) {
                s.push_str(&format!("  n{} -> n{};\n", self.graph[a], self.graph[b]));
            }
        }
        s.push_str("}\n");
        s
    }
}

fn esc(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn direct_encoding_is_canonical_json() {
        let mut h = StageHashable {
            schema: 1,
            kind: "command".into(),
            kind_version: 3,
            seed: Some(7),
            upstream: [("b\"x".to_string(), vec!["k1".into(), "k0".into()]), ("a".into(), vec![])]
                .into_iter()
                .collect(),
            inputs: [("inputs[0]".to_string(), "d".to_string()), ("clinical".into(), "e".into())].into_iter().collect(),
            item: Some(("p1".into(), "dd".into())),
        };
        let params = serde_json::json!({"z": [1, 2.5], "a": {"y": null, "b": "ü"}});
        let pc = crate::util::canonical_json(&params);
        for _ in 0..2 {
            let mut v = serde_json::to_value(&h).unwrap();
            v["params"] = params.clone();
            assert_eq!(h.encode(&pc), crate::util::canonical_json(&v));
            h.seed = None;
            h.item = None;
        }
    }
}
