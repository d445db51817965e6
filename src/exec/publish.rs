//! Publishing: copies of cache entries where a stage's `publish:` says, made so that they never
//! destroy anything Spatia did not create.
//!
//! A publish is a directory holding a copy of one entry's outputs plus a marker,
//! [`MARKER`] (the key, every file with its blake3, a combined digest, the tool version). It is
//! built in a staging directory beside the target (same parent, hidden name with host and pid)
//! and moved into place atomically: a rename when the target does not exist, else, when the
//! target is Spatia's, `renameat2(RENAME_EXCHANGE)` and removal of the old copy (rename aside
//! and rename where the filesystem cannot exchange). A target that exists and is not Spatia's
//! — no marker (an earlier version's `.spatia-key` stamp counts as one), a file, a symbolic
//! link, or files its marker does not list — is refused with an error naming it. A target
//! with this key whose files no longer match the marker (a partial or damaged copy) is
//! published again. A per-item stage publishes each item into `<publish>/<id component>`
//! ([`crate::util::id_path_component`], never the raw id), `<publish>` being a directory Spatia
//! made for the purpose (an `items` marker). When two runs publish one target at once the last
//! exchange wins and the other says so on stderr; neither fails.
//!
//! The spec-time rules on where a stage may publish live in [`crate::spec::paths`]; here they
//! are repeated with what only a run knows: the cache actually in use (`--cache`,
//! `SPATIA_CACHE`) and the slide files of the manifest.
use crate::cache::{hash::hash_file, Cache, OutputFile};
use crate::dag::Dag;
use crate::spec::paths::{relation, resolve, shown};
use crate::spec::Spec;
use anyhow::{anyhow, bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

/// The marker file of a publish directory.
pub const MARKER: &str = ".spatia-publish.json";
/// The stamp earlier versions wrote (the key only); a directory holding one is Spatia's.
pub const LEGACY_STAMP: &str = ".spatia-key";
const FORMAT: &str = "spatia-publish/1";
/// Names of staging directories (and of old copies being removed) contain this.
const TMP_TAG: &str = ".spatia-tmp-";

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// What a publish directory holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum What {
    /// A copy of one cache entry's outputs.
    Entry,
    /// One subdirectory per item of a per-item stage (each an `Entry`).
    Items,
}

/// `.spatia-publish.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Marker {
    /// Always `spatia-publish/1`.
    pub format: String,
    pub what: What,
    pub stage: String,
    /// The item (shown safely), for a per-item stage's entry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub item: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// blake3 over the sorted (path, blake3) of `files`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    /// Every published file (the marker excepted), sorted by path.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<OutputFile>,
    pub tool: String,
    pub published: String,
    /// `pid@host` of the publishing run.
    pub by: String,
    /// The staging directory this copy was made in (unique: tells two copies apart).
    #[serde(default)]
    pub copy: String,
}

impl Marker {
    fn new(what: What, stage: &str, item: Option<&str>, key: Option<&str>) -> Marker {
        Marker {
            format: FORMAT.into(),
            what,
            stage: stage.to_string(),
            item: item.map(crate::util::display_id),
            key: key.map(str::to_string),
            digest: None,
            files: Vec::new(),
            tool: crate::provenance::tool_version(),
            published: crate::util::now_rfc3339(),
            by: format!("{}@{}", std::process::id(), crate::util::hostname()),
            copy: String::new(),
        }
    }
}

