//! Findings of many subjects and the metrics of the paper's Tables 1 and 2.
//!
//! A finding is one candidate region with its ground truth (suspicious or not, location class or
//! unknown) and the network's output (p_suspicious, predicted location). At the operating point a
//! finding is called suspicious when p_suspicious ≥ threshold, the distant threshold where its
//! predicted location is distant (as the staging rules call it); or as its report called it,
//! at whatever operating points the analysis used (e.g. its tracer's). Location accuracy counts
//! findings whose location is known: "suspicious" over truly suspicious findings, "all" over all
//! findings.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;
use uptake::classes::{Role, v1_classes};
use uptake::model::OperatingPoints;

use super::EvalError;
use super::ap::{descending_order, weighted_average_precision};
use super::stats::Summary;

/// One evaluated region.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    /// Index into [`FindingSet::subjects`].
    pub subject: usize,
    pub suspicious: bool,
    pub p_suspicious: f64,
    /// Ground-truth S6 class; `None` where the ground truth cannot say.
    pub location: Option<u32>,
    pub predicted_location: u32,
    /// The report's own call, at the operating points its analysis used; `None` for findings
    /// that come from no report (cross-validation).
    pub reported: Option<bool>,
}

/// How findings are called suspicious for the metrics that depend on it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Calls {
    /// At one pair of operating points for every subject: p_suspicious ≥ `threshold`, or ≥
    /// `distant_threshold` where the predicted location's role in the v1 class table is distant
    /// (M1a, M1b, M1c), as the analyzer's staging calls it (DESIGN S8) in its default reading
    /// (common iliac nodes M1a, the reading `predict` analyzes with).
    At(OperatingPoints),
    /// As each report called its findings: needs every finding's `reported`.
    Reported,
}

impl From<OperatingPoints> for Calls {
    fn from(point: OperatingPoints) -> Self {
        Calls::At(point)
    }
}

/// Findings of several subjects, with the score order computed once.
#[derive(Debug, Clone)]
pub struct FindingSet {
    pub subjects: Vec<String>,
    pub findings: Vec<Finding>,
    scores: Vec<f64>,
    positives: Vec<bool>,
    order: Vec<usize>,
    /// Per finding: the role of its predicted location in the v1 table (`None` outside it).
    roles: Vec<Option<Role>>,
    /// Per finding, the report's call, when every finding has one.
    reported: Option<Vec<bool>>,
}

/// The metric names in report order.
pub const METRIC_NAMES: [&str; 8] = [
    "average_precision",
    "recall",
    "ppv",
    "true_positives",
    "false_positives",
    "false_negatives",
    "accuracy_suspicious",
    "accuracy_all",
];

/// Metrics of a set of findings; `None` where undefined (e.g. recall without positives).
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct Metrics {
    pub average_precision: Option<f64>,
    pub recall: Option<f64>,
    pub ppv: Option<f64>,
    pub true_positives: Option<f64>,
    pub false_positives: Option<f64>,
    pub false_negatives: Option<f64>,
    pub accuracy_suspicious: Option<f64>,
    pub accuracy_all: Option<f64>,
}

impl Metrics {
    /// Values in the order of [`METRIC_NAMES`].
    pub fn values(&self) -> [Option<f64>; 8] {
        [
            self.average_precision,
            self.recall,
            self.ppv,
            self.true_positives,
            self.false_positives,
            self.false_negatives,
            self.accuracy_suspicious,
            self.accuracy_all,
        ]
    }
}

