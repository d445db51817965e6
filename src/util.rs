//! Small shared helpers: canonical JSON (the encoding every key is hashed from), YAML→JSON
//! conversion with number normalisation, environment-variable names, ids shown safely, and the
//! `SPATIA_TIMINGS` phase timer.
use serde_json::Value;
use std::fmt::Write as _;

/// Canonical JSON: object keys sorted bytewise, no whitespace, numbers normalised so that
/// `1` and `1.0` encode the same (an integral float within ±2^53 is written as an integer;
/// any other float with Rust's shortest round-trip form). List order is kept.
pub fn canonical_json(v: &Value) -> String {
    let mut s = String::with_capacity(256);
    write_canonical(v, &mut s);
    s
}

fn write_canonical(v: &Value, out: &mut String) {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => write_number(n, out),
        Value::String(s) => {
            out.push_str(&serde_json::to_string(s).expect("string serialises"));
        }
        Value::Array(a) => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(x, out);
            }
            out.push(']');
        }
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&serde_json::to_string(k).expect("string serialises"));
                out.push(':');
                write_canonical(&m[k.as_str()], out);
            }
            out.push('}');
        }
    }
}

fn write_number(n: &serde_json::Number, out: &mut String) {
    if let Some(i) = n.as_i64() {
        let _ = write!(out, "{i}");
    } else if let Some(u) = n.as_u64() {
        let _ = write!(out, "{u}");
    } else {
        let f = n.as_f64().unwrap_or(f64::NAN);
        if f.is_finite() && f.fract() == 0.0 && f.abs() <= 9_007_199_254_740_992.0 {
            let _ = write!(out, "{}", f as i64);
        } else {
            let _ = write!(out, "{f:?}");
        }
    }
}

/// Normalises numbers inside a JSON value in place: integral floats become integers,
/// so that typed parameters re-serialised from `f64` fields hash like the YAML the user wrote.
pub fn normalize_numbers(v: &mut Value) {
    match v {
        Value::Number(n) if n.as_i64().is_none() && n.as_u64().is_none() => {
            if let Some(f) = n.as_f64() {
                if f.is_finite() && f.fract() == 0.0 && f.abs() <= 9_007_199_254_740_992.0 {
                    *v = Value::from(f as i64);
                }
            }
        }
        Value::Array(a) => a.iter_mut().for_each(normalize_numbers),
        Value::Object(m) => m.values_mut().for_each(normalize_numbers),
        _ => {}
    }
}

/// Converts a YAML value to JSON. YAML-only features (non-string keys, tags) are rendered
/// as strings; `.nan`/`.inf` become strings since JSON has no such numbers.
pub fn yaml_to_json(v: &serde_yaml_ng::Value) -> Value {
    use serde_yaml_ng::Value as Y;
    match v {
        Y::Null => Value::Null,
        Y::Bool(b) => Value::Bool(*b),
        Y::Number(n) => {
            if let Some(i) = n.as_i64() {
                Value::from(i)
            } else if let Some(u) = n.as_u64() {
                Value::from(u)
            } else {
                let f = n.as_f64().unwrap_or(f64::NAN);
                serde_json::Number::from_f64(f).map(Value::Number).unwrap_or_else(|| Value::String(f.to_string()))
            }
        }
        Y::String(s) => Value::String(s.clone()),
        Y::Sequence(s) => Value::Array(s.iter().map(yaml_to_json).collect()),
        Y::Mapping(m) => {
            let mut o = serde_json::Map::new();
            for (k, v) in m {
                let key = match k {
                    Y::String(s) => s.clone(),
                    other => serde_yaml_ng::to_string(other).unwrap_or_default().trim().to_string(),
                };
                o.insert(key, yaml_to_json(v));
            }
            Value::Object(o)
        }
        Y::Tagged(t) => yaml_to_json(&t.value),
    }
}

/// `SPATIA_NEEDS_<NAME>`: the name upper-cased, every non-alphanumeric character as `_`.
pub fn env_name(name: &str) -> String {
    name.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_uppercase() } else { '_' }).collect()
}

/// The path component for a cohort id (patient or slide): ids never become raw path
/// components. A safe slug of the id (ASCII letters, digits, `-`, `_`; anything else `_`; at
/// most 48 characters) plus `-` and the first 10 hex digits of the id's blake3, so distinct ids
/// never share a directory, `..`, `/`, control characters and case-folding filesystems are
/// harmless, and the directory still reads like the id.
pub fn id_path_component(id: &str) -> String {
    let slug: String =
        id.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' }).take(48).collect();
    let d = blake3::hash(id.as_bytes()).to_hex();
    format!("{slug}-{}", &d[..10])
}

