//! The model embedded in the library is a trained one: on phantom studies it never saw (seeds
//! outside the development cohorts 1000–2799, the validation cohorts 8000–8039 and 8100–8139 and
//! the held-out tests 9000–9039 and 9100–9139 of docs/training-results.md), it ranks suspicious
//! findings far above chance and locates them.
//! An untrained or mis-exported model (AP near the prevalence of ≈ 0.1) fails here.

use uptake::Tracer;
use uptake::{AnalyzeOptions, Analyzer, AnalyzerConfig};
use uptake_phantom::Preset;
use uptake_train::eval::metrics::{Calls, FindingSet};
use uptake_train::phantom_cohort::phantom_study;
use uptake_train::predict::label_report;

#[test]
fn embedded_model_classifies_unseen_phantoms_far_above_chance() {
    let analyzer = Analyzer::new(AnalyzerConfig::default()).unwrap();
    assert!(analyzer.model().is_trained());
    let mut rows = Vec::new();
    for (tracer, seed) in [
        (Tracer::Psma, 7001),
        (Tracer::Fdg, 7002),
        (Tracer::Psma, 7003),
    ] {
        let study = phantom_study(tracer, seed, Preset::Small).unwrap();
        let report = analyzer
            .analyze(&study.pet, &study.ct, tracer, &AnalyzeOptions::default())
            .unwrap();
        let (findings, _) = label_report(&study, &report).unwrap();
        rows.extend(
            findings
                .into_iter()
                .map(|f| (study.info.subject.clone(), f)),
        );
    }
    let set = FindingSet::new(rows).unwrap();
    let positives = set.findings.iter().filter(|f| f.suspicious).count();
    let prevalence = positives as f64 / set.findings.len() as f64;
    // As the reports called them (AP and location accuracy do not depend on it).
    let metrics = set.pooled(&[1.0; 3], Calls::Reported);
    let ap = metrics.average_precision.unwrap();
    let located = metrics.accuracy_suspicious.unwrap();
    eprintln!(
        "{} findings, {positives} suspicious (prevalence {prevalence:.3}): AP {ap:.3}, \
         location accuracy on suspicious findings {located:.3}",
        set.findings.len()
    );
    assert!(prevalence < 0.25, "prevalence {prevalence}");
    assert!(ap > 0.7, "average precision {ap}");
    assert!(located > 0.7, "location accuracy {located}");
}
