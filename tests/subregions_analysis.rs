//! The sub-region stage inside the whole analysis (issue #33): on a synthetic study whose lesion
//! touches a brighter organ, sub-regions only add findings. S4's regions and their findings
//! stay the same as in an analysis with the stage switched off, bit for bit, the extra
//! findings are marked as sub-regions of an S4 region with ids after S4's, and with the stage
//! off there are none and no sub-region map.

use std::collections::BTreeSet;
use std::sync::OnceLock;

use uptake::Tracer;
use uptake::analyzer::{AnalyzeOptions, Analyzer, AnalyzerConfig, Device};
use uptake::findings::{Finding, Source};
use uptake::regions::{self, RegionParams};
use uptake::report::Report;
use uptake::volume::{Geometry, Volume};

const DIMS: [usize; 3] = [48, 24, 20];
/// The lesion beside the organ (voxel), its own SUVmax.
const LESION: [usize; 3] = [13, 12, 10];
/// An isolated lesion: an S4 region of its own.
const ISOLATED: [usize; 3] = [36, 12, 10];

fn analyzer() -> &'static Analyzer {
    static A: OnceLock<Analyzer> = OnceLock::new();
    A.get_or_init(|| {
        Analyzer::new(AnalyzerConfig {
            device: Device::Cpu,
            threads: 2,
            ..AnalyzerConfig::default()
        })
        .unwrap()
    })
}

/// A 48 × 24 × 20 PET of 2 mm voxels on a background of 0.2 SUV: a uniform organ of SUV 16
/// (x 2–10, y 6–18, z 5–15) blurred three times by the binomial 1 2 1 along each axis, a
/// Gaussian lesion of peak 14 SUV (σ 1.3 voxels) at [`LESION`], just beyond the organ's edge,
/// and an isolated one of 9 SUV at [`ISOLATED`]. S4 merges the first lesion into the organ
/// (the voxels between them stay above 45 % of the organ's SUVmax); its dynamic, about 4.4 SUV
/// above the saddle, passes the default sub-region thresholds. With a flat CT of 40 HU.
fn study() -> &'static (Volume<f32>, Volume<f32>) {
    static S: OnceLock<(Volume<f32>, Volume<f32>)> = OnceLock::new();
    S.get_or_init(|| {
        let geometry = Geometry::axis_aligned(DIMS, [2.0; 3], [-48.0, -24.0, -20.0]).unwrap();
        let mut organ: Vec<f64> = (0..geometry.len())
            .map(|i| {
                let [x, y, z] = geometry.coords(i);
                let inside =
                    (2..=10).contains(&x) && (6..=18).contains(&y) && (5..=15).contains(&z);
                if inside { 16.0 } else { 0.0 }
            })
            .collect();
        let strides = [1, DIMS[0], DIMS[0] * DIMS[1]];
        for _ in 0..3 {
            for axis in 0..3 {
                organ = (0..organ.len())
                    .map(|i| {
                        let c = geometry.coords(i)[axis];
                        let below = if c > 0 { organ[i - strides[axis]] } else { 0.0 };
                        let above = if c + 1 < DIMS[axis] {
                            organ[i + strides[axis]]
                        } else {
                            0.0
                        };
                        (below + 2.0 * organ[i] + above) / 4.0
                    })
                    .collect();
            }
        }
        let lesions = [(LESION, 14.0, 1.3), (ISOLATED, 9.0, 1.5)];
        let data = organ
            .iter()
            .enumerate()
            .map(|(i, &o)| {
                let c = geometry.coords(i);
                let lesion: f64 = lesions
                    .iter()
                    .map(|&(centre, peak, sigma)| {
                        let d2: f64 = (0..3)
                            .map(|a| (c[a] as f64 - centre[a] as f64).powi(2))
                            .sum();
                        peak * (-d2 / (2.0 * sigma * sigma)).exp()
                    })
                    .sum();
                (0.2 + o + lesion) as f32
            })
            .collect();
        let pet = Volume::new(geometry, data).unwrap();
        let ct = Volume::filled(geometry, 40.0f32);
        (pet, ct)
    })
}

