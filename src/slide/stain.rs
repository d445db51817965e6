//! The stains of the study and their spellings (a manifest's `stain` column, a modality name).
use serde::{Deserialize, Serialize};

/// The stains of the study.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Stain {
    /// Hematoxylin and eosin.
    HE,
    /// Oestrogen receptor IHC.
    ER,
    /// Progesterone receptor IHC.
    PR,
    /// HER2 IHC.
    HER2,
    /// Ki-67 IHC.
    KI67,
}

impl Stain {
    /// All stains, H&E first.
    pub const ALL: [Stain; 5] = [Stain::HE, Stain::ER, Stain::PR, Stain::HER2, Stain::KI67];

    /// True for the DAB immunostains.
    pub fn is_ihc(self) -> bool {
        self != Stain::HE
    }

    /// The manifest spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Stain::HE => "HE",
            Stain::ER => "ER",
            Stain::PR => "PR",
            Stain::HER2 => "HER2",
            Stain::KI67 => "KI67",
        }
    }
}

impl std::fmt::Display for Stain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Stain {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Stain, String> {
        let k: String =
            s.trim().chars().filter(|c| !matches!(c, '&' | '-' | '_' | ' ')).collect::<String>().to_ascii_uppercase();
        match k.as_str() {
            "HE" => Ok(Stain::HE),
            "ER" => Ok(Stain::ER),
            "PR" | "PGR" => Ok(Stain::PR),
            "HER2" => Ok(Stain::HER2),
            "KI67" => Ok(Stain::KI67),
            _ => Err(format!("unknown stain {s:?} (expected one of HE, ER, PR, HER2, KI67)")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stain_spellings() {
        assert_eq!("H&E".parse::<Stain>(), Ok(Stain::HE));
        assert_eq!("ki-67".parse::<Stain>(), Ok(Stain::KI67));
        assert_eq!("her2".parse::<Stain>(), Ok(Stain::HER2));
        assert!("CD8".parse::<Stain>().unwrap_err().contains("CD8"));
    }
}