impl FindingSet {
    /// Groups `(subject, finding)` rows; subjects are numbered in order of first appearance.
    pub fn new(rows: Vec<(String, Finding)>) -> Result<FindingSet, EvalError> {
        let mut subjects: Vec<String> = Vec::new();
        let mut index: BTreeMap<String, usize> = BTreeMap::new();
        let mut findings = Vec::with_capacity(rows.len());
        for (name, mut finding) in rows {
            let next = subjects.len();
            let subject = *index.entry(name.clone()).or_insert(next);
            if subject == next {
                subjects.push(name);
            }
            finding.subject = subject;
            findings.push(finding);
        }
        if subjects.is_empty() {
            return Err(EvalError::Empty);
        }
        let reported: Option<Vec<bool>> = findings.iter().map(|f| f.reported).collect();
        if reported.is_none() && findings.iter().any(|f| f.reported.is_some()) {
            return Err(EvalError::PartlyReported);
        }
        let scores: Vec<f64> = findings.iter().map(|f| f.p_suspicious).collect();
        let positives = findings.iter().map(|f| f.suspicious).collect();
        let order = descending_order(&scores)?;
        let classes = v1_classes();
        let roles = findings
            .iter()
            .map(|f| classes.get(f.predicted_location as usize).map(|c| c.role))
            .collect();
        Ok(FindingSet {
            subjects,
            findings,
            scores,
            positives,
            order,
            roles,
            reported,
        })
    }

    /// Whether these calls can be made: [`Calls::Reported`] needs the reports' calls.
    pub fn check(&self, calls: Calls) -> Result<(), EvalError> {
        match (calls, &self.reported) {
            (Calls::Reported, None) => Err(EvalError::NotReported),
            _ => Ok(()),
        }
    }

    /// Whether finding `i` is called suspicious. [`Calls::Reported`] needs the reports' calls
    /// ([`FindingSet::check`]).
    fn called(&self, i: usize, calls: Calls) -> bool {
        match calls {
            // Single precision, as the analyzer compares: a finding is called as its report
            // called it at the same pair.
            Calls::At(point) => {
                let threshold = self.roles[i].map_or(point.threshold, |role| point.of(role));
                self.findings[i].p_suspicious >= f64::from(threshold)
            }
            Calls::Reported => self
                .reported
                .as_ref()
                .expect("reported calls, as FindingSet::check requires")[i],
        }
    }

    /// Pooled metrics with each subject's findings counted `subject_weights[s]` times (all ones
    /// for the plain pooled figures, resample multiplicities for the bootstrap). Panics on
    /// [`Calls::Reported`] without the reports' calls: [`FindingSet::check`] first.
    pub fn pooled(&self, subject_weights: &[f64], calls: Calls) -> Metrics {
        let weights: Vec<f64> = self
            .findings
            .iter()
            .map(|f| subject_weights[f.subject])
            .collect();
        let mut counts = Counts::default();
        for (i, (finding, &w)) in self.findings.iter().zip(&weights).enumerate() {
            counts.add(finding, w, self.called(i, calls));
        }
        let mut metrics = counts.metrics();
        metrics.average_precision =
            weighted_average_precision(&self.scores, &self.positives, &weights, &self.order);
        metrics
    }

    /// Metrics of each subject alone (average precision is pooled only, as in the paper). Calls
    /// as in [`FindingSet::pooled`].
    pub fn per_subject(&self, calls: Calls) -> Vec<Metrics> {
        let mut counts = vec![Counts::default(); self.subjects.len()];
        for (i, finding) in self.findings.iter().enumerate() {
            counts[finding.subject].add(finding, 1.0, self.called(i, calls));
        }
        counts.iter().map(Counts::metrics).collect()
    }