/// What is at a publish path.
#[derive(Debug)]
enum State {
    Missing,
    /// An empty directory: replacing it loses nothing.
    Empty,
    /// A Spatia publish.
    Marked(Box<Marker>),
    /// A directory with an earlier version's `.spatia-key` stamp.
    Legacy,
    /// A non-empty directory with no marker.
    Unmarked,
    /// Not a directory: says what it is.
    NotDir(&'static str),
    /// A marker Spatia cannot read as its own.
    BadMarker(String),
}

fn inspect(p: &Path) -> Result<State> {
    let md = match std::fs::symlink_metadata(p) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(State::Missing),
        Err(e) => return Err(anyhow::Error::new(e).context(format!("cannot inspect {}", p.display()))),
    };
    if md.file_type().is_symlink() {
        return Ok(State::NotDir("is a symbolic link"));
    }
    if !md.is_dir() {
        return Ok(State::NotDir(if md.is_file() { "is a file" } else { "is not a directory" }));
    }
    let mp = p.join(MARKER);
    match std::fs::read_to_string(&mp) {
        Ok(text) => {
            return Ok(match serde_json::from_str::<Marker>(&text) {
                Ok(m) if m.format == FORMAT => State::Marked(Box::new(m)),
                Ok(m) => State::BadMarker(format!("{} has format `{}`, expected `{FORMAT}`", mp.display(), m.format)),
                Err(e) => State::BadMarker(format!("{} is not a Spatia publish marker ({e})", mp.display())),
            })
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(anyhow::Error::new(e).context(format!("cannot read {}", mp.display()))),
    }
    if std::fs::symlink_metadata(p.join(LEGACY_STAMP)).map(|m| m.is_file()).unwrap_or(false) {
        return Ok(State::Legacy);
    }
    let mut rd = std::fs::read_dir(p).with_context(|| format!("cannot list {}", p.display()))?;
    Ok(if rd.next().is_none() { State::Empty } else { State::Unmarked })
}

/// A file found under a publish directory.
struct Found {
    rel: String,
    path: PathBuf,
    size: u64,
    link: Option<String>,
}

/// Every file under `dir` (recursively, symlinks not followed), the top-level marker and
/// legacy stamp excepted, sorted by path.
fn files(dir: &Path) -> Result<Vec<Found>> {
    fn walk(base: &Path, dir: &Path, out: &mut Vec<Found>) -> Result<()> {
        let rd = std::fs::read_dir(dir).with_context(|| format!("cannot list {}", dir.display()))?;
        for e in rd {
            let e = e.with_context(|| format!("cannot list {}", dir.display()))?;
            let p = e.path();
            if dir == base && (e.file_name() == MARKER || e.file_name() == LEGACY_STAMP) {
                continue;
            }
            let ft = e.file_type().with_context(|| format!("cannot inspect {}", p.display()))?;
            let rel = p.strip_prefix(base).unwrap_or(&p).to_string_lossy().to_string();
            if ft.is_dir() {
                walk(base, &p, out)?;
            } else if ft.is_symlink() {
                let t = std::fs::read_link(&p).with_context(|| format!("cannot read link {}", p.display()))?;
                out.push(Found { rel, path: p, size: 0, link: Some(t.to_string_lossy().to_string()) });
            } else {
                let size = e.metadata().with_context(|| format!("cannot inspect {}", p.display()))?.len();
                out.push(Found { rel, path: p, size, link: None });
            }
        }
        Ok(())
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out)?;
    out.sort_by(|a, b| a.rel.cmp(&b.rel));
    Ok(out)
}

fn digest(f: &Found) -> Result<String> {
    Ok(match &f.link {
        Some(t) => blake3::hash(format!("symlink:{t}").as_bytes()).to_hex().to_string(),
        None => hash_file(&f.path).with_context(|| format!("cannot read {}", f.path.display()))?,
    })
}

/// blake3 over the (path, blake3) pairs, in order.
fn combined(files: &[OutputFile]) -> String {
    let mut h = blake3::Hasher::new();
    for f in files {
        h.update(f.path.as_bytes());
        h.update(&[0]);
        h.update(f.blake3.as_bytes());
        h.update(&[0]);
    }
    h.finalize().to_hex().to_string()
}

/// How a marked entry's files compare with its marker.
#[derive(Debug, PartialEq)]
enum Content {
    Complete,
    /// Listed files missing or changed: the first one, described.
    Damaged(String),
    /// Files the marker does not list (someone else's): their paths.
    Foreign(Vec<String>),
}

/// The files under a marked entry that its marker does not list (no file is read).
fn unlisted(found: &[Found], m: &Marker) -> Vec<String> {
    let listed: HashSet<&str> = m.files.iter().map(|f| f.path.as_str()).collect();
    found.iter().filter(|f| !listed.contains(f.rel.as_str())).map(|f| f.rel.clone()).collect()
}

fn check_content(dir: &Path, m: &Marker) -> Result<Content> {
    let found = files(dir)?;
    let foreign = unlisted(&found, m);
    if !foreign.is_empty() {
        return Ok(Content::Foreign(foreign));
    }
    let by_rel: HashMap<&str, &Found> = found.iter().map(|f| (f.rel.as_str(), f)).collect();
    for want in &m.files {
        match by_rel.get(want.path.as_str()) {
            None => return Ok(Content::Damaged(format!("{} is missing", want.path))),
            Some(f) if f.size != want.size || digest(f)? != want.blake3 => {
                return Ok(Content::Damaged(format!("{} differs from what was published", want.path)))
            }
            Some(_) => {}
        }
    }
    if m.digest.as_deref() != Some(combined(&m.files).as_str()) {
        return Ok(Content::Damaged(format!("its {MARKER} digest does not match its file list")));
    }
    Ok(Content::Complete)
}

/// Checks a published entry against its marker (`spatia verify`): `Ok(None)` when every
/// listed file is there with its recorded size and blake3 and nothing unlisted is; else what
/// differs. A directory that is not a marked entry is `Ok(None)`.
pub fn check_published(dir: &Path) -> Result<Option<String>> {
    match inspect(dir)? {
        State::Marked(m) if m.what == What::Entry => Ok(match check_content(dir, &m)? {
            Content::Complete => None,
            Content::Damaged(w) => Some(w),
            Content::Foreign(f) => Some(format!("holds files its {MARKER} does not list: {}", f.join(", "))),
        }),
        _ => Ok(None),
    }
}

/// Every published entry under `root` (directories holding a [`MARKER`] of an entry), skipping
/// `skip` (the cache) and hidden directories; at most `depth` levels down.
pub fn find_published(root: &Path, skip: &Path, depth: usize) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![(root.to_path_buf(), 0usize)];
    while let Some((d, k)) = stack.pop() {
        if d.join(MARKER).is_file() {
            out.push(d.clone());
        }
        if k >= depth {
            continue;
        }
        let Ok(rd) = std::fs::read_dir(&d) else { continue };
        for e in rd.flatten() {
            let p = e.path();
            let hidden = e.file_name().to_string_lossy().starts_with('.');
            if !hidden && p != skip && e.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push((p, k + 1));
            }
        }
    }
    out.sort();
    out
}

/// Whether replacing `p` loses nothing Spatia did not create: `Ok(Err(why))` says what in it
/// is not Spatia's (`it …`, paths relative to `p`).
fn owned(p: &Path) -> Result<std::result::Result<(), String>> {
    owned_under(p, p)
}

fn owned_under(top: &Path, p: &Path) -> Result<std::result::Result<(), String>> {
    let rel = || crate::util::display_id(&p.strip_prefix(top).unwrap_or(p).to_string_lossy());
    let list = |f: &[String]| {
        let mut s =
            f.iter().take(3).map(|x| format!("`{}`", crate::util::display_id(x))).collect::<Vec<_>>().join(", ");
        if f.len() > 3 {
            s.push_str(&format!(" and {} more", f.len() - 3));
        }
        s
    };
    match inspect(p)? {
        State::Missing | State::Empty | State::Legacy => Ok(Ok(())),
        State::NotDir(what) if p == top => Ok(Err(format!("it {what}"))),
        State::NotDir(_) => Ok(Err(format!("it holds `{}`, which no {MARKER} marker covers", rel()))),
        State::BadMarker(why) => Ok(Err(why)),
        State::Marked(m) if m.what == What::Entry => match unlisted(&files(p)?, &m) {
            f if f.is_empty() => Ok(Ok(())),
            f if p == top => Ok(Err(format!("it holds files its {MARKER} does not list: {}", list(&f)))),
            f => Ok(Err(format!("its `{}` holds files its {MARKER} does not list: {}", rel(), list(&f)))),
        },
        State::Marked(_) | State::Unmarked => {
            // an items directory, or an unmarked one: Spatia's if everything in it is
            let rd = std::fs::read_dir(p).with_context(|| format!("cannot list {}", p.display()))?;
            for e in rd {
                let e = e.with_context(|| format!("cannot list {}", p.display()))?;
                let name = e.file_name();
                if name == MARKER || is_tmp_name(&name.to_string_lossy()) {
                    continue;
                }
                if let Err(why) = owned_under(top, &e.path())? {
                    return Ok(Err(why));
                }
            }
            Ok(Ok(()))
        }
    }
}

