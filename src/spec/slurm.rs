//! A stage's `slurm:` mapping: the resources its Slurm jobs ask for (`partition`, `account`,
//! `qos`, `time`, `mem`, `cpus`, `gres`, `max_array_size`, `max_in_flight`), overriding
//! `[executor.slurm]` of spatia.toml (read by `exec::slurm::settings`, which shares this type).
//! Never in a key: where a node runs does not change what it computes. The local executor
//! ignores it.
use serde::{Deserialize, Serialize};

/// What one array task asks Slurm for; every field optional (Slurm's defaults apply).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Resources {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub qos: Option<String>,
    /// Wall-clock limit in a Slurm time format (`30`, `02:00:00`, `1-00:00:00`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<String>,
    /// Memory per task (`4000`, `8G`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mem: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpus: Option<u32>,
    /// Generic resources (`gpu:1`, `gpu:a100:2`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gres: Option<String>,
    /// Tasks per `sbatch --array` for this stage (≤ the global one and the cluster's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_array_size: Option<usize>,
    /// This stage's array tasks pending or running at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_in_flight: Option<usize>,
}

fn slurm_word(what: &str, v: &str, extra: &str) -> Result<(), String> {
    if v.is_empty()
        || v.len() > 200
        || !v.chars().all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c) || extra.contains(c))
    {
        return Err(format!(
            "`{what}` = {v:?}: expected a non-empty Slurm value of letters, digits, `_-.`{} (at most 200 characters)",
            if extra.is_empty() { String::new() } else { format!(" and `{extra}`") }
        ));
    }
    Ok(())
}

impl Resources {
    /// Checks every value (the same checks for spatia.toml and a spec's `slurm:`).
    pub fn check(&self) -> Result<(), String> {
        for (what, v, extra) in [
            ("partition", &self.partition, ","),
            ("account", &self.account, ""),
            ("qos", &self.qos, ""),
            ("gres", &self.gres, ":,"),
        ] {
            if let Some(v) = v {
                slurm_word(what, v, extra)?;
            }
        }
        if let Some(t) = &self.time {
            if t.is_empty() || t.len() > 20 || !t.chars().all(|c| c.is_ascii_digit() || c == ':' || c == '-') {
                return Err(format!("`time` = {t:?}: expected a Slurm time (`minutes`, `HH:MM:SS`, `D-HH:MM:SS`)"));
            }
        }
        if let Some(m) = &self.mem {
            let digits = m.trim_end_matches(['K', 'M', 'G', 'T']);
            let ok = !digits.is_empty()
                && digits.chars().all(|c| c.is_ascii_digit())
                && m.len() - digits.len() <= 1
                && m.len() <= 12;
            if !ok {
                return Err(format!(
                    "`mem` = {m:?}: expected a whole number with an optional unit K, M, G or T (`8G`)"
                ));
            }
        }
        if self.cpus == Some(0) {
            return Err("`cpus` = 0: expected at least 1".into());
        }
        if let Some(n) = self.max_array_size {
            if n == 0 || n > 4_000_000 {
                return Err(format!("`max_array_size` = {n}: expected 1 to 4000000"));
            }
        }
        if self.max_in_flight == Some(0) {
            return Err("`max_in_flight` = 0: expected at least 1".into());
        }
        Ok(())
    }

    /// A spec's per-stage `slurm:` mapping, checked.
    pub fn from_json(v: &serde_json::Value) -> Result<Resources, String> {
        let r: Resources = serde_json::from_value(v.clone()).map_err(|e| {
            format!(
                "`slurm`: {e}; expected a mapping of partition, account, qos, time, mem, cpus, gres, \
                 max_array_size, max_in_flight"
            )
        })?;
        r.check()?;
        Ok(r)
    }

    /// `over`'s values where it has one, else these.
    pub fn overridden(&self, over: Option<&Resources>) -> Resources {
        let Some(o) = over else { return self.clone() };
        Resources {
            partition: o.partition.clone().or_else(|| self.partition.clone()),
            account: o.account.clone().or_else(|| self.account.clone()),
            qos: o.qos.clone().or_else(|| self.qos.clone()),
            time: o.time.clone().or_else(|| self.time.clone()),
            mem: o.mem.clone().or_else(|| self.mem.clone()),
            cpus: o.cpus.or(self.cpus),
            gres: o.gres.clone().or_else(|| self.gres.clone()),
            max_array_size: o.max_array_size.or(self.max_array_size),
            max_in_flight: o.max_in_flight.or(self.max_in_flight),
        }
    }

    /// The `sbatch` arguments asking for these resources.
    pub fn sbatch_args(&self) -> Vec<String> {
        let mut a = Vec::new();
        let mut push = |flag: &str, v: &Option<String>| {
            if let Some(v) = v {
                a.push(format!("--{flag}={v}"));
            }
        };
        push("partition", &self.partition);
        push("account", &self.account);
        push("qos", &self.qos);
        push("time", &self.time);
        push("mem", &self.mem);
        push("gres", &self.gres);
        if let Some(c) = self.cpus {
            a.push(format!("--cpus-per-task={c}"));
        }
        a
    }
}