/// The study analysed with the sub-region stage at its defaults (on) and switched off.
fn reports() -> &'static (Report, Report) {
    static R: OnceLock<(Report, Report)> = OnceLock::new();
    R.get_or_init(|| {
        let (pet, ct) = study();
        let on = AnalyzeOptions::default();
        assert!(on.subregions.is_some(), "the stage is on by default");
        let off = AnalyzeOptions {
            subregions: None,
            ..AnalyzeOptions::default()
        };
        let analyze =
            |options: &AnalyzeOptions| analyzer().analyze(pet, ct, Tracer::Psma, options).unwrap();
        (analyze(&on), analyze(&off))
    })
}

fn s4_findings(report: &Report) -> Vec<&Finding> {
    report
        .findings
        .iter()
        .filter(|f| f.source == Source::S4)
        .collect()
}

#[test]
fn s4_regions_and_their_findings_do_not_change_with_sub_regions_on() {
    let (pet, _) = study();
    let (on, off) = reports();
    let s4 = regions::segment(pet, &AnalyzeOptions::default().regions).unwrap();
    assert_eq!(AnalyzeOptions::default().regions, RegionParams::default());
    // The lesion beside the organ lies in the organ's region; the isolated one has its own.
    let label = |v: [usize; 3]| s4.labels.data()[pet.geometry().index(v[0], v[1], v[2])];
    assert_eq!(s4.regions.len(), 2, "{:?}", s4.regions);
    assert_ne!(label(LESION), 0);
    assert_ne!(label(LESION), label(ISOLATED));
    let organ = &s4.regions[label(LESION) as usize - 1];
    assert_ne!(organ.max_voxel, LESION, "the organ is brighter: {organ:?}");
    assert!(organ.suv_max > pet.data()[pet.geometry().index(13, 12, 10)]);

    for (name, report) in [("on", on), ("off", off)] {
        let labels = report.label_map.as_ref().unwrap();
        assert_eq!(labels.geometry(), s4.labels.geometry(), "{name}");
        assert!(labels.data() == s4.labels.data(), "{name}: label map");
        // One S4 finding per segmented region, with S4's statistics exactly.
        let mut found: Vec<_> = s4_findings(report)
            .into_iter()
            .map(|f| f.region.clone())
            .collect();
        found.sort_by_key(|r| r.id);
        assert_eq!(found, s4.regions, "{name}");
        for f in s4_findings(report) {
            assert_eq!(f.parent, None, "{name}: {f:?}");
        }
    }
    // The S4 findings of both reports, in report order (which sorts by p_suspicious, then
    // id), are the same bit for bit: statistics, probabilities, locations, roles and
    // expression scores. (The CPU engine's float results may depend on a batch's size; S4's
    // regions are classified in batches of their own for this.)
    let (on_s4, off_s4) = (s4_findings(on), s4_findings(off));
    assert_eq!(on_s4.len(), off_s4.len());
    for (a, b) in on_s4.iter().zip(&off_s4) {
        let id = a.region.id;
        assert_eq!(a, b, "region {id}");
        assert_eq!(region_bits(a), region_bits(b), "region {id}");
        assert_eq!(probability_bits(a), probability_bits(b), "region {id}");
    }
}

/// Every f32 of a finding's classification, as bits.
fn probability_bits(f: &Finding) -> [u32; 5] {
    [
        f.p_suspicious,
        f.location.probability,
        f.top3[0].probability,
        f.top3[1].probability,
        f.top3[2].probability,
    ]
    .map(f32::to_bits)
}

/// The floating-point statistics of a finding's region, as bits: equal values are not enough.
fn region_bits(f: &Finding) -> [u64; 5] {
    let r = &f.region;
    [
        u64::from(r.suv_max.to_bits()),
        r.suv_mean.to_bits(),
        r.suv_peak.to_bits(),
        r.volume_ml.to_bits(),
        r.total_uptake.to_bits(),
    ]
}