fn is_tmp_name(name: &str) -> bool {
    name.starts_with('.') && name.contains(TMP_TAG)
}

fn host_tag() -> String {
    blake3::hash(crate::util::hostname().as_bytes()).to_hex()[..8].to_string()
}

/// A fresh hidden name beside `target` for staging or for an old copy being removed.
fn tmp_path(target: &Path) -> PathBuf {
    let name: String = target.file_name().map(|n| n.to_string_lossy().chars().take(64).collect()).unwrap_or_default();
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let file = format!(".{name}{TMP_TAG}{}-{}-{n}", host_tag(), std::process::id());
    target.parent().map(|d| d.join(&file)).unwrap_or_else(|| PathBuf::from(file))
}

/// Removes staging directories left in `dir` by runs of this host that no longer exist
/// (killed while publishing).
fn clean_stale(dir: &Path) {
    let Ok(rd) = std::fs::read_dir(dir) else { return };
    let mine = format!("{TMP_TAG}{}-", host_tag());
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        let Some(i) = name.rfind(&mine).filter(|_| name.starts_with('.')) else { continue };
        let Some(pid) = name[i + mine.len()..].split('-').next().and_then(|s| s.parse::<i32>().ok()) else { continue };
        if pid > 0 && !alive(pid) {
            let p = e.path();
            let _ = if p.is_dir() { std::fs::remove_dir_all(&p) } else { std::fs::remove_file(&p) };
        }
    }
}

fn alive(pid: i32) -> bool {
    // SAFETY: kill with signal 0 sends nothing; it only checks that the process exists.
    let r = unsafe { libc::kill(pid, 0) };
    r == 0 || io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// Atomically swaps two directories. `Ok(false)`: the filesystem or OS cannot.
#[cfg(target_os = "linux")]
fn exchange(a: &Path, b: &Path) -> io::Result<bool> {
    use std::os::unix::ffi::OsStrExt;
    let ca =
        std::ffi::CString::new(a.as_os_str().as_bytes()).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    let cb =
        std::ffi::CString::new(b.as_os_str().as_bytes()).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    // SAFETY: two valid NUL-terminated paths; renameat2 only reads them.
    let r = unsafe {
        libc::syscall(
            libc::SYS_renameat2,
            libc::AT_FDCWD,
            ca.as_ptr(),
            libc::AT_FDCWD,
            cb.as_ptr(),
            libc::RENAME_EXCHANGE,
        )
    };
    if r == 0 {
        return Ok(true);
    }
    let e = io::Error::last_os_error();
    match e.raw_os_error() {
        Some(libc::EINVAL) | Some(libc::ENOSYS) | Some(libc::EOPNOTSUPP) => Ok(false),
        _ => Err(e),
    }
}

#[cfg(not(target_os = "linux"))]
fn exchange(_a: &Path, _b: &Path) -> io::Result<bool> {
    Ok(false)
}

/// A staging (or old-copy) directory, removed when dropped unless disarmed.
struct Tmp {
    path: PathBuf,
    armed: bool,
}

impl Drop for Tmp {
    fn drop(&mut self) {
        if self.armed {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

fn note(target: &Path, msg: &str) {
    eprintln!("spatia: publish {}: {msg}", target.display());
}

/// What happened to a stage's publishes that deserves a line on stderr.
#[derive(Default)]
struct Notes {
    targets: usize,
    repaired: Vec<(PathBuf, String)>,
    raced: Vec<PathBuf>,
}

impl Notes {
    fn say(&self, base: &Path, per_item: bool) {
        if let Some((t, what)) = self.repaired.first() {
            if per_item {
                note(
                    base,
                    &format!(
                        "{} of {} item copies were incomplete or changed (e.g. {what} in {}); published them again",
                        self.repaired.len(),
                        self.targets,
                        t.display()
                    ),
                );
            } else {
                note(t, &format!("the published copy was incomplete or changed ({what}); published it again"));
            }
        }
        if !self.raced.is_empty() {
            if per_item {
                note(
                    base,
                    &format!(
                        "another run published {} of {} items at the same time; the last copy published wins",
                        self.raced.len(),
                        self.targets
                    ),
                );
            } else {
                note(base, "another run published it at the same time; the last copy published wins");
            }
        }
    }
}

fn refused(target: &Path, stage: &str, why: &str) -> anyhow::Error {
    anyhow!(
        "publish directory {} of stage `{stage}` exists and is not a Spatia publish: {why}. Spatia never deletes or overwrites what it did not create: move it away, or set the stage's `publish:` to another directory",
        target.display()
    )
}

/// Copies `src` into a new directory `dst` (symbolic links as links); errors name both paths.
fn copy_tree(src: &Path, dst: &Path) -> Result<()> {
    std::fs::create_dir(dst).with_context(|| format!("cannot create {}", dst.display()))?;
    let rd = std::fs::read_dir(src).with_context(|| format!("cannot list {}", src.display()))?;
    for e in rd {
        let e = e.with_context(|| format!("cannot list {}", src.display()))?;
        let (from, to) = (e.path(), dst.join(e.file_name()));
        let ft = e.file_type().with_context(|| format!("cannot inspect {}", from.display()))?;
        if ft.is_dir() {
            copy_tree(&from, &to)?;
        } else if ft.is_symlink() {
            let t = std::fs::read_link(&from).with_context(|| format!("cannot read link {}", from.display()))?;
            std::os::unix::fs::symlink(&t, &to)
                .with_context(|| format!("cannot create link {} (copying {})", to.display(), from.display()))?;
        } else if ft.is_file() {
            std::fs::copy(&from, &to).with_context(|| format!("cannot copy {} to {}", from.display(), to.display()))?;
        } else {
            bail!("cannot publish {}: not a regular file, directory or link", from.display());
        }
    }
    Ok(())
}

fn write_marker(dir: &Path, m: &Marker) -> Result<()> {
    let p = dir.join(MARKER);
    let text = serde_json::to_string_pretty(m).context("cannot encode the publish marker")?;
    std::fs::write(&p, text + "\n").with_context(|| format!("cannot write {}", p.display()))
}

/// Copies `src` into a staging directory beside `target` and writes its marker there.
fn stage_entry(
    src: &Path,
    target: &Path,
    stage: &str,
    item: Option<&str>,
    key: &str,
    extra: &[(&str, Vec<u8>)],
) -> Result<Tmp> {
    let tmp = Tmp { path: tmp_path(target), armed: true };
    copy_tree(src, &tmp.path)?;
    for (name, bytes) in extra {
        let p = tmp.path.join(name);
        if std::fs::symlink_metadata(&p).is_ok() {
            bail!(
                "cannot publish {}: stage `{stage}` wrote a file named {name}, a name Spatia writes beside its outputs",
                src.display()
            );
        }
        std::fs::write(&p, bytes).with_context(|| format!("cannot write {}", p.display()))?;
    }
    for reserved in [MARKER, LEGACY_STAMP] {
        if std::fs::symlink_metadata(tmp.path.join(reserved)).is_ok() {
            bail!("cannot publish {}: stage `{stage}` wrote a file named {reserved}, a name Spatia reserves for its publish marker", src.display());
        }
    }
    let mut listed = Vec::new();
    for f in files(&tmp.path)? {
        let blake3 = digest(&f)?;
        listed.push(OutputFile { path: f.rel, blake3, size: f.size });
    }
    let mut m = Marker::new(What::Entry, stage, item, Some(key));
    m.copy = tmp.path.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
    m.digest = Some(combined(&listed));
    m.files = listed;
    write_marker(&tmp.path, &m)?;
    Ok(tmp)
}

fn is_taken(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EEXIST) | Some(libc::ENOTEMPTY))
}

/// Puts the directory `tmp` at `target` (which holds something Spatia may replace, or
/// nothing). Returns the marker text of what was replaced (`Ok(None)`: nothing was there), or
/// `Err(())` when the target changed under us and the caller should look again (also when it
/// was found missing, `was_missing`, and now exists).
fn put(
    tmp: &mut Tmp,
    target: &Path,
    stage: &str,
    was_missing: bool,
) -> Result<std::result::Result<Option<String>, ()>> {
    match std::fs::symlink_metadata(target) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return match std::fs::rename(&tmp.path, target) {
                Ok(()) => {
                    tmp.armed = false;
                    Ok(Ok(None))
                }
                Err(e) if is_taken(&e) || e.kind() == io::ErrorKind::NotFound => Ok(Err(())),
                Err(e) => Err(anyhow!("cannot move {} to {}: {e}", tmp.path.display(), target.display())),
            };
        }
        Err(e) => bail!("cannot inspect {}: {e}", target.display()),
        Ok(_) if was_missing => return Ok(Err(())),
        Ok(_) => {}
    }
    let swapped = match exchange(&tmp.path, target) {
        Ok(true) => true,
        Ok(false) => false,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Err(())),
        Err(e) => bail!("cannot exchange {} with {}: {e}", tmp.path.display(), target.display()),
    };
    if swapped {
        // the old copy is now at tmp.path: make sure it was Spatia's before removing it
        let old = std::fs::read_to_string(tmp.path.join(MARKER)).ok();
        if let Err(why) = owned(&tmp.path).unwrap_or_else(|e| Err(format!("{e:#}"))) {
            let back = exchange(&tmp.path, target);
            if !matches!(back, Ok(true)) {
                tmp.armed = false;
                bail!(
                    "publish directory {} of stage `{stage}` was replaced by something that is not a Spatia publish while publishing; it is kept at {} ({why})",
                    target.display(),
                    tmp.path.display()
                );
            }
            return Err(refused(target, stage, &why));
        }
        if let Err(e) = std::fs::remove_dir_all(&tmp.path) {
            note(target, &format!("published, but cannot remove the old copy {}: {e}", tmp.path.display()));
            tmp.armed = false;
        }
        return Ok(Ok(old));
    }
    put_aside(tmp, target, stage)
}