/// Whether a character is a bidirectional-text control (they can make an id display as another,
/// e.g. U+202E RIGHT-TO-LEFT OVERRIDE).
pub fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// An id made safe to show (page, log, terminal): bidi and other control characters are
/// written as `<U+XXXX>`, so an id always displays as what it is.
pub fn display_id(id: &str) -> String {
    let mut out = String::with_capacity(id.len());
    for c in id.chars() {
        if c.is_control() || is_bidi_control(c) {
            out.push_str(&format!("<U+{:04X}>", c as u32));
        } else {
            out.push(c);
        }
    }
    out
}

/// A cell quoted in an error: shown as [`display_id`] and cut to 40 characters, so an error
/// never echoes more of a file than the one offending cell.
pub fn cell_excerpt(cell: &str) -> String {
    let shown = display_id(cell);
    if shown.chars().count() > 40 {
        format!("{}…", shown.chars().take(39).collect::<String>())
    } else {
        shown
    }
}

/// Why an id (patient or slide, as read from the cohort's files) is refused: empty, or with a
/// control character (Unicode Cc: newline, tab, NUL, escape …). None when it is acceptable.
pub fn id_problem(id: &str) -> Option<String> {
    if id.is_empty() {
        return Some("empty id".into());
    }
    id.chars().find(|c| c.is_control()).map(|c| {
        format!("id `{}` contains the control character U+{:04X}; ids must be printable", cell_excerpt(id), c as u32)
    })
}

/// The first header name written twice (compared as the reader compares them: trimmed,
/// ASCII case-insensitively when `fold_case`): (name, first column, second column), 1-based.
pub fn duplicate_column(headers: &csv::StringRecord, fold_case: bool) -> Option<(String, usize, usize)> {
    let key = |h: &str| if fold_case { h.trim().to_ascii_lowercase() } else { h.to_string() };
    let mut seen: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    for (i, h) in headers.iter().enumerate() {
        if let Some(first) = seen.insert(key(h), i + 1) {
            return Some((cell_excerpt(h), first, i + 1));
        }
    }
    None
}

/// A "did you mean" for a missing column: the header name closest to `name`, when one is
/// close (only that one name is shown, never the whole header row).
pub fn closest_column(headers: &csv::StringRecord, name: &str) -> Option<String> {
    headers
        .iter()
        .map(|h| (strsim::jaro_winkler(&h.to_ascii_lowercase(), &name.to_ascii_lowercase()), h))
        .filter(|(s, _)| *s > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, h)| cell_excerpt(h))
}

/// JSON text made safe for a terminal: every bidi or control character left raw by the
/// serialiser (they can only occur inside strings) is written as a `\uXXXX` escape, so the
/// text decodes to the same value and an id in it displays as what it is.
pub fn json_for_terminal(json: &str) -> String {
    if !json.chars().any(|c| c.is_control() || is_bidi_control(c)) {
        return json.to_string();
    }
    let mut out = String::with_capacity(json.len() + 16);
    for c in json.chars() {
        // newlines between pretty-printed lines are layout, not content
        if (c.is_control() && c != '\n') || is_bidi_control(c) {
            out.push_str(&format!("\\u{:04x}", c as u32));
        } else {
            out.push(c);
        }
    }
    out
}

/// An I/O error that names its path (`<what> <path>: <error>`), keeping its kind: every write
/// error must say which file it concerns (a full disk or `ulimit -f` otherwise reads as a bare
/// "No space left on device").
pub fn io_at<'a>(what: &'a str, path: &'a std::path::Path) -> impl FnOnce(std::io::Error) -> std::io::Error + 'a {
    move |e| std::io::Error::new(e.kind(), format!("{what} {}: {e}", path.display()))
}

/// `std::fs::write` whose error names the file.
pub fn write_file(path: impl AsRef<std::path::Path>, contents: impl AsRef<[u8]>) -> std::io::Result<()> {
    let path = path.as_ref();
    std::fs::write(path, contents).map_err(io_at("cannot write", path))
}

