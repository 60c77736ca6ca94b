//! `uptake-train candidates --phantom-psma 10 --phantom-fdg 10 --phantom-seed 9700
//! --phantom-preset clinical,small --shape cap,basin --noise-units 0,1,2`
//!
//! The lesion recall ceiling of the candidate regions (issue #33): S4's regions alone and with
//! the sub-regions of every combination of the given parameters (`uptake::regions::subregions`),
//! on the same studies. No network runs: this measures which lesions the network could find at
//! all. Per setting it prints
//! * the own-region ceiling: lesions for which a candidate holds the lesion's hottest voxel and
//!   has at least half of its voxels in the lesion;
//! * the evaluation-rule ceiling: lesions some candidate is labelled with by the training rule
//!   (`data::label_regions`, which `predict` uses: the candidate's SUVmax voxel in the lesion, or
//!   half of its voxels in one lesion), i.e. lesions `predict` would count as reported or not
//!   called rather than lost in the regions;
//! * the lesions still lost, as `predict` names the fates (merged with a lesion, merged into
//!   physiological uptake, no region), by the finest candidate holding the hottest voxel;
//! * the extra candidates per study (sub-regions), their share of S4's regions, and the time the
//!   sub-region stage took per study.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Instant;

use uptake::Tracer;
use uptake::regions::{
    Region, SubregionParams, SubregionShape, segment, subregions as find_subregions,
};
use uptake::volume::Volume;
use uptake_train::data::{GroundTruth, RegionRef, label_regions};
use uptake_train::studies::AnnotatedStudy;

use super::CliResult;
use super::train::Cohort;

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    cohort: Cohort,
    /// Sub-region shapes to try (cap, basin).
    #[arg(long, value_delimiter = ',', default_value = "cap")]
    shape: Vec<String>,
    /// Least dynamic of a focus, SUV (each value tried).
    #[arg(long, value_delimiter = ',', default_value = "1")]
    min_dynamic: Vec<f32>,
    /// Least dynamic in units of √peak (each value tried).
    #[arg(long, value_delimiter = ',', default_value = "1")]
    noise_units: Vec<f32>,
    /// Least dynamic as a share of the peak (each value tried).
    #[arg(long, value_delimiter = ',', default_value = "0")]
    relative: Vec<f32>,
    /// Share of the dynamic above the saddle at which caps are cut (each value tried).
    #[arg(long, value_delimiter = ',', default_value = "0")]
    cap_fraction: Vec<f32>,
    /// Least voxels of a focus (each value tried).
    #[arg(long, value_delimiter = ',', default_value = "2")]
    min_voxels: Vec<u32>,
    /// Background radii of the contrast (0 = flood the SUV itself; caps only; each tried).
    #[arg(long, value_delimiter = ',', default_value = "0")]
    background_radius: Vec<u32>,
    /// Flood the smoothed SUV: on, off or both (each value tried).
    #[arg(long, value_delimiter = ',', default_value = "off")]
    smoothing: Vec<String>,
    /// Also write the table as CSV to this file.
    #[arg(long)]
    csv: Option<PathBuf>,
}

/// The settings of `args`: every combination of the listed values (caps only vary the cap
/// fraction).
fn settings(args: &Args) -> Result<Vec<SubregionParams>, String> {
    let mut out = Vec::new();
    for shape in &args.shape {
        let shape = match shape.trim() {
            "cap" => SubregionShape::Cap,
            "basin" => SubregionShape::Basin,
            other => return Err(format!("--shape: {other:?} is neither cap nor basin")),
        };
        let (fractions, radii): (&[f32], &[u32]) = match shape {
            SubregionShape::Cap => (&args.cap_fraction, &args.background_radius),
            SubregionShape::Basin => (&[0.0], &[0]),
        };
        for smoothing in &args.smoothing {
            let smoothing = match smoothing.trim() {
                "on" => true,
                "off" => false,
                other => return Err(format!("--smoothing: {other:?} is neither on nor off")),
            };
            for &min_dynamic_suv in &args.min_dynamic {
                for &noise_units in &args.noise_units {
                    for &min_relative_dynamic in &args.relative {
                        for &cap_fraction in fractions {
                            for (&min_voxels, &background_radius) in args
                                .min_voxels
                                .iter()
                                .flat_map(|v| radii.iter().map(move |r| (v, r)))
                            {
                                let params = SubregionParams {
                                    min_dynamic_suv,
                                    noise_units,
                                    min_relative_dynamic,
                                    min_voxels,
                                    cap_fraction,
                                    shape,
                                    smoothing,
                                    background_radius,
                                };
                                params.validate().map_err(|e| e.to_string())?;
                                out.push(params);
                            }
                        }
                    }
                }
            }
        }
    }
    Ok(out)
}

