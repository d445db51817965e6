//! Maps a path inside the YAML document (`stages.model.needs[1]`) to the line and column where
//! it was written. Built only when an error must be reported, so a valid spec is parsed once.
use std::collections::HashMap;
use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::Marker;

pub use crate::docpath::{render, Seg};

/// Line and column (both 1-based) of the key and of the value at each path.
/// A key written twice in one mapping: its path, and the (line, column) of both.
pub type Duplicate = (Vec<Seg>, (usize, usize), (usize, usize));

#[derive(Debug, Default)]
pub struct Locator {
    keys: HashMap<Vec<Seg>, (usize, usize)>,
    /// Keys written twice in one mapping: (path, first position, second position).
    pub duplicates: Vec<Duplicate>,
    values: HashMap<Vec<Seg>, (usize, usize)>,
}

enum Frame {
    Map { key: Option<String> },
    Seq { index: usize },
}

struct Builder {
    loc: Locator,
    stack: Vec<Frame>,
    path: Vec<Seg>,
}

fn lc(m: Marker) -> (usize, usize) {
    (m.line(), m.col() + 1)
}

impl Builder {
    /// Called for every node; returns the path of the node if it is a value (None for a key).
    fn node(&mut self, scalar: Option<&str>, mark: Marker) -> Option<Vec<Seg>> {
        match self.stack.last_mut() {
            None => Some(Vec::new()),
            Some(Frame::Map { key }) => {
                if key.is_none() {
                    let k = scalar.unwrap_or("").to_string();
                    let mut p = self.path.clone();
                    p.push(Seg::Key(k.clone()));
                    if let Some(first) = self.loc.keys.get(&p) {
                        let first = *first;
                        self.loc.duplicates.push((p.clone(), first, lc(mark)));
                    } else {
                        self.loc.keys.insert(p, lc(mark));
                    }
                    *key = Some(k);
                    None
                } else {
                    let k = key.clone().unwrap_or_default();
                    let mut p = self.path.clone();
                    p.push(Seg::Key(k));
                    Some(p)
                }
            }
            Some(Frame::Seq { index }) => {
                let mut p = self.path.clone();
                p.push(Seg::Index(*index));
                Some(p)
            }
        }
    }

    /// After a value completes, advance the parent frame.
    fn advance(&mut self) {
        match self.stack.last_mut() {
            Some(Frame::Map { key }) => *key = None,
            Some(Frame::Seq { index }) => *index += 1,
            None => {}
        }
    }
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        match ev {
            Event::Scalar(v, ..) => {
                if let Some(p) = self.node(Some(&v), mark) {
                    self.loc.values.entry(p).or_insert(lc(mark));
                    self.advance();
                }
            }
            Event::Alias(_) => {
                if let Some(p) = self.node(None, mark) {
                    self.loc.values.entry(p).or_insert(lc(mark));
                    self.advance();
                }
            }
            Event::MappingStart(..) | Event::SequenceStart(..) => {
                let is_map = matches!(ev, Event::MappingStart(..));
                // a complex key: treat like a value-less key
                let p = self.node(None, mark).unwrap_or_else(|| self.path.clone());
                self.loc.values.entry(p.clone()).or_insert(lc(mark));
                self.path = p;
                self.stack.push(if is_map { Frame::Map { key: None } } else { Frame::Seq { index: 0 } });
            }
            Event::MappingEnd | Event::SequenceEnd => {
                self.stack.pop();
                self.path.pop();
                self.advance();
            }
            _ => {}
        }
    }
}

impl Locator {
    /// Indexes a YAML text. Syntax errors yield an empty (or partial) index; they are reported
    /// by the serde parser, which runs first.
    pub fn new(text: &str) -> Locator {
        let mut b = Builder { loc: Locator::default(), stack: Vec::new(), path: Vec::new() };
        let mut parser = Parser::new_from_str(text);
        let _ = parser.load(&mut b, false);
        b.loc
    }

    /// Where the value at `path` starts; falls back to the nearest enclosing node.
    pub fn value(&self, path: &[Seg]) -> (usize, usize) {
        let mut p = path.to_vec();
        loop {
            if let Some(x) = self.values.get(&p) {
                return *x;
            }
            if p.pop().is_none() {
                return (1, 1);
            }
        }
    }

    /// Where the key of the entry at `path` is written; falls back to [`Locator::value`].
    pub fn key(&self, path: &[Seg]) -> (usize, usize) {
        self.keys.get(path).copied().unwrap_or_else(|| self.value(path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_keys_and_values() {
        let t = "name: x\nstages:\n  a: {kind: command, cmd: 'true'}\n  b:\n    kind: command\n    needs: [a, zz]\n";
        let l = Locator::new(t);
        let p = |s: &[&str]| s.iter().map(|k| Seg::key(k)).collect::<Vec<_>>();
        assert_eq!(l.key(&p(&["stages", "b"])), (4, 3));
        assert_eq!(l.value(&p(&["stages", "a", "cmd"])), (3, 27));
        let mut n = p(&["stages", "b", "needs"]);
        n.push(Seg::Index(1));
        assert_eq!(l.value(&n), (6, 16));
        assert_eq!(l.key(&p(&["stages", "b", "kind"])), (5, 5));
    }
}