    /// Per-subject summaries of every metric but average precision, over the subjects where the
    /// metric is defined.
    pub fn per_subject_summaries(&self, calls: Calls) -> BTreeMap<&'static str, Summary> {
        let per_subject = self.per_subject(calls);
        let mut out = BTreeMap::new();
        for (k, name) in METRIC_NAMES.iter().enumerate().skip(1) {
            let values: Vec<f64> = per_subject.iter().filter_map(|m| m.values()[k]).collect();
            if let Some(summary) = Summary::of(&values) {
                out.insert(*name, summary);
            }
        }
        out
    }

    /// Reads a findings CSV with the header
    /// `subject,suspicious,p_suspicious,location,predicted_location` (suspicious 0/1, location
    /// an S6 id or empty when unknown) and optionally a last column `reported` (the report's
    /// call, 0/1).
    pub fn read_csv(path: &Path) -> Result<FindingSet, EvalError> {
        let text = std::fs::read_to_string(path)?;
        let name = path.display().to_string();
        let error = |line: usize, message: String| EvalError::Csv {
            path: name.clone(),
            line,
            message,
        };
        let mut lines = text.lines().enumerate();
        let expected = "subject,suspicious,p_suspicious,location,predicted_location";
        let with_reported = match lines.next() {
            Some((_, header)) if header.trim() == expected => false,
            Some((_, header)) if header.trim() == format!("{expected},reported") => true,
            _ => {
                return Err(error(
                    1,
                    format!("header must be {expected}, optionally with ,reported"),
                ));
            }
        };
        let flag = |line: usize, name: &str, text: &str| match text {
            "1" | "true" => Ok(true),
            "0" | "false" => Ok(false),
            other => Err(error(line, format!("{name} must be 0/1, not {other:?}"))),
        };
        let mut rows = Vec::new();
        for (i, line) in lines {
            if line.trim().is_empty() {
                continue;
            }
            let fields: Vec<&str> = line.split(',').map(str::trim).collect();
            let (subject, suspicious, p, location, predicted, reported) =
                match (with_reported, &fields[..]) {
                    (false, &[s, called, p, l, predicted]) => (s, called, p, l, predicted, None),
                    (true, &[s, called, p, l, predicted, reported]) => {
                        let reported = flag(i + 1, "reported", reported)?;
                        (s, called, p, l, predicted, Some(reported))
                    }
                    _ => {
                        let columns = 5 + usize::from(with_reported);
                        return Err(error(
                            i + 1,
                            format!("expected {columns} fields, found {}", fields.len()),
                        ));
                    }
                };
            let suspicious = flag(i + 1, "suspicious", suspicious)?;
            let p_suspicious: f64 = p
                .parse()
                .map_err(|_| error(i + 1, format!("p_suspicious {p:?} is not a number")))?;
            if !(0.0..=1.0).contains(&p_suspicious) {
                return Err(error(i + 1, format!("p_suspicious {p} outside [0, 1]")));
            }
            let location = match location {
                "" | "-1" => None,
                id => Some(
                    id.parse()
                        .map_err(|_| error(i + 1, format!("location {id:?} is not a class id")))?,
                ),
            };
            let predicted_location = predicted.parse().map_err(|_| {
                error(
                    i + 1,
                    format!("predicted_location {predicted:?} is not a class id"),
                )
            })?;
            rows.push((
                subject.to_string(),
                Finding {
                    subject: 0,
                    suspicious,
                    p_suspicious,
                    location,
                    predicted_location,
                    reported,
                },
            ));
        }
        FindingSet::new(rows)
    }

    /// Writes the CSV that [`FindingSet::read_csv`] reads, with `reported` when known.
    pub fn write_csv(&self, path: &Path) -> Result<(), EvalError> {
        let mut text = String::from("subject,suspicious,p_suspicious,location,predicted_location");
        text.push_str(if self.reported.is_some() {
            ",reported\n"
        } else {
            "\n"
        });
        for f in &self.findings {
            let location = f.location.map(|l| l.to_string()).unwrap_or_default();
            text.push_str(&format!(
                "{},{},{},{},{}",
                self.subjects[f.subject],
                u8::from(f.suspicious),
                f.p_suspicious,
                location,
                f.predicted_location
            ));
            match f.reported {
                Some(called) => text.push_str(&format!(",{}\n", u8::from(called))),
                None => text.push('\n'),
            }
        }
        std::fs::write(path, text)?;
        Ok(())
    }
}

/// Weighted confusion counts and location hits.
#[derive(Debug, Clone, Copy, Default)]
struct Counts {
    true_positive: f64,
    false_positive: f64,
    false_negative: f64,
    located_suspicious: f64,
    correct_suspicious: f64,
    located: f64,
    correct: f64,
}