/// [`put`] where directories cannot be exchanged: moves the old copy aside, then the new one
/// in, then removes the old one (moving it back if the new one cannot go in).
fn put_aside(tmp: &mut Tmp, target: &Path, stage: &str) -> Result<std::result::Result<Option<String>, ()>> {
    let mut aside = Tmp { path: tmp_path(target), armed: false };
    match std::fs::rename(target, &aside.path) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Err(())),
        Err(e) => bail!("cannot move {} aside to {}: {e}", target.display(), aside.path.display()),
    }
    if let Err(why) = owned(&aside.path).unwrap_or_else(|e| Err(format!("{e:#}"))) {
        if std::fs::rename(&aside.path, target).is_err() {
            bail!(
                "publish directory {} of stage `{stage}` changed while publishing; it is kept at {} ({why})",
                target.display(),
                aside.path.display()
            );
        }
        return Err(refused(target, stage, &why));
    }
    let old = std::fs::read_to_string(aside.path.join(MARKER)).ok();
    match std::fs::rename(&tmp.path, target) {
        Ok(()) => {
            tmp.armed = false;
            aside.armed = true;
            Ok(Ok(old))
        }
        Err(e) => {
            let restored = std::fs::rename(&aside.path, target).is_ok();
            aside.armed = false;
            if is_taken(&e) {
                return Ok(Err(()));
            }
            bail!(
                "cannot move {} to {}: {e}{}",
                tmp.path.display(),
                target.display(),
                if restored { String::new() } else { format!(" (the previous copy is at {})", aside.path.display()) }
            )
        }
    }
}

/// What publishing one target did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The target already held this key, complete: nothing was written.
    Unchanged,
    Published,
    /// The target held this key but was incomplete or changed (what, described): published again.
    Repaired(String),
    /// Another run published the target at the same time; the last one published wins.
    Raced,
}

/// Whether an error comes from a file that vanished (the target was being replaced while it
/// was read).
fn vanished(e: &anyhow::Error) -> bool {
    e.chain().any(|c| c.downcast_ref::<io::Error>().is_some_and(|x| x.kind() == io::ErrorKind::NotFound))
}