#[test]
fn sub_region_findings_follow_the_s4_ones_and_name_their_parent() {
    let (pet, _) = study();
    let (on, _) = reports();
    let s4_ids: BTreeSet<u32> = s4_findings(on).iter().map(|f| f.region.id).collect();
    let s4_count = s4_ids.len() as u32;
    assert_eq!(s4_ids, (1..=s4_count).collect(), "S4 ids are 1 … n");
    let subs: Vec<&Finding> = on
        .findings
        .iter()
        .filter(|f| f.source == Source::Subregion)
        .collect();
    assert_eq!(
        on.findings.len(),
        s4_ids.len() + subs.len(),
        "every finding is one or the other"
    );
    assert!(!subs.is_empty(), "the lesion beside the organ is proposed");
    // Ids continue after S4's, by descending SUVmax (ties: the maximum's linear index).
    let mut by_id = subs.clone();
    by_id.sort_by_key(|f| f.region.id);
    let ids: Vec<u32> = by_id.iter().map(|f| f.region.id).collect();
    let expected: Vec<u32> = (s4_count + 1..=s4_count + subs.len() as u32).collect();
    assert_eq!(ids, expected);
    let geometry = pet.geometry();
    let linear = |v: [usize; 3]| geometry.index(v[0], v[1], v[2]);
    for w in by_id.windows(2) {
        let (a, b) = (&w[0].region, &w[1].region);
        assert!(
            a.suv_max > b.suv_max
                || (a.suv_max == b.suv_max && linear(a.max_voxel) < linear(b.max_voxel)),
            "{a:?} before {b:?}"
        );
    }

    let labels = on.label_map.as_ref().unwrap().data();
    let map = on
        .subregion_map
        .as_ref()
        .expect("a sub-region map with the stage on");
    assert_eq!(map.geometry(), geometry);
    let mapped: BTreeSet<u32> = map.data().iter().copied().filter(|&l| l != 0).collect();
    assert_eq!(
        mapped,
        ids.iter().copied().collect(),
        "map labels = sub-region ids"
    );
    for f in &subs {
        let parent = f.parent.expect("a sub-region names its parent");
        assert!(s4_ids.contains(&parent), "{f:?}");
        // Its voxels in the map are as many as it counts and all lie in its parent, which
        // keeps its own SUVmax voxel.
        let mut voxels = 0u64;
        for (i, &l) in map.data().iter().enumerate() {
            if l == f.region.id {
                assert_eq!(labels[i], parent, "sub-region {} voxel {i}", f.region.id);
                voxels += 1;
            }
        }
        assert_eq!(voxels, f.region.voxel_count, "{f:?}");
        assert_eq!(map.data()[linear(f.region.max_voxel)], f.region.id);
        let parent_max = on
            .findings
            .iter()
            .find(|p| p.region.id == parent)
            .unwrap()
            .region
            .max_voxel;
        assert_eq!(map.data()[linear(parent_max)], 0, "{f:?}");
        let [x, y, z] = f.region.max_voxel;
        assert_eq!(f.region.suv_max, pet.data()[geometry.index(x, y, z)]);
    }
    // The lesion beside the organ is one of them, a sub-region of the organ's region.
    let lesion = subs
        .iter()
        .find(|f| f.region.max_voxel == LESION)
        .unwrap_or_else(|| panic!("no sub-region at the lesion: {subs:?}"));
    assert_eq!(lesion.parent, Some(labels[linear(LESION)]));
    // The isolated lesion is an S4 region with nothing inside it.
    let isolated = labels[linear(ISOLATED)];
    assert!(subs.iter().all(|f| f.parent != Some(isolated)));
}

#[test]
fn with_the_stage_off_there_are_no_sub_regions() {
    let (_, off) = reports();
    assert!(off.subregion_map.is_none());
    assert!(!off.findings.is_empty());
    for f in &off.findings {
        assert_eq!((f.source, f.parent), (Source::S4, None), "{f:?}");
    }
    // The JSON says so too: no "parent", every source "s4".
    let json: serde_json::Value = serde_json::from_str(&off.to_json().unwrap()).unwrap();
    for f in json["findings"].as_array().unwrap() {
        assert_eq!(f["source"], "s4");
        assert!(f.get("parent").is_none(), "{f}");
    }
}
