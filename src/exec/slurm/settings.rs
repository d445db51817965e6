//! The Slurm executor's settings: `[executor.slurm]` in `<root>/spatia.toml`, and per stage a
//! `slurm:` mapping in the spec that overrides the resources for that stage's jobs.
//!
//! ```toml
//! [executor.slurm]
//! partition = "cpu"          # sbatch --partition
//! account = "pathology"      # --account
//! qos = "normal"             # --qos
//! time = "02:00:00"          # --time (per array task)
//! mem = "8G"                 # --mem (per array task)
//! cpus = 4                   # --cpus-per-task
//! gres = "gpu:1"             # --gres
//! max_array_size = 1000      # tasks per sbatch --array (also capped by the cluster's MaxArraySize)
//! max_in_flight = 2000       # array tasks pending or running at once (MaxSubmitJobs)
//! resubmit = 2               # resubmissions of a node whose job ended NODE_FAIL/PREEMPTED/BOOT_FAIL
//! poll = 5.0                 # seconds between the head's squeue calls
//! outcome_grace = 30.0       # seconds a job may be gone before its outcome file must be visible
//! wave_wait = 10.0           # seconds ready nodes wait for the rest of their wave (one array, not many)
//! spatia = "/shared/bin/spatia"   # the binary the compute nodes run (default: this one)
//! sbatch_args = ["--constraint=avx2"]
//! ```
//!
//! Nothing here is in any key: where a node runs never changes what it computes. Settings
//! never run a shell: every value is passed to `sbatch` as one argument.
use serde::Deserialize;
use std::path::Path;

pub use crate::spec::slurm::Resources;

/// `[executor.slurm]`: the defaults of every stage plus the head's own settings.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// (the resource keys of the table; parsed apart from the head's keys)
    #[serde(skip)]
    pub resources: Resources,
    #[serde(default)]
    pub resubmit: Option<u32>,
    #[serde(default)]
    pub poll: Option<f64>,
    #[serde(default)]
    pub outcome_grace: Option<f64>,
    #[serde(default)]
    pub wave_wait: Option<f64>,
    #[serde(default)]
    pub spatia: Option<String>,
    #[serde(default)]
    pub sbatch_args: Vec<String>,
}

/// The defaults where `spatia.toml` says nothing.
pub const DEFAULT_MAX_ARRAY_SIZE: usize = 1000;
pub const DEFAULT_MAX_IN_FLIGHT: usize = 1000;
pub const DEFAULT_RESUBMIT: u32 = 2;
pub const DEFAULT_POLL_S: f64 = 2.0;
pub const DEFAULT_OUTCOME_GRACE_S: f64 = 30.0;
pub const DEFAULT_WAVE_WAIT_S: f64 = 10.0;