impl Counts {
    /// Counts `finding` `weight` times; `called`: reported suspicious at the operating point.
    fn add(&mut self, finding: &Finding, weight: f64, called: bool) {
        match (finding.suspicious, called) {
            (true, true) => self.true_positive += weight,
            (false, true) => self.false_positive += weight,
            (true, false) => self.false_negative += weight,
            (false, false) => {}
        }
        if let Some(location) = finding.location {
            let hit = if location == finding.predicted_location {
                weight
            } else {
                0.0
            };
            self.located += weight;
            self.correct += hit;
            if finding.suspicious {
                self.located_suspicious += weight;
                self.correct_suspicious += hit;
            }
        }
    }

    fn metrics(&self) -> Metrics {
        let ratio = |num: f64, den: f64| (den > 0.0).then(|| num / den);
        Metrics {
            average_precision: None,
            recall: ratio(self.true_positive, self.true_positive + self.false_negative),
            ppv: ratio(self.true_positive, self.true_positive + self.false_positive),
            true_positives: Some(self.true_positive),
            false_positives: Some(self.false_positive),
            false_negatives: Some(self.false_negative),
            accuracy_suspicious: ratio(self.correct_suspicious, self.located_suspicious),
            accuracy_all: ratio(self.correct, self.located),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finding(suspicious: bool, p: f64, location: Option<u32>, predicted: u32) -> Finding {
        Finding {
            subject: 0,
            suspicious,
            p_suspicious: p,
            location,
            predicted_location: predicted,
            reported: None,
        }
    }

    fn example() -> FindingSet {
        FindingSet::new(vec![
            ("a".into(), finding(true, 0.9, Some(21), 21)),
            ("a".into(), finding(false, 0.6, Some(10), 10)),
            ("b".into(), finding(true, 0.3, Some(16), 18)),
            ("b".into(), finding(false, 0.1, None, 3)),
            ("a".into(), finding(false, 0.2, Some(8), 9)),
        ])
        .unwrap()
    }

    #[test]
    fn pooled_counts_by_hand() {
        let set = example();
        assert_eq!(set.subjects, ["a", "b"]);
        let m = set.pooled(&[1.0, 1.0], OperatingPoints::single(0.5).into());
        assert_eq!(m.true_positives, Some(1.0));
        assert_eq!(m.false_positives, Some(1.0));
        assert_eq!(m.false_negatives, Some(1.0));
        assert_eq!(m.recall, Some(0.5));
        assert_eq!(m.ppv, Some(0.5));
        assert_eq!(m.accuracy_suspicious, Some(0.5));
        assert_eq!(m.accuracy_all, Some(0.5));
        // Ranking +, -, +, -, -  → 1/2·1 + 1/2·2/3
        assert!((m.average_precision.unwrap() - (0.5 + 1.0 / 3.0)).abs() < 1e-15);
    }

    #[test]
    fn per_subject_metrics_leave_undefined_out() {
        let set = example();
        let per = set.per_subject(OperatingPoints::single(0.5).into());
        assert_eq!(per[0].recall, Some(1.0));
        assert_eq!(per[1].recall, Some(0.0));
        assert_eq!(per[1].ppv, None);
        let summaries = set.per_subject_summaries(OperatingPoints::single(0.5).into());
        assert_eq!(summaries["ppv"].n, 1);
        assert_eq!(summaries["recall"].mean, 0.5);
    }

    #[test]
    fn distant_findings_use_the_distant_threshold() {
        // Predicted 21 (bone, M1b) and 10 (kidney, M1c) are distant; 18 (retroperitoneal node)
        // is M1a, distant too; 9 (spleen) M1c. Only "a"'s bone finding (0.9) reaches 0.85.
        let set = example();
        let point = OperatingPoints {
            threshold: 0.5,
            distant_threshold: 0.85,
        };
        let m = set.pooled(&[1.0, 1.0], point.into());
        assert_eq!(m.true_positives, Some(1.0));
        assert_eq!(m.false_positives, Some(0.0));
        assert_eq!(m.false_negatives, Some(1.0));
        // The ranking, and so AP, does not depend on the operating point.
        let single = set.pooled(&[1.0, 1.0], OperatingPoints::single(0.5).into());
        assert_eq!(m.average_precision, single.average_precision);
        // A regional finding (16, pelvic node) keeps the regional threshold.
        let regional = FindingSet::new(vec![("c".into(), finding(true, 0.6, Some(16), 16))])
            .unwrap()
            .pooled(&[1.0], point.into());
        assert_eq!(regional.true_positives, Some(1.0));
        assert_eq!(set.per_subject(point.into())[0].false_positives, Some(0.0));
    }

    #[test]
    fn reported_calls_are_counted_as_given_and_round_trip() {
        // The reports called "a"'s 0.6 finding not suspicious and "b"'s 0.3 one suspicious,
        // as a study-specific operating point would.
        let calls = [true, false, true, false, false];
        let rows = example()
            .findings
            .iter()
            .zip(calls)
            .zip(["a", "a", "b", "b", "a"])
            .map(|((f, called), name)| {
                let reported = Some(called);
                (
                    name.to_string(),
                    Finding {
                        reported,
                        ..f.clone()
                    },
                )
            })
            .collect::<Vec<_>>();
        let set = FindingSet::new(rows.clone()).unwrap();
        let m = set.pooled(&[1.0, 1.0], Calls::Reported);
        assert_eq!(m.true_positives, Some(2.0));
        assert_eq!(m.false_positives, Some(0.0));
        assert_eq!(m.false_negatives, Some(0.0));
        assert_eq!(set.per_subject(Calls::Reported)[1].recall, Some(1.0));
        // The threshold calls of the same findings differ.
        let at = set.pooled(&[1.0, 1.0], OperatingPoints::single(0.5).into());
        assert_eq!(at.true_positives, Some(1.0));
        let dir = std::env::temp_dir().join(format!("uptake-train-rep-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("findings.csv");
        set.write_csv(&path).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.starts_with(
                "subject,suspicious,p_suspicious,location,predicted_location,reported\n"
            )
        );
        assert_eq!(FindingSet::read_csv(&path).unwrap().findings, set.findings);
        std::fs::write(&path, text.replacen(",1\n", ",yes\n", 1)).unwrap();
        let err = FindingSet::read_csv(&path).unwrap_err().to_string();
        assert!(err.contains(":2: reported must be 0/1"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
        // Calls as reported need every finding's call.
        assert!(matches!(
            example().check(Calls::Reported),
            Err(EvalError::NotReported)
        ));
        assert!(example().check(OperatingPoints::single(0.5).into()).is_ok());
        let mut mixed = rows;
        mixed[0].1.reported = None;
        assert!(matches!(
            FindingSet::new(mixed),
            Err(EvalError::PartlyReported)
        ));
    }

    #[test]
    fn zero_weight_removes_a_subject() {
        let set = example();
        let m = set.pooled(&[0.0, 1.0], OperatingPoints::single(0.5).into());
        assert_eq!(m.true_positives, Some(0.0));
        assert_eq!(m.false_negatives, Some(1.0));
        assert_eq!(m.average_precision, Some(1.0));
    }

    #[test]
    fn csv_round_trip_and_errors() {
        let dir = std::env::temp_dir().join(format!("uptake-train-csv-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("findings.csv");
        let set = example();
        set.write_csv(&path).unwrap();
        let back = FindingSet::read_csv(&path).unwrap();
        assert_eq!(back.findings, set.findings);
        std::fs::write(
            &path,
            "subject,suspicious,p_suspicious,location,predicted_location\na,2,0.5,,1\n",
        )
        .unwrap();
        let err = FindingSet::read_csv(&path).unwrap_err().to_string();
        assert!(err.contains(":2: suspicious must be 0/1"), "{err}");
        std::fs::write(&path, "x\n").unwrap();
        assert!(FindingSet::read_csv(&path).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