/// One setting's sums over the studies.
#[derive(Default, Clone)]
struct Tally {
    lesions: usize,
    own: usize,
    labelled: usize,
    merged_with_lesion: usize,
    merged_with_uptake: usize,
    no_region: usize,
    s4_regions: usize,
    extra: usize,
    seconds: f64,
}

/// A candidate label map's voxel counts: per candidate, and per (candidate, lesion).
struct Counts {
    size: BTreeMap<u32, usize>,
    in_lesion: BTreeMap<(u32, u32), usize>,
}

impl Counts {
    fn of(map: &Volume<u32>, lesions: &Volume<u32>) -> Self {
        let mut size = BTreeMap::new();
        let mut in_lesion = BTreeMap::new();
        for (&c, &l) in map.data().iter().zip(lesions.data()) {
            if c == 0 {
                continue;
            }
            *size.entry(c).or_default() += 1;
            if l != 0 {
                *in_lesion.entry((c, l)).or_default() += 1;
            }
        }
        Self { size, in_lesion }
    }

    /// Whether candidate `c` has at least half of its voxels in lesion `l`.
    fn mostly(&self, c: u32, l: u32) -> bool {
        let size = self.size.get(&c).copied().unwrap_or(0);
        let inside = self.in_lesion.get(&(c, l)).copied().unwrap_or(0);
        size > 0 && 2 * inside >= size
    }
}

/// The hottest voxel of every drawn lesion (highest finite SUV, ties: first in index order; a
/// lesion without a finite voxel: its first voxel), as `predict` finds it.
fn hottest_voxels(study: &AnnotatedStudy) -> BTreeMap<u32, usize> {
    let mut hottest: BTreeMap<u32, (Option<f32>, usize)> = BTreeMap::new();
    for (index, (&lesion, &suv)) in study
        .lesions
        .data()
        .iter()
        .zip(study.pet.data())
        .enumerate()
    {
        if lesion == 0 {
            continue;
        }
        let entry = hottest.entry(lesion).or_insert((None, index));
        if suv.is_finite() && entry.0.is_none_or(|max| suv > max) {
            *entry = (Some(suv), index);
        }
    }
    hottest.into_iter().map(|(l, (_, i))| (l, i)).collect()
}

fn refs(regions: impl Iterator<Item = Region>) -> Vec<RegionRef> {
    regions
        .map(|r| RegionRef {
            id: r.id,
            max_voxel: r.max_voxel,
            max_lps: r.max_lps,
            suv_max: r.suv_max,
        })
        .collect()
}

