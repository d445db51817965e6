//! The catalogue of bad inputs (`tests/bad_inputs/<area>-<name>/`, format in its README): each
//! case runs the release binary in a fresh copy of its project and must exit with the expected
//! code, print every expected substring on stderr, and never panic or abort. Every failing case
//! is reported, by name, in one assertion.
mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Files of a case that are not part of its project.
const META: &[&str] = &["args", "expect", "fixture", "setup"];
/// Longest a case may run before it counts as hung.
const LIMIT: Duration = Duration::from_secs(120);

fn catalogue() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/bad_inputs"))
}

/// The demo cohort of `fixture: demo` cases, generated once per test process.
fn demo_fixture() -> Result<&'static Path, String> {
    static DEMO: OnceLock<Result<(tempfile::TempDir, PathBuf), String>> = OnceLock::new();
    let r = DEMO.get_or_init(|| {
        let d = tempfile::tempdir().map_err(|e| e.to_string())?;
        let out = d.path().join("demo-data");
        let o = Command::new(common::bin())
            .args([
                "demo",
                "generate",
                "--patients",
                "4",
                "--size",
                "1200",
                "--stains",
                "HE,KI67",
                "--seed",
                "2",
                "--out",
            ])
            .arg(&out)
            .output()
            .map_err(|e| e.to_string())?;
        if !o.status.success() {
            return Err(format!("demo generate failed: {}", common::text(&o)));
        }
        Ok((d, out))
    });
    r.as_ref().map(|(_, p)| p.as_path()).map_err(Clone::clone)
}

fn copy_tree(from: &Path, to: &Path, skip_meta: bool) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for e in std::fs::read_dir(from)? {
        let e = e?;
        let name = e.file_name();
        if skip_meta && META.iter().any(|m| name == *m) {
            continue;
        }
        let ty = e.file_type()?;
        if ty.is_dir() {
            copy_tree(&e.path(), &to.join(&name), false)?;
        } else if ty.is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(e.path())?, to.join(&name))?;
        } else {
            std::fs::copy(e.path(), to.join(&name))?;
        }
    }
    Ok(())
}

/// Runs one case; returns what went wrong, if anything.
fn run_case(case: &Path) -> Result<(), String> {
    let read = |f: &str| std::fs::read_to_string(case.join(f)).map_err(|e| format!("cannot read `{f}`: {e}"));
    let args_line = read("args")?;
    let expect = read("expect")?;
    let mut lines = expect.lines();
    let code: i32 =
        lines.next().and_then(|l| l.trim().parse().ok()).ok_or("`expect`: line 1 must be the expected exit code")?;
    let wanted: Vec<&str> = lines.map(str::trim_end).filter(|l| !l.trim().is_empty()).collect();

    let base = tempfile::tempdir().map_err(|e| e.to_string())?;
    let project = base.path().join("project");
    let outside = base.path().join("outside");
    std::fs::create_dir_all(&outside).map_err(|e| e.to_string())?;
    copy_tree(case, &project, true).map_err(|e| format!("cannot copy the case: {e}"))?;
    if !project.join("spatia.toml").exists() {
        std::fs::write(project.join("spatia.toml"), "").map_err(|e| e.to_string())?;
    }
    if case.join("fixture").exists() {
        match read("fixture")?.trim() {
            "demo" => copy_tree(demo_fixture()?, &project.join("demo-data"), false)
                .map_err(|e| format!("cannot copy the demo fixture: {e}"))?,
            other => return Err(format!("`fixture`: unknown fixture `{other}`; expected `demo`")),
        }
    }
    if case.join("setup").exists() {
        let o = Command::new("bash")
            .arg(case.join("setup"))
            .current_dir(&project)
            .env("OUTSIDE", &outside)
            .output()
            .map_err(|e| format!("cannot run setup: {e}"))?;
        if !o.status.success() {
            return Err(format!("setup failed: {}", common::text(&o)));
        }
    }
    let outside_s = outside.display().to_string();
    let args: Vec<String> = args_line.split_whitespace().map(|a| a.replace("$OUTSIDE", &outside_s)).collect();
    if args.is_empty() {
        return Err("`args` is empty".into());
    }
    let mut child = Command::new(common::bin())
        .args(&args)
        .current_dir(&project)
        .env("OUTSIDE", &outside)
        .env_remove("SPATIA_CACHE")
        .env_remove("SPATIA_TIMINGS")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start spatia: {e}"))?;
    // drain both pipes while waiting, so a chatty case cannot block on a full pipe
    let mut so = child.stdout.take().ok_or("no stdout")?;
    let mut se = child.stderr.take().ok_or("no stderr")?;
    let t_out = std::thread::spawn(move || {
        let mut b = Vec::new();
        let _ = std::io::Read::read_to_end(&mut so, &mut b);
        b
    });
    let t_err = std::thread::spawn(move || {
        let mut b = Vec::new();
        let _ = std::io::Read::read_to_end(&mut se, &mut b);
        b
    });
    let start = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break s,
            Ok(None) if start.elapsed() > LIMIT => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("still running after {}s: killed", LIMIT.as_secs()));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            Err(e) => return Err(format!("cannot wait for spatia: {e}")),
        }
    };
    let stdout = String::from_utf8_lossy(&t_out.join().unwrap_or_default()).to_string();
    let stderr = String::from_utf8_lossy(&t_err.join().unwrap_or_default()).to_string();
    let mut problems = Vec::new();
    let got = status.code();
    if got.is_none() {
        use std::os::unix::process::ExitStatusExt;
        problems.push(format!("killed by signal {:?}", status.signal()));
    }
    if matches!(got, Some(101) | Some(134)) || stderr.contains("panicked") || stdout.contains("panicked") {
        problems.push("panicked or aborted".to_string());
    }
    if got != Some(code) {
        problems.push(format!("exit code {got:?}, expected {code}"));
    }
    for w in &wanted {
        if !stderr.contains(w) {
            problems.push(format!("stderr lacks `{w}`"));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        let tail: String = stderr.chars().rev().take(1500).collect::<Vec<_>>().into_iter().rev().collect();
        Err(format!(
            "{}\n    args: {}\n    stderr: {}",
            problems.join("; "),
            args.join(" "),
            tail.trim_end().replace('\n', "\n            ")
        ))
    }
}

#[test]
fn every_bad_input_is_refused_with_its_error() {
    let mut cases: Vec<PathBuf> = std::fs::read_dir(catalogue())
        .expect("tests/bad_inputs")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    cases.sort();
    assert!(!cases.is_empty(), "no cases under tests/bad_inputs");
    // a few at a time: most cases take milliseconds, those with a fixture a second or two
    let workers = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2).clamp(2, 4);
    let next = std::sync::atomic::AtomicUsize::new(0);
    let failures = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let Some(case) = cases.get(i) else { break };
                if let Err(e) = run_case(case) {
                    let name = case.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
                    failures.lock().unwrap_or_else(|p| p.into_inner()).push(format!("{name}: {e}"));
                }
            });
        }
    });
    let mut failures = failures.into_inner().unwrap_or_else(|p| p.into_inner());
    failures.sort();
    assert!(
        failures.is_empty(),
        "{} of {} bad-input cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}
