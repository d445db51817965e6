//! The HTML report: one self-contained `reports/<experiment>/index.html` per experiment.
//!
//! Owns: the plots ([`plots`], inline SVG drawn with plotters, no files or network) and the page
//! rendering from minijinja templates ([`render_page`]) with HTML autoescaping, so every string
//! that reaches the page is escaped unless it is an SVG produced here and passed explicitly as
//! safe (`minijinja::Value::from_safe_string`). It computes no statistics: the numbers come from
//! [`crate::survival`] and the evaluate/calibrate stages.
//!
//! # Errors
//! [`ReportError`]: a template that cannot be read, parsed or rendered.
pub mod figures;
pub mod page;
pub mod plots;
pub mod pseudonyms;

use std::path::{Path, PathBuf};

use thiserror::Error;

/// Errors of the report module.
#[derive(Debug, Error)]
pub enum ReportError {
    /// The template file could not be read.
    #[error("report template {path}: expected a readable UTF-8 file: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    /// minijinja failed to parse or render the template.
    #[error("report template {path}: {message}")]
    Template { path: PathBuf, message: String },
}

/// Renders the template `name` (e.g. `index.html`) found in `template_dir` with `context`.
///
/// Autoescaping follows the template's extension: `.html`, `.htm` and `.xml` escape every value
/// (`<` becomes `&lt;` and so on); other extensions do not. Templates may `{% include %}` or
/// `{% extends %}` other files of `template_dir` (names with `..` or absolute paths are refused).
///
/// # Errors
/// [`ReportError::Read`] when a template file cannot be read, [`ReportError::Template`] when it
/// does not parse or fails to render (undefined values are errors: strict mode).
pub fn render_page(template_dir: &Path, name: &str, context: &impl serde::Serialize) -> Result<String, ReportError> {
    let path = template_dir.join(name);
    let template_err = |e: minijinja::Error| ReportError::Template { path: path.clone(), message: format!("{e:#}") };
    let mut env = environment();
    let dir = template_dir.to_path_buf();
    env.set_loader(move |n| {
        if n.split(['/', '\\']).any(|c| c == "..") || Path::new(n).is_absolute() {
            return Err(minijinja::Error::new(
                minijinja::ErrorKind::TemplateNotFound,
                format!("template name {n:?} leaves the template directory"),
            ));
        }
        match std::fs::read_to_string(dir.join(n)) {
            Ok(s) => Ok(Some(s)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(minijinja::Error::new(
                minijinja::ErrorKind::InvalidOperation,
                format!("cannot read template {n:?}: {e}"),
            )),
        }
    });
    if let Err(source) = std::fs::metadata(&path) {
        return Err(ReportError::Read { path, source });
    }
    let tmpl = env.get_template(name).map_err(template_err)?;
    tmpl.render(minijinja::value::Serde(context)).map_err(template_err)
}

/// The environment every page uses: strict undefined values, HTML autoescaping for `.html`,
/// `.htm` and `.xml` templates.
fn environment() -> minijinja::Environment<'static> {
    let mut env = minijinja::Environment::new();
    env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
    env.set_auto_escape_callback(|name| {
        if name.ends_with(".html") || name.ends_with(".htm") || name.ends_with(".xml") {
            minijinja::AutoEscape::Html
        } else {
            minijinja::AutoEscape::None
        }
    });
    env
}

/// Renders `name` from templates compiled into the binary (`(name, source)` pairs, e.g. from
/// `include_str!`), with the same escaping and strictness as [`render_page`]. Stages use this:
/// they run from the cache, so their templates must not depend on files on disk.
///
/// # Errors
/// [`ReportError::Template`] when a template does not parse, is missing, or fails to render.
pub fn render_embedded(
    templates: &[(&'static str, &'static str)],
    name: &str,
    context: minijinja::Value,
) -> Result<String, ReportError> {
    let mut env = environment();
    let err = |n: &str, e: minijinja::Error| ReportError::Template {
        path: PathBuf::from(format!("<embedded>/{n}")),
        message: format!("{e:#}"),
    };
    for (n, src) in templates {
        env.add_template(n, src).map_err(|e| err(n, e))?;
    }
    let tmpl = env.get_template(name).map_err(|e| err(name, e))?;
    tmpl.render(context).map_err(|e| err(name, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_page_escapes_hostile_strings_and_keeps_safe_svg() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("index.html"),
            "<h1>{{ title }}</h1>{% include \"part.html\" %}<div>{{ svg }}</div>",
        )
        .unwrap();
        std::fs::write(dir.path().join("part.html"), "<p>{{ arm }}</p>").unwrap();
        let ctx = minijinja::context! {
            title => "<script>alert('x')</script>",
            arm => "HE & \"IHC\"",
            svg => minijinja::Value::from_safe_string("<svg></svg>".to_string()),
        };
        let html = render_page(dir.path(), "index.html", &ctx).unwrap();
        assert!(!html.contains("<script>"), "{html}");
        assert!(html.contains("&lt;script&gt;alert(&#x27;x&#x27;)&lt;&#x2f;script&gt;"), "{html}");
        assert!(html.contains("<p>HE &amp; &quot;IHC&quot;</p>"), "{html}");
        assert!(html.contains("<div><svg></svg></div>"), "{html}");
    }

    #[test]
    fn render_page_errors_name_the_template() {
        let dir = tempfile::tempdir().unwrap();
        let e = render_page(dir.path(), "missing.html", &()).unwrap_err();
        assert!(e.to_string().contains("missing.html"), "{e}");
        std::fs::write(dir.path().join("bad.html"), "{{ undefined_thing }}").unwrap();
        let e = render_page(dir.path(), "bad.html", &()).unwrap_err();
        assert!(e.to_string().contains("bad.html"), "{e}");
        std::fs::write(dir.path().join("up.html"), "{% include \"../x.html\" %}").unwrap();
        assert!(render_page(dir.path(), "up.html", &()).is_err());
    }
}