/// Whether an error chain ends in the disk refusing a write: no space (ENOSPC), over a quota
/// (EDQUOT), over the file-size limit (EFBIG, `ulimit -f`) or a read-only file system.
pub fn is_write_refused(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .and_then(|io| io.raw_os_error())
            .is_some_and(|n| [libc::ENOSPC, libc::EDQUOT, libc::EFBIG, libc::EROFS].contains(&n))
            || c.downcast_ref::<csv::Error>().is_some_and(|ce| match ce.kind() {
                csv::ErrorKind::Io(io) => io
                    .raw_os_error()
                    .is_some_and(|n| [libc::ENOSPC, libc::EDQUOT, libc::EFBIG, libc::EROFS].contains(&n)),
                _ => false,
            })
    })
}

/// A message (an error, a log line) made safe for a terminal or page: like [`display_id`], but
/// line breaks and tabs are kept, so any id quoted anywhere in it shows as what it is.
pub fn display_text(text: &str) -> String {
    if !text.chars().any(|c| (c.is_control() && c != '\n' && c != '\t') || is_bidi_control(c)) {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        if (c.is_control() && c != '\n' && c != '\t') || is_bidi_control(c) {
            out.push_str(&format!("<U+{:04X}>", c as u32));
        } else {
            out.push(c);
        }
    }
    out
}

/// Hex of a blake3 digest.
pub fn hex(h: &blake3::Hash) -> String {
    h.to_hex().to_string()
}

/// The time as RFC 3339 with milliseconds, UTC.
pub fn now_rfc3339() -> String {
    humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string()
}

/// This machine's host name (recorded in provenance, never in keys).
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".into())
}

/// Deserialises a number that its writer may have written as `null` (serde_json writes a
/// non-finite `f64` so) as NaN; for `#[serde(deserialize_with = "crate::util::f64_or_nan")]`.
pub fn f64_or_nan<'de, D: serde::Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    use serde::Deserialize;
    Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
}

/// NaN, the default of a number a reader does not need (`#[serde(default = "crate::util::nan")]`).
pub fn nan() -> f64 {
    f64::NAN
}

/// With `SPATIA_TIMINGS` set, prints how long a phase took (since `since`) to stderr as
/// `timing: <what>: <ms> ms`; otherwise nothing.
pub fn timing(what: &str, since: std::time::Instant) {
    if std::env::var_os("SPATIA_TIMINGS").is_some() {
        eprintln!("timing: {what}: {:.2} ms", since.elapsed().as_secs_f64() * 1e3);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn one_and_one_point_zero_encode_alike() {
        assert_eq!(canonical_json(&json!({"a": 1})), canonical_json(&json!({"a": 1.0})));
        assert_ne!(canonical_json(&json!({"a": 1})), canonical_json(&json!({"a": 1.5})));
    }

    #[test]
    fn keys_sorted_lists_kept() {
        assert_eq!(canonical_json(&json!({"b": [2, 1], "a": null})), r#"{"a":null,"b":[2,1]}"#);
    }

    #[test]
    fn ids_become_safe_distinct_components() {
        let a = id_path_component("../../../victim");
        assert!(!a.contains('/') && !a.starts_with('.'), "{a}");
        assert_ne!(id_path_component("P-1"), id_path_component("P_1"));
        assert_ne!(id_path_component("ab"), id_path_component("AB"));
        assert!(id_path_component("P001").starts_with("P001-"));
        assert_eq!(id_path_component("").len(), 11);
        assert!(id_path_component(&"x".repeat(500)).len() <= 59);
    }

    #[test]
    fn bidi_controls_are_shown_escaped() {
        assert_eq!(display_id("P1\u{202E}gpj.exe"), "P1<U+202E>gpj.exe");
        assert_eq!(display_id("a\tb"), "a<U+0009>b");
        assert_eq!(display_id("Müller-7"), "Müller-7");
    }

    #[test]
    fn json_for_terminal_escapes_bidi_and_keeps_the_value() {
        let v = serde_json::json!({"item": "P\u{202E}1"});
        let shown = json_for_terminal(&serde_json::to_string_pretty(&v).unwrap());
        assert!(!shown.contains('\u{202E}') && shown.contains("\\u202e"), "{shown}");
        assert_eq!(serde_json::from_str::<Value>(&shown).unwrap(), v);
        assert_eq!(cell_excerpt(&"x".repeat(100)).chars().count(), 40);
        assert!(id_problem("a\nb").unwrap().contains("U+000A"));
        assert!(id_problem("").is_some() && id_problem("P-1").is_none());
        assert_eq!(display_text("a\n\tpatient `P\u{202E}1`\u{1b}"), "a\n\tpatient `P<U+202E>1`<U+001B>");
    }

    #[test]
    fn env_names() {
        assert_eq!(env_name("he-tiles.v2"), "HE_TILES_V2");
    }
}