/// The marker text at `dir` now (None: none).
fn marker_text(dir: &Path) -> Option<String> {
    std::fs::read_to_string(dir.join(MARKER)).ok()
}

/// What to do with a publish target, as found.
enum Verdict {
    /// It holds this key, complete.
    Complete,
    /// Nothing there (`missing`), or something Spatia may replace (`damaged`: this key, but
    /// incomplete or changed).
    Replace { missing: bool, damaged: Option<String> },
    /// Not Spatia's: why.
    Refuse(String),
}

/// Looks at a target: the verdict, and the marker text it was based on.
fn examine(target: &Path, key: &str) -> Result<(Verdict, Option<String>)> {
    let seen = marker_text(target);
    let state = inspect(target)?;
    let mut damaged = None;
    if let State::Marked(m) = &state {
        if m.what == What::Entry && m.key.as_deref() == Some(key) {
            match check_content(target, m)? {
                Content::Complete => return Ok((Verdict::Complete, seen)),
                Content::Damaged(what) => damaged = Some(what),
                Content::Foreign(_) => {}
            }
        }
    }
    if let Err(why) = owned(target)? {
        return Ok((Verdict::Refuse(why), seen));
    }
    Ok((Verdict::Replace { missing: matches!(state, State::Missing), damaged }, seen))
}

/// Publishes one entry's outputs `src` at `target`.
pub fn publish_entry(src: &Path, target: &Path, stage: &str, item: Option<&str>, key: &str) -> Result<Outcome> {
    publish_entry_with(src, target, stage, item, key, &[])
}

/// [`publish_entry`], with `extra` files (name, bytes) written beside the copy and listed in
/// the marker like the entry's own (the run-facts sidecar of a page).
pub fn publish_entry_with(
    src: &Path,
    target: &Path,
    stage: &str,
    item: Option<&str>,
    key: &str,
    extra: &[(&str, Vec<u8>)],
) -> Result<Outcome> {
    let parent =
        target.parent().ok_or_else(|| anyhow!("cannot publish to {}: it has no parent directory", target.display()))?;
    let mut staged: Option<Tmp> = None;
    for _ in 0..16 {
        let (verdict, seen) = match examine(target, key) {
            Ok(v) => v,
            Err(e) if vanished(&e) => continue,
            Err(e) => return Err(e),
        };
        // another run replaced the target while it was being read: look again
        if marker_text(target) != seen {
            continue;
        }
        let (missing, damaged) = match verdict {
            // staged already: another run put this very result there meanwhile
            Verdict::Complete => return Ok(if staged.is_some() { Outcome::Raced } else { Outcome::Unchanged }),
            Verdict::Refuse(why) => return Err(refused(target, stage, &why)),
            Verdict::Replace { missing, damaged } => (missing, damaged),
        };
        if staged.is_none() {
            std::fs::create_dir_all(parent).with_context(|| format!("cannot create {}", parent.display()))?;
            staged = Some(stage_entry(src, target, stage, item, key, extra)?);
        }
        let Some(tmp) = staged.as_mut() else { continue };
        match put(tmp, target, stage, missing)? {
            Err(()) => continue,
            Ok(old) => {
                return Ok(match damaged {
                    Some(what) => Outcome::Repaired(what),
                    None if old.is_some() && old != seen => Outcome::Raced,
                    None => Outcome::Published,
                })
            }
        }
    }
    bail!("cannot publish {}: it kept changing while being published (another process is writing it)", target.display())
}

/// Makes sure `dir` is a Spatia items directory (for a per-item stage's publishes).
pub fn ensure_items(dir: &Path, stage: &str) -> Result<()> {
    for _ in 0..16 {
        let state = match inspect(dir) {
            Ok(s) => s,
            Err(e) if vanished(&e) => continue,
            Err(e) => return Err(e),
        };
        if let State::Marked(m) = &state {
            if m.what == What::Items {
                return Ok(());
            }
        }
        let seen = marker_text(dir);
        match owned(dir) {
            Ok(Ok(())) => {}
            Err(e) if vanished(&e) => continue,
            Err(e) => return Err(e),
            Ok(Err(_)) if marker_text(dir) != seen => continue,
            Ok(Err(why)) => return Err(refused(dir, stage, &why)),
        }
        let marker = Marker::new(What::Items, stage, None, None);
        match state {
            State::Empty | State::Unmarked => {
                // an empty directory, or one of an earlier version's per-item publishes: adopt it
                let tmp = tmp_path(&dir.join(MARKER));
                let text = serde_json::to_string_pretty(&marker).context("cannot encode the publish marker")? + "\n";
                std::fs::write(&tmp, text).with_context(|| format!("cannot write {}", tmp.display()))?;
                std::fs::rename(&tmp, dir.join(MARKER))
                    .with_context(|| format!("cannot write {}", dir.join(MARKER).display()))?;
                return Ok(());
            }
            _ => {
                if let Some(parent) = dir.parent() {
                    std::fs::create_dir_all(parent).with_context(|| format!("cannot create {}", parent.display()))?;
                }
                let mut tmp = Tmp { path: tmp_path(dir), armed: true };
                std::fs::create_dir(&tmp.path).with_context(|| format!("cannot create {}", tmp.path.display()))?;
                write_marker(&tmp.path, &marker)?;
                match put(&mut tmp, dir, stage, matches!(state, State::Missing))? {
                    Ok(_) => return Ok(()),
                    Err(()) => continue,
                }
            }
        }
    }
    bail!("cannot publish {}: it kept changing while being published (another process is writing it)", dir.display())
}

/// What a run knows about where publishing must not go.
struct Guard<'a> {
    spec: &'a Spec,
    root: PathBuf,
    cache: PathBuf,
    cache_overridden: bool,
    slides: Vec<PathBuf>,
}

