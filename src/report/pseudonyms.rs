//! Patient and slide pseudonyms (`P-001`, `P-001_HE`): what the page shows instead of
//! identifiers unless the spec asks for them (`show_patient_ids`).
use std::collections::{BTreeSet, HashMap};

/// Stable pseudonyms: patients ordered by blake3(seed ‖ 0x1f ‖ id) are named P-001, P-002 …
/// (at least three digits). The order depends only on the seed and the id, so a patient keeps
/// its pseudonym across runs with the same seed and cohort size.
#[derive(Debug, Clone)]
pub struct Pseudonyms {
    show: bool,
    patients: HashMap<String, String>,
    /// slide id → (patient id, stain)
    slides: HashMap<String, (String, String)>,
    slide_labels: HashMap<String, String>,
}

impl Pseudonyms {
    /// Pseudonyms for `patients`; `slides` maps slide id → (patient id, stain). With `show`,
    /// every label is the identifier itself.
    pub fn new(seed: u64, patients: &[String], slides: &[(String, String, String)], show: bool) -> Pseudonyms {
        let mut order: Vec<(String, &String)> = patients
            .iter()
            .collect::<BTreeSet<_>>()
            .into_iter()
            .map(|id| {
                let mut h = blake3::Hasher::new();
                h.update(&seed.to_le_bytes());
                h.update(b"\x1f");
                h.update(id.as_bytes());
                (h.finalize().to_hex().to_string(), id)
            })
            .collect();
        order.sort();
        let width = order.len().to_string().len().max(3);
        let patients: HashMap<String, String> =
            order.iter().enumerate().map(|(i, (_, id))| ((*id).clone(), format!("P-{:0width$}", i + 1))).collect();
        let mut ps = Pseudonyms {
            show,
            patients,
            slides: slides.iter().map(|(s, p, st)| (s.clone(), (p.clone(), st.clone()))).collect(),
            slide_labels: HashMap::new(),
        };
        // slide labels: `<pseudonym>_<stain>`, numbered when a patient has several of a stain
        let mut sorted: Vec<&(String, String, String)> = slides.iter().collect();
        sorted.sort();
        let mut used: HashMap<String, usize> = HashMap::new();
        for (sid, pid, stain) in sorted {
            let base = format!("{}_{}", ps.patient(pid), stain);
            let n = used.entry(base.clone()).or_default();
            *n += 1;
            let label = if *n == 1 { base } else { format!("{base}_{n}") };
            ps.slide_labels.insert(sid.clone(), label);
        }
        ps
    }

    /// The label of a patient id (unknown ids get `P-?` plus a short hash when hidden).
    pub fn patient(&self, id: &str) -> String {
        if self.show {
            // bidi and control characters shown as `<U+XXXX>`: an id displays as what it is
            return crate::util::display_id(id);
        }
        match self.patients.get(id) {
            Some(p) => p.clone(),
            None => format!("P-?{}", &blake3::hash(id.as_bytes()).to_hex()[..6]),
        }
    }

    /// The label of a slide id.
    pub fn slide(&self, id: &str) -> String {
        if self.show {
            return crate::util::display_id(id);
        }
        match self.slide_labels.get(id) {
            Some(l) => l.clone(),
            None => format!("S-?{}", &blake3::hash(id.as_bytes()).to_hex()[..6]),
        }
    }

    /// The label of a shard's item, whichever kind of item it is.
    pub fn item(&self, id: &str) -> String {
        if self.slides.contains_key(id) {
            self.slide(id)
        } else {
            self.patient(id)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pseudonyms_are_stable_ordered_by_hash_and_hide_ids() {
        let ids: Vec<String> = (1..=12).map(|i| format!("PT{i:03}")).collect();
        let slides = vec![("PT001_HE".to_string(), "PT001".to_string(), "HE".to_string())];
        let a = Pseudonyms::new(7, &ids, &slides, false);
        let b = Pseudonyms::new(7, &ids.iter().rev().cloned().collect::<Vec<_>>(), &slides, false);
        let labels: BTreeSet<String> = ids.iter().map(|i| a.patient(i)).collect();
        assert_eq!(labels.len(), 12);
        assert!(labels.iter().all(|l| l.starts_with("P-0") && l.len() == 5), "{labels:?}");
        for i in &ids {
            assert_eq!(a.patient(i), b.patient(i), "input order must not matter");
        }
        let c = Pseudonyms::new(8, &ids, &slides, false);
        assert!(ids.iter().any(|i| a.patient(i) != c.patient(i)), "the seed changes the order");
        assert_eq!(a.slide("PT001_HE"), format!("{}_HE", a.patient("PT001")));
        assert!(!a.item("PT001_HE").contains("PT001"));
        assert!(!a.patient("unknown").contains("unknown"));
        let shown = Pseudonyms::new(7, &ids, &slides, true);
        assert_eq!(shown.patient("PT003"), "PT003");
        assert_eq!(shown.slide("PT001_HE"), "PT001_HE");
    }
}