pub fn run(args: Args) -> CliResult {
    let settings = settings(&args)?;
    let params = args.cohort.region_params()?;
    let tracers = [Tracer::Psma, Tracer::Fdg];
    // Row 0: S4 alone; then one row per setting.
    let mut tallies = vec![Tally::default(); settings.len() + 1];
    let mut studies = 0usize;
    args.cohort
        .for_each_study(&tracers, "measuring candidates", |study| {
            studies += 1;
            let failed = |e: String| format!("{}: {e}", study.info.subject);
            let truth = GroundTruth {
                structures: &study.structures,
                lesions: &study.lesions,
                lesion_classes: &study.info.lesion_classes,
            };
            let s4 = segment(&study.pet, &params).map_err(|e| failed(e.to_string()))?;
            let s4_counts = Counts::of(&s4.labels, &study.lesions);
            let s4_labelled = label_regions(&refs(s4.regions.iter().cloned()), &s4.labels, &truth);
            // Whether each S4 region is labelled with a lesion, and the lesions labelled.
            let s4_suspicious: BTreeMap<u32, bool> = s4
                .regions
                .iter()
                .zip(&s4_labelled)
                .map(|(r, c)| (r.id, c.suspicious()))
                .collect();
            let s4_lesions: BTreeSet<u32> = s4_labelled.iter().filter_map(|c| c.lesion).collect();
            let hottest = hottest_voxels(&study);
            let s4_data = s4.labels.data();
            for (k, tally) in tallies.iter_mut().enumerate() {
                let t = Instant::now();
                let sub = match k {
                    0 => None,
                    _ => Some(
                        find_subregions(&study.pet, &s4, &params, &settings[k - 1])
                            .map_err(|e| failed(e.to_string()))?,
                    ),
                };
                tally.seconds += t.elapsed().as_secs_f64();
                let (sub_counts, sub_suspicious, sub_lesions) = match &sub {
                    None => (None, BTreeMap::new(), BTreeSet::new()),
                    Some(sub) => {
                        let labelled = label_regions(
                            &refs(sub.subregions.iter().map(|s| s.region.clone())),
                            &sub.labels,
                            &truth,
                        );
                        let suspicious = sub
                            .subregions
                            .iter()
                            .zip(&labelled)
                            .map(|(s, c)| (s.region.id, c.suspicious()))
                            .collect();
                        let lesions = labelled.iter().filter_map(|c| c.lesion).collect();
                        (
                            Some(Counts::of(&sub.labels, &study.lesions)),
                            suspicious,
                            lesions,
                        )
                    }
                };
                let sub_data = sub.as_ref().map(|s| s.labels.data());
                for (&lesion, &at) in &hottest {
                    tally.lesions += 1;
                    let in_sub = sub_data.map_or(0, |d| d[at]);
                    let in_s4 = s4_data[at];
                    let own = (in_s4 != 0 && s4_counts.mostly(in_s4, lesion))
                        || sub_counts
                            .as_ref()
                            .is_some_and(|c| in_sub != 0 && c.mostly(in_sub, lesion));
                    tally.own += usize::from(own);
                    if s4_lesions.contains(&lesion) || sub_lesions.contains(&lesion) {
                        tally.labelled += 1;
                    } else if in_sub != 0 {
                        if sub_suspicious[&in_sub] {
                            tally.merged_with_lesion += 1;
                        } else {
                            tally.merged_with_uptake += 1;
                        }
                    } else if in_s4 != 0 {
                        if s4_suspicious[&in_s4] {
                            tally.merged_with_lesion += 1;
                        } else {
                            tally.merged_with_uptake += 1;
                        }
                    } else {
                        tally.no_region += 1;
                    }
                }
                tally.s4_regions += s4.regions.len();
                tally.extra += sub.as_ref().map_or(0, |s| s.subregions.len());
            }
            Ok(())
        })?;

    let mut csv = "setting,shape,smoothing,min_dynamic_suv,noise_units,min_relative_dynamic,\
                   cap_fraction,min_voxels,background_radius,lesions,own_region,own_region_ceiling,labelled,\
                   evaluation_ceiling,merged_with_lesion,merged_with_uptake,no_region,\
                   extra_per_study,extra_share_of_s4,ms_per_study\n"
        .to_string();
    println!(
        "{studies} studies; ceilings over {} lesions",
        tallies[0].lesions
    );
    println!(
        "{:<50} {:>13} {:>13} {:>6} {:>6} {:>6} {:>8} {:>7} {:>7}",
        "setting",
        "own region",
        "eval. rule",
        "m_les",
        "m_upt",
        "no_reg",
        "extra/st",
        "share",
        "ms/st"
    );
    for (k, t) in tallies.iter().enumerate() {
        let (name, fields) = match k {
            0 => ("S4 alone".to_string(), ",,,,,,,".to_string()),
            _ => {
                let p = &settings[k - 1];
                let shape = match p.shape {
                    SubregionShape::Cap => "cap",
                    SubregionShape::Basin => "basin",
                };
                let smoothing = if p.smoothing { "on" } else { "off" };
                (
                    format!(
                        "{shape} h={} k={} r={} c={} v={} smooth={smoothing} R={}",
                        p.min_dynamic_suv,
                        p.noise_units,
                        p.min_relative_dynamic,
                        p.cap_fraction,
                        p.min_voxels,
                        p.background_radius
                    ),
                    format!(
                        "{shape},{smoothing},{},{},{},{},{},{}",
                        p.min_dynamic_suv,
                        p.noise_units,
                        p.min_relative_dynamic,
                        p.cap_fraction,
                        p.min_voxels,
                        p.background_radius
                    ),
                )
            }
        };
        let share = |a: usize| a as f64 / t.lesions.max(1) as f64;
        let extra = t.extra as f64 / studies.max(1) as f64;
        let extra_share = t.extra as f64 / t.s4_regions.max(1) as f64;
        let ms = 1e3 * t.seconds / studies.max(1) as f64;
        println!(
            "{name:<50} {:>5.3} {:>3}/{:<3} {:>5.3} {:>3}/{:<3} {:>6} {:>6} {:>6} {extra:>8.1} {extra_share:>7.3} {ms:>7.1}",
            share(t.own),
            t.own,
            t.lesions,
            share(t.labelled),
            t.labelled,
            t.lesions,
            t.merged_with_lesion,
            t.merged_with_uptake,
            t.no_region
        );
        let _ = writeln!(
            csv,
            "{name},{fields},{},{},{:.4},{},{:.4},{},{},{},{extra:.2},{extra_share:.4},{ms:.1}",
            t.lesions,
            t.own,
            share(t.own),
            t.labelled,
            share(t.labelled),
            t.merged_with_lesion,
            t.merged_with_uptake,
            t.no_region
        );
    }
    if let Some(path) = &args.csv {
        std::fs::write(path, csv).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok(())
}