impl Guard<'_> {
    /// The resolved publish directory of a stage, checked.
    fn base(&self, stage: &str, rel: &str) -> Result<PathBuf> {
        let shown_rel = crate::util::display_id(rel);
        let r = resolve(&self.spec.root, Path::new(rel))
            .with_context(|| format!("cannot resolve publish directory `{shown_rel}` of stage `{stage}`"))?;
        if r == self.root || !r.starts_with(&self.root) {
            bail!(
                "publish directory `{shown_rel}` of stage `{stage}` resolves to {}, outside the project directory {}; expected a directory inside it",
                r.display(),
                self.root.display()
            );
        }
        if let Some(w) = relation(&r, &self.cache) {
            bail!(
                "publish directory `{shown_rel}` of stage `{stage}` {w} the cache directory {}{}; publishing there could replace cache entries. Publish into a directory of its own, e.g. `reports/{stage}`",
                self.cache.display(),
                if self.cache_overridden { " in use (set by --cache or SPATIA_CACHE)" } else { "" }
            );
        }
        if let Some(s) = self.slides.iter().find(|s| matches!(relation(&r, s), Some("is" | "contains"))) {
            bail!(
                "publish directory `{shown_rel}` of stage `{stage}` contains slide file {} of the manifest; publishing there could replace it. Publish into a directory of its own, e.g. `reports/{stage}`",
                shown(s, &self.root)
            );
        }
        Ok(r)
    }
}

/// Publishes every node marked in `done` whose stage has `publish:`. Every target is tried;
/// the error lists all that failed.
pub fn publish(spec: &Spec, dag: &Dag, cache: &Cache, done: &[bool]) -> Result<()> {
    let todo: Vec<usize> =
        (0..dag.nodes.len()).filter(|&i| done.get(i) == Some(&true) && dag.nodes[i].decl.publish.is_some()).collect();
    if todo.is_empty() {
        return Ok(());
    }
    let root = resolve(&spec.root, Path::new(""))
        .with_context(|| format!("cannot resolve the project root {}", spec.root.display()))?;
    let cwd = std::env::current_dir().unwrap_or_else(|_| spec.root.clone());
    let cache_dir = resolve(&cwd, &cache.root)
        .with_context(|| format!("cannot resolve the cache directory {}", cache.root.display()))?;
    let cache_overridden = cache_dir != resolve(&root, Path::new("cache")).unwrap_or_default();
    let slides = dag
        .slides
        .iter()
        .filter_map(|s| s.slide.as_ref().map(|s| &s.path))
        .filter_map(|p| std::fs::canonicalize(p).ok())
        .collect();
    let guard = Guard { spec, root, cache: cache_dir, cache_overridden, slides };

    let mut bases: HashMap<&str, Option<PathBuf>> = HashMap::new();
    let mut seen: HashMap<PathBuf, usize> = HashMap::new();
    let mut cleaned: HashSet<PathBuf> = HashSet::new();
    let mut errors: Vec<String> = Vec::new();
    let mut notes: Vec<(PathBuf, bool, Notes)> = Vec::new();
    for i in todo {
        let node = &dag.nodes[i];
        let Some(rel) = node.decl.publish.as_deref() else { continue };
        let base = bases.entry(node.stage.as_str()).or_insert_with(|| {
            let r = guard.base(&node.stage, rel).and_then(|b| {
                if node.item.is_some() {
                    ensure_items(&b, &node.stage)?;
                }
                Ok(b)
            });
            r.map_err(|e| errors.push(format!("{e:#}"))).ok()
        });
        let Some(base) = base.clone() else { continue };
        let at = match notes.iter().position(|(b, _, _)| *b == base) {
            Some(at) => at,
            None => {
                notes.push((base.clone(), node.item.is_some(), Notes::default()));
                notes.len() - 1
            }
        };
        let target = match &node.item {
            Some(it) => base.join(crate::util::id_path_component(&it.id)),
            None => base,
        };
        if let Some(&j) = seen.get(&target) {
            let other = &dag.nodes[j];
            if other.key != node.key {
                errors.push(format!(
                    "stage `{}` has different results in arms {} and {}, both to be published to {}; published the first. Publish a stage that is the same in every arm, or one that gathers the arms (such as `report`)",
                    node.stage,
                    other.arms.join(", "),
                    node.arms.join(", "),
                    target.display()
                ));
            }
            continue;
        }
        seen.insert(target.clone(), i);
        if let Some(parent) = target.parent() {
            if cleaned.insert(parent.to_path_buf()) {
                clean_stale(parent);
            }
        }
        let item = node.item.as_ref().map(|x| x.id.as_str());
        let n = &mut notes[at].2;
        n.targets += 1;
        // a page gets its run-dependent facts beside it, not in its bytes
        let extra = match node.decl.kind.wants_lineage() {
            true => match facts_of(dag, cache, i) {
                Ok(b) => vec![(crate::provenance::facts::FILE, b)],
                Err(e) => {
                    errors.push(format!("cannot publish {}: {e:#}", target.display()));
                    continue;
                }
            },
            false => Vec::new(),
        };
        match publish_entry_with(&cache.out_dir(&node.key), &target, &node.stage, item, &node.key, &extra) {
            Ok(Outcome::Repaired(what)) => n.repaired.push((target, what)),
            Ok(Outcome::Raced) => n.raced.push(target),
            Ok(Outcome::Published | Outcome::Unchanged) => {}
            Err(e) => errors.push(format!("{e:#}")),
        }
    }
    for (base, per_item, n) in &notes {
        n.say(base, *per_item);
    }
    match errors.len() {
        0 => Ok(()),
        n => {
            let mut msg = errors.iter().take(10).cloned().collect::<Vec<_>>().join("\n");
            if n > 10 {
                msg.push_str(&format!("\n(and {} more publish errors)", n - 10));
            }
            Err(anyhow!("{msg}"))
        }
    }
}

