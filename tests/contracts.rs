//! The contracts' kind names are the registered stage kinds' names, and a `train` run's outputs
//! read back through their contracts (producer and consumers share one type).
use spatia::contracts::{self, Output, TrainOutput};
use spatia::stages::{lookup, REGISTRY};

#[test]
fn every_kind_name_is_a_contract_constant_and_back() {
    let names = [
        contracts::INGEST,
        contracts::COMMAND,
        contracts::TILE,
        contracts::STAIN,
        contracts::EXTRACT,
        contracts::TRAIN,
        contracts::EVALUATE,
        contracts::CALIBRATE,
        contracts::REPORT,
        contracts::MAPS,
    ];
    for k in REGISTRY {
        assert!(names.contains(&k.name()), "kind `{}` has no constant in contracts", k.name());
    }
    for n in names {
        assert_eq!(lookup(n).map(|k| k.name()), Some(n));
    }
    for kind in [
        TrainOutput::KIND,
        contracts::EvaluateOutput::KIND,
        contracts::CalibrateOutput::KIND,
        contracts::tiles::TileOutput::KIND,
        contracts::stain::StainOutput::KIND,
        contracts::extract::ExtractOutput::KIND,
    ] {
        assert!(lookup(kind).is_some(), "{kind}");
    }
}
