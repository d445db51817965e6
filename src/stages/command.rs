//! `command`: the escape hatch — runs a user's shell command as a stage.
//!
//! **Inputs:** the outputs of `needs` (as directories in the environment), optional `inputs`
//! files (hashed into the key). **Outputs:** whatever the command writes into its working
//! directory. **Key covers:** `cmd`, `inputs` (by content), `foreach`, `shell`.
//!
//! The command runs with its fresh output directory as working directory and this environment:
//! `SPATIA_OUT` (that directory), `SPATIA_NEEDS_<NAME>` (each needed stage's output directory;
//! for a fanned-out need read by a single stage, a directory of links, one per item, named by
//! the item's path component — a safe slug of the id plus a short digest, never the raw id —
//! with `SPATIA_NEEDS_<NAME>_ITEMS`, a file of `<id>\t<link>` lines, to find an item's link),
//! `SPATIA_ROOT` (project root), `SPATIA_SEED`, `SPATIA_INPUT_<i>` (input files) and, for a
//! shard, `SPATIA_ITEM` (patient or slide id) and `SPATIA_ITEM_<ATTR>` (`PATIENT_ID`; for a
//! slide also `PATH`, `REL_PATH`, `STAIN`, `DIGEST`, `MPP`). A non-zero exit fails the stage.
use super::{resolved, typed, CheckCx, Checked, Fanout, InputRef, ParamError, RunCx, StageKind, Typed};
use crate::docpath::Seg;
use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::process::Stdio;

/// The `command` kind.
pub struct Command;

/// Parameters of `command`.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CommandParams {
    /// Shell command line.
    pub cmd: String,
    /// Files the command reads (relative to the project root): their content is in the key.
    #[serde(default)]
    pub inputs: Vec<String>,
    /// Run once per `patient` or per `slide` of the cohort.
    #[serde(default)]
    pub foreach: Option<String>,
    /// The shell that runs `cmd`.
    #[serde(default = "default_shell")]
    pub shell: String,
}

fn default_shell() -> String {
    "bash".into()
}

impl StageKind for Command {
    fn name(&self) -> &'static str {
        crate::contracts::COMMAND
    }
    fn version(&self) -> u32 {
        // 2: gathered items are linked under their path component (not the raw id)
        2
    }
    fn about(&self) -> &'static str {
        "run a shell command in a fresh output directory"
    }
    fn check(&self, params: &Value, cx: &CheckCx) -> Result<Checked, ParamError> {
        let p: CommandParams = typed(params)?;
        if p.cmd.trim().is_empty() {
            return Err(ParamError::at(vec![Seg::key("cmd")], "`cmd` is empty; expected a shell command"));
        }
        let fanout = match p.foreach.as_deref() {
            None => Fanout::Single,
            Some("patient") => Fanout::PerPatient,
            Some("slide") => Fanout::PerSlide,
            Some(o) => {
                return Err(ParamError::at(
                    vec![Seg::key("foreach")],
                    format!("`foreach` must be `patient` or `slide`, found `{o}`"),
                ))
            }
        };
        if fanout == Fanout::PerPatient && cx.cohort.is_none() {
            return Err(ParamError::at(
                vec![Seg::key("foreach")],
                "`foreach: patient` needs a `cohort` block with a clinical table",
            ));
        }
        if fanout == Fanout::PerSlide && cx.cohort.and_then(|c| c.slides.as_ref()).is_none() {
            return Err(ParamError::at(
                vec![Seg::key("foreach")],
                "`foreach: slide` needs `cohort.slides` (a slide manifest)",
            ));
        }
        let inputs = p
            .inputs
            .iter()
            .enumerate()
            .map(|(i, path)| InputRef {
                role: format!("inputs[{i}]"),
                path: path.clone(),
                at: vec![Seg::key("inputs"), Seg::Index(i)],
                absolute: false,
            })
            .collect();
        Ok(Checked { params: resolved(&p), typed: Typed::none(), inputs, fanout, uses_seed: false, stains: None }
            .with_typed(p))
    }

    fn run(&self, cx: &RunCx) -> anyhow::Result<()> {
        let p = cx.typed::<CommandParams>()?;
        let log = cx.log.lock().map_err(|_| anyhow::anyhow!("log lock poisoned"))?.try_clone()?;
        let mut c = std::process::Command::new(&p.shell);
        c.arg("-c").arg(&p.cmd).current_dir(cx.out).stdin(Stdio::null());
        c.stdout(log.try_clone()?).stderr(log);
        c.env("SPATIA_OUT", cx.out).env("SPATIA_ROOT", cx.root).env("SPATIA_SEED", cx.seed.to_string());
        if let Some(item) = cx.item {
            c.env("SPATIA_ITEM", &item.id);
            // per-item facts: SPATIA_ITEM_PATIENT_ID, and for slides SPATIA_ITEM_PATH (absolute),
            // SPATIA_ITEM_STAIN, SPATIA_ITEM_REL_PATH, SPATIA_ITEM_DIGEST, SPATIA_ITEM_MPP
            for (k, v) in item.facts() {
                c.env(format!("SPATIA_ITEM_{}", crate::util::env_name(k)), v);
            }
        }
        for (i, inp) in cx.inputs.iter().enumerate() {
            c.env(format!("SPATIA_INPUT_{i}"), &inp.path);
        }
        for need in cx.needs {
            let var = format!("SPATIA_NEEDS_{}", crate::util::env_name(&need.name));
            let dir = if need.dirs.len() == 1 && (need.dirs[0].0.is_none() || cx.item.is_some()) {
                need.dirs[0].1.clone()
            } else {
                // a gather: one link per item, named by the item's path component (never the
                // raw id), and an index `<id>\t<link>` in SPATIA_NEEDS_<NAME>_ITEMS
                let base = cx.scratch.join("needs");
                let comp = crate::util::id_path_component(&need.name);
                let d = base.join(&comp);
                std::fs::create_dir_all(&d).with_context(|| format!("cannot create {}", d.display()))?;
                let mut index = String::new();
                for (item, dir) in &need.dirs {
                    let name = item.as_deref().map(crate::util::id_path_component).unwrap_or_else(|| "_".into());
                    let link = d.join(&name);
                    std::os::unix::fs::symlink(dir, &link).with_context(|| {
                        format!(
                            "linking {} for item {} at {}",
                            need.name,
                            crate::util::display_id(item.as_deref().unwrap_or("_")),
                            link.display()
                        )
                    })?;
                    index.push_str(&format!("{}\t{}\n", item.as_deref().unwrap_or(""), link.display()));
                }
                let idx = base.join(format!("{comp}.items.tsv"));
                crate::util::write_file(&idx, index).with_context(|| format!("cannot write {}", idx.display()))?;
                c.env(format!("{var}_ITEMS"), &idx);
                d
            };
            c.env(var, dir);
        }
        // its own process group, so an interrupted run can stop the whole command (and the
        // terminal's Ctrl-C reaches only spatia, which then does that)
        std::os::unix::process::CommandExt::process_group(&mut c, 0);
        let mut child = c.spawn().with_context(|| format!("cannot start `{}`", p.shell))?;
        // an interrupted run stops it (see exec::interrupt)
        let _tracked = crate::interrupt::track_child(child.id());
        let status = child.wait().with_context(|| format!("waiting for `{}`", p.shell))?;
        if !status.success() {
            match status.code() {
                Some(code) => bail!("command exited with status {code}: {}", p.cmd),
                None => bail!("command was killed by a signal: {}", p.cmd),
            }
        }
        Ok(())
    }
}