/// The run-facts sidecar of node `i`: from its record and those of its transitive upstream nodes.
fn facts_of(dag: &Dag, cache: &Cache, i: usize) -> Result<Vec<u8>> {
    let mut seen = vec![false; dag.nodes.len()];
    let mut stack = dag.nodes[i].deps.clone();
    while let Some(j) = stack.pop() {
        if !std::mem::replace(&mut seen[j], true) {
            stack.extend(dag.nodes[j].deps.iter().copied());
        }
    }
    let read = |k: &str| cache.record(k).with_context(|| format!("cannot read the cache record of {k}"));
    let own = read(&dag.nodes[i].key)?;
    let up = (0..dag.nodes.len()).filter(|&j| seen[j]).map(|j| read(&dag.nodes[j].key)).collect::<Result<Vec<_>>>()?;
    Ok(crate::provenance::facts::sidecar(&own, &up))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(dir: &Path, files: &[(&str, &str)]) -> PathBuf {
        std::fs::create_dir_all(dir).unwrap();
        for (name, body) in files {
            let p = dir.join(name);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, body).unwrap();
        }
        dir.to_path_buf()
    }

    fn marker(dir: &Path) -> Marker {
        serde_json::from_str(&std::fs::read_to_string(dir.join(MARKER)).unwrap()).unwrap()
    }

    fn read(p: &Path) -> String {
        std::fs::read_to_string(p).unwrap()
    }

    fn listing(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> =
            std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().to_string()).collect();
        v.sort();
        v
    }

    #[test]
    fn fresh_publish_has_marker_with_digest() {
        let d = tempfile::tempdir().unwrap();
        let src = entry(&d.path().join("src"), &[("a.txt", "A"), ("sub/b.txt", "B")]);
        let t = d.path().join("reports/x");
        assert_eq!(publish_entry(&src, &t, "s", None, "k1").unwrap(), Outcome::Published);
        assert_eq!(read(&t.join("a.txt")), "A");
        assert_eq!(read(&t.join("sub/b.txt")), "B");
        let m = marker(&t);
        assert_eq!(m.key.as_deref(), Some("k1"));
        assert_eq!(m.files.iter().map(|f| f.path.as_str()).collect::<Vec<_>>(), ["a.txt", "sub/b.txt"]);
        assert_eq!(check_content(&t, &m).unwrap(), Content::Complete);
        // nothing left beside it
        assert_eq!(listing(&d.path().join("reports")), ["x"]);
    }

    #[test]
    fn same_key_again_is_a_no_op() {
        let d = tempfile::tempdir().unwrap();
        let src = entry(&d.path().join("src"), &[("a.txt", "A")]);
        let t = d.path().join("out");
        publish_entry(&src, &t, "s", None, "k1").unwrap();
        let before = read(&t.join(MARKER));
        std::thread::sleep(std::time::Duration::from_millis(5));
        assert_eq!(publish_entry(&src, &t, "s", None, "k1").unwrap(), Outcome::Unchanged);
        assert_eq!(read(&t.join(MARKER)), before, "the marker was rewritten");
    }

    #[test]
    fn changed_key_replaces_the_whole_copy() {
        let d = tempfile::tempdir().unwrap();
        let t = d.path().join("out");
        publish_entry(&entry(&d.path().join("s1"), &[("old.txt", "1"), ("both.txt", "1")]), &t, "s", None, "k1")
            .unwrap();
        assert_eq!(
            publish_entry(&entry(&d.path().join("s2"), &[("both.txt", "2")]), &t, "s", None, "k2").unwrap(),
            Outcome::Published
        );
        assert_eq!(listing(&t), [MARKER, "both.txt"]);
        assert_eq!(read(&t.join("both.txt")), "2");
        assert_eq!(marker(&t).key.as_deref(), Some("k2"));
        assert_eq!(listing(d.path()), ["out", "s1", "s2"], "a staging or old copy was left behind");
    }

    #[test]
    fn foreign_directory_is_refused_and_untouched() {
        let d = tempfile::tempdir().unwrap();
        let src = entry(&d.path().join("src"), &[("a.txt", "A")]);
        let t = entry(&d.path().join("mine"), &[("thesis.docx", "years of work")]);
        let e = publish_entry(&src, &t, "s", None, "k1").unwrap_err().to_string();
        assert!(e.contains("not a Spatia publish") && e.contains(&t.display().to_string()), "{e}");
        assert_eq!(listing(&t), ["thesis.docx"]);
        assert_eq!(read(&t.join("thesis.docx")), "years of work");
        assert_eq!(listing(d.path()), ["mine", "src"]);
        // a file and a symlink are refused too
        let f = d.path().join("file");
        std::fs::write(&f, "x").unwrap();
        assert!(publish_entry(&src, &f, "s", None, "k1").unwrap_err().to_string().contains("is a file"));
        assert_eq!(read(&f), "x");
        let l = d.path().join("link");
        std::os::unix::fs::symlink(&t, &l).unwrap();
        assert!(publish_entry(&src, &l, "s", None, "k1").unwrap_err().to_string().contains("symbolic link"));
        assert_eq!(listing(&t), ["thesis.docx"]);
        // so is a directory whose marker is not Spatia's
        let b = entry(&d.path().join("bad"), &[(MARKER, "{not json"), ("keep.txt", "k")]);
        assert!(publish_entry(&src, &b, "s", None, "k1")
            .unwrap_err()
            .to_string()
            .contains("not a Spatia publish marker"));
        assert_eq!(listing(&b), [MARKER, "keep.txt"]);
    }

    #[test]
    fn files_added_to_a_publish_are_not_deleted() {
        let d = tempfile::tempdir().unwrap();
        let t = d.path().join("out");
        publish_entry(&entry(&d.path().join("s1"), &[("a.txt", "1")]), &t, "s", None, "k1").unwrap();
        std::fs::write(t.join("notes.txt"), "mine").unwrap();
        let e = publish_entry(&entry(&d.path().join("s2"), &[("a.txt", "2")]), &t, "s", None, "k2")
            .unwrap_err()
            .to_string();
        assert!(e.contains("notes.txt"), "{e}");
        assert_eq!(read(&t.join("notes.txt")), "mine");
        assert_eq!(read(&t.join("a.txt")), "1");
    }

    #[test]
    fn partial_publish_is_repaired() {
        let d = tempfile::tempdir().unwrap();
        let src = entry(&d.path().join("src"), &[("a.txt", "A"), ("b.txt", "B"), ("c/d.txt", "D")]);
        let t = d.path().join("out");
        publish_entry(&src, &t, "s", None, "k1").unwrap();
        std::fs::remove_file(t.join("b.txt")).unwrap();
        std::fs::write(t.join("c/d.txt"), "truncated").unwrap();
        assert!(matches!(check_content(&t, &marker(&t)).unwrap(), Content::Damaged(_)));
        assert!(matches!(publish_entry(&src, &t, "s", None, "k1").unwrap(), Outcome::Repaired(_)));
        assert_eq!(read(&t.join("b.txt")), "B");
        assert_eq!(read(&t.join("c/d.txt")), "D");
        assert_eq!(check_content(&t, &marker(&t)).unwrap(), Content::Complete);
    }

    #[test]
    fn legacy_stamp_counts_as_spatia() {
        let d = tempfile::tempdir().unwrap();
        let t = entry(&d.path().join("reports/demo"), &[(LEGACY_STAMP, "oldkey"), ("index.html", "old")]);
        let src = entry(&d.path().join("src"), &[("index.html", "new")]);
        publish_entry(&src, &t, "report", None, "k2").unwrap();
        assert_eq!(read(&t.join("index.html")), "new");
        assert!(!t.join(LEGACY_STAMP).exists());
        assert_eq!(marker(&t).key.as_deref(), Some("k2"));
        // an earlier version's per-item directory (raw ids, stamps, no marker) is adopted
        let items = d.path().join("reports/qc");
        entry(&items.join("P1_HE"), &[(LEGACY_STAMP, "k"), ("thumb.png", "x")]);
        ensure_items(&items, "tiles").unwrap();
        assert_eq!(marker(&items).what, What::Items);
        assert!(items.join("P1_HE/thumb.png").exists());
    }

    #[test]
    fn items_directory_with_foreign_files_is_refused() {
        let d = tempfile::tempdir().unwrap();
        let items = entry(&d.path().join("qc"), &[("README.txt", "mine")]);
        let e = ensure_items(&items, "tiles").unwrap_err().to_string();
        assert!(e.contains("README.txt") || e.contains("not a Spatia publish"), "{e}");
        assert_eq!(listing(&items), ["README.txt"]);
        // an empty one is adopted, a missing one created
        let empty = d.path().join("empty");
        std::fs::create_dir(&empty).unwrap();
        ensure_items(&empty, "tiles").unwrap();
        ensure_items(&d.path().join("new/qc"), "tiles").unwrap();
        assert_eq!(marker(&d.path().join("new/qc")).what, What::Items);
    }

    #[test]
    fn per_item_ids_stay_inside() {
        let d = tempfile::tempdir().unwrap();
        let proj = d.path().join("proj");
        let victim = entry(&d.path().join("victim"), &[("keep.txt", "precious")]);
        let items = proj.join("reports/pp");
        ensure_items(&items, "per").unwrap();
        let src = entry(&d.path().join("src"), &[("row.csv", "x")]);
        for id in ["../../../victim", "..", "/abs", "a/b", ".spatia-publish.json"] {
            let t = items.join(crate::util::id_path_component(id));
            assert_eq!(t.parent(), Some(items.as_path()), "{id}");
            publish_entry(&src, &t, "per", Some(id), "k").unwrap();
        }
        assert_eq!(listing(&victim), ["keep.txt"]);
        assert_eq!(read(&victim.join("keep.txt")), "precious");
        assert_eq!(listing(d.path()), ["proj", "src", "victim"]);
        assert_eq!(listing(&items).len(), 6);
    }

    #[test]
    fn concurrent_publishers_leave_one_complete_copy() {
        let d = tempfile::tempdir().unwrap();
        let names: Vec<String> = (0..60).map(|i| format!("f{i}.txt")).collect();
        let a: Vec<(&str, &str)> = names.iter().map(|n| (n.as_str(), "a")).collect();
        let b: Vec<(&str, &str)> = names.iter().map(|n| (n.as_str(), "b")).collect();
        let (sa, sb) = (entry(&d.path().join("sa"), &a), entry(&d.path().join("sb"), &b));
        let t = d.path().join("out/shared");
        std::thread::scope(|s| {
            for w in 0..4 {
                let (src, key) = if w % 2 == 0 { (&sa, "ka") } else { (&sb, "kb") };
                let t = &t;
                s.spawn(move || {
                    for _ in 0..15 {
                        publish_entry(src, t, "s", None, key).unwrap();
                    }
                });
            }
        });
        let m = marker(&t);
        assert_eq!(check_content(&t, &m).unwrap(), Content::Complete);
        let want = if m.key.as_deref() == Some("ka") { "a" } else { "b" };
        assert!(names.iter().all(|n| read(&t.join(n)) == want), "a mix of two publishes");
        assert_eq!(listing(&d.path().join("out")), ["shared"], "staging left behind");
    }

    #[test]
    fn replacing_without_exchange_moves_aside_then_in() {
        let d = tempfile::tempdir().unwrap();
        let t = d.path().join("out");
        publish_entry(&entry(&d.path().join("s1"), &[("a.txt", "1")]), &t, "s", None, "k1").unwrap();
        let mut tmp = stage_entry(&entry(&d.path().join("s2"), &[("b.txt", "2")]), &t, "s", None, "k2", &[]).unwrap();
        assert!(put_aside(&mut tmp, &t, "s").unwrap().is_ok());
        drop(tmp);
        assert_eq!(listing(&t), [MARKER, "b.txt"]);
        assert_eq!(listing(d.path()), ["out", "s1", "s2"]);
        // a foreign target is moved back untouched and refused
        let mine = entry(&d.path().join("mine"), &[("thesis.txt", "work")]);
        let mut tmp = stage_entry(&d.path().join("s2"), &mine, "s", None, "k2", &[]).unwrap();
        assert!(put_aside(&mut tmp, &mine, "s").unwrap_err().to_string().contains("thesis.txt"));
        drop(tmp);
        assert_eq!(listing(&mine), ["thesis.txt"]);
        assert_eq!(listing(d.path()), ["mine", "out", "s1", "s2"]);
    }

    #[test]
    fn stale_staging_of_dead_runs_is_removed() {
        let d = tempfile::tempdir().unwrap();
        // pid 0x3fffffff does not exist; our own pid does
        let dead = d.path().join(format!(".x{TMP_TAG}{}-{}-0", host_tag(), 0x3fff_ffff));
        let live = d.path().join(format!(".x{TMP_TAG}{}-{}-0", host_tag(), std::process::id()));
        let other = d.path().join(".x.something-else");
        for p in [&dead, &live, &other] {
            std::fs::create_dir(p).unwrap();
        }
        clean_stale(d.path());
        assert!(!dead.exists() && live.exists() && other.exists());
    }
}