impl Settings {
    /// Reads `[executor.slurm]` of `<root>/spatia.toml` (defaults where the file or the table
    /// is missing); errors name the file and the key.
    pub fn load(root: &Path) -> anyhow::Result<Settings> {
        let file = root.join(crate::spec::roots::CONFIG);
        let text = match std::fs::read_to_string(&file) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Settings::default()),
            Err(e) => anyhow::bail!("cannot read {}: {e}", file.display()),
        };
        Settings::parse(&text).map_err(|e| anyhow::anyhow!("{}: [executor.slurm]: {e}", file.display()))
    }

    /// Parses the text of a `spatia.toml`.
    pub fn parse(text: &str) -> Result<Settings, String> {
        let doc: toml::Table = toml::from_str(text).map_err(|e| format!("not valid TOML: {}", e.message()))?;
        let Some(exec) = doc.get("executor") else { return Ok(Settings::default()) };
        let toml::Value::Table(exec) = exec else { return Err("`executor` must be a table".into()) };
        let Some(slurm) = exec.get("slurm") else { return Ok(Settings::default()) };
        let toml::Value::Table(slurm) = slurm else { return Err("`executor.slurm` must be a table".into()) };
        const HEAD: &[&str] = &["resubmit", "poll", "outcome_grace", "wave_wait", "spatia", "sbatch_args"];
        let (head, res): (toml::Table, toml::Table) =
            slurm.clone().into_iter().partition(|(k, _)| HEAD.contains(&k.as_str()));
        let mut s: Settings =
            toml::Value::Table(head).try_into().map_err(|e: toml::de::Error| e.message().to_string())?;
        s.resources = toml::Value::Table(res).try_into().map_err(|e: toml::de::Error| {
            format!(
                "{}; expected partition, account, qos, time, mem, cpus, gres, max_array_size, max_in_flight, {}",
                e.message(),
                HEAD.join(", ")
            )
        })?;
        s.resources.check()?;
        if let Some(p) = s.poll {
            if !(0.05..=600.0).contains(&p) {
                return Err(format!("`poll` = {p}: expected 0.05 to 600 seconds"));
            }
        }
        for (what, v) in [("outcome_grace", s.outcome_grace), ("wave_wait", s.wave_wait)] {
            if let Some(g) = v {
                if !(0.0..=3600.0).contains(&g) {
                    return Err(format!("`{what}` = {g}: expected 0 to 3600 seconds"));
                }
            }
        }
        if let Some(r) = s.resubmit {
            if r > 100 {
                return Err(format!("`resubmit` = {r}: expected 0 to 100"));
            }
        }
        if let Some(b) = &s.spatia {
            if b.is_empty() || !Path::new(b).is_absolute() {
                return Err(format!(
                    "`spatia` = {b:?}: expected an absolute path to the spatia binary on the compute nodes"
                ));
            }
        }
        for a in &s.sbatch_args {
            if !a.starts_with("--") || a.chars().any(char::is_control) {
                return Err(format!("`sbatch_args` entry {a:?}: expected a long option (`--name=value`)"));
            }
            for own in ["--array", "--job-name", "--output", "--error", "--wrap", "--parsable"] {
                if a == own || a.starts_with(&format!("{own}=")) {
                    return Err(format!("`sbatch_args` entry {a:?}: `{own}` is set by Spatia"));
                }
            }
        }
        Ok(s)
    }

    pub fn resubmit(&self) -> u32 {
        self.resubmit.unwrap_or(DEFAULT_RESUBMIT)
    }
    pub fn poll(&self) -> std::time::Duration {
        std::time::Duration::from_secs_f64(self.poll.unwrap_or(DEFAULT_POLL_S))
    }
    pub fn wave_wait(&self) -> std::time::Duration {
        std::time::Duration::from_secs_f64(self.wave_wait.unwrap_or(DEFAULT_WAVE_WAIT_S))
    }
    pub fn outcome_grace(&self) -> std::time::Duration {
        std::time::Duration::from_secs_f64(self.outcome_grace.unwrap_or(DEFAULT_OUTCOME_GRACE_S))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_overrides() {
        let s = Settings::parse(
            "data_roots = []\n[executor.slurm]\npartition = \"cpu\"\nmem = \"8G\"\ncpus = 2\n\
             max_array_size = 50\npoll = 0.5\n",
        )
        .unwrap();
        assert_eq!(s.resources.partition.as_deref(), Some("cpu"));
        let stage = Resources::from_json(&serde_json::json!({"partition": "gpu", "gres": "gpu:1"})).unwrap();
        let r = s.resources.overridden(Some(&stage));
        assert_eq!(r.partition.as_deref(), Some("gpu"));
        assert_eq!(r.mem.as_deref(), Some("8G"));
        assert_eq!(r.max_array_size, Some(50));
        assert_eq!(r.sbatch_args(), vec!["--partition=gpu", "--mem=8G", "--gres=gpu:1", "--cpus-per-task=2"]);
        assert_eq!(Settings::parse("").unwrap().resubmit(), DEFAULT_RESUBMIT);
    }

    #[test]
    fn refuses_bad_values_naming_the_key() {
        for (toml, want) in [
            ("[executor.slurm]\nmem = \"8 GB\"\n", "`mem`"),
            ("[executor.slurm]\npartition = \"a;rm -rf\"\n", "`partition`"),
            ("[executor.slurm]\ncpus = 0\n", "`cpus`"),
            ("[executor.slurm]\nqueue = \"x\"\n", "queue"),
            ("[executor.slurm]\nsbatch_args = [\"--array=1-3\"]\n", "--array"),
            ("[executor.slurm]\nspatia = \"spatia\"\n", "`spatia`"),
            ("[executor.slurm]\ntime = \"2h\"\n", "`time`"),
        ] {
            let e = Settings::parse(toml).unwrap_err();
            assert!(e.contains(want), "{toml}: {e}");
        }
        let e = Resources::from_json(&serde_json::json!({"gpus": 1})).unwrap_err();
        assert!(e.contains("gpus"), "{e}");
    }
}
