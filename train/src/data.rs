//! Training examples: candidate regions labelled from ground truth, and per-epoch sampling.
//!
//! Labelling (documented in `docs/training.md`): a candidate region (S4) is **suspicious** when
//! its SUVmax voxel lies inside a lesion, or when at least half of its voxels lie inside one
//! lesion; its location is then that lesion's S6 class. Otherwise it is **physiological**, and its
//! location is the ground-truth structure class at the SUVmax voxel, or, where that voxel is
//! unlabelled, the most frequent structure class among its 26 neighbours (ties: lower class id);
//! with no labelled voxel there the location is unknown and masked from the loss.

use std::collections::BTreeMap;

use rand::Rng;
use rand::seq::SliceRandom;
use uptake::Tracer;
use uptake::volume::Volume;

/// A region as the labelling needs it (from `regions::segment`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RegionRef {
    /// Label value of the region in the label map.
    pub id: u32,
    pub max_voxel: [usize; 3],
    pub max_lps: [f64; 3],
    pub suv_max: f32,
}

/// Ground truth on the native PET grid.
pub struct GroundTruth<'a> {
    /// S6 class id + 1 per voxel; 0 where no structure is labelled.
    pub structures: &'a Volume<u32>,
    /// Lesion number per voxel (1-based); 0 outside lesions.
    pub lesions: &'a Volume<u32>,
    /// S6 class of lesion number k at index k − 1.
    pub lesion_classes: &'a [u32],
}

/// One training or evaluation example.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Candidate {
    /// SUVmax point (patient LPS, mm): the reformation centre.
    pub centre_lps: [f64; 3],
    pub suv_max: f32,
    /// The lesion (1-based number) the region is labelled with; `None` for physiological uptake.
    pub lesion: Option<u32>,
    /// S6 class; `None` when the ground truth cannot say.
    pub location: Option<u32>,
}

impl Candidate {
    pub fn suspicious(&self) -> bool {
        self.lesion.is_some()
    }
}

/// Labels every region of `region_labels` (the S4 label map) against `truth`.
pub fn label_regions(
    regions: &[RegionRef],
    region_labels: &Volume<u32>,
    truth: &GroundTruth<'_>,
) -> Vec<Candidate> {
    // Voxels per region and, per region, voxels in each lesion.
    let mut size: BTreeMap<u32, usize> = BTreeMap::new();
    let mut in_lesion: BTreeMap<(u32, u32), usize> = BTreeMap::new();
    for (&region, &lesion) in region_labels.data().iter().zip(truth.lesions.data()) {
        if region == 0 {
            continue;
        }
        *size.entry(region).or_default() += 1;
        if lesion != 0 {
            *in_lesion.entry((region, lesion)).or_default() += 1;
        }
    }
    let lesion_class = |lesion: u32| {
        truth
            .lesion_classes
            .get(lesion.wrapping_sub(1) as usize)
            .copied()
    };
    regions
        .iter()
        .map(|r| {
            let geometry = truth.lesions.geometry();
            let [x, y, z] = r.max_voxel;
            let at_max = truth.lesions.data()[geometry.index(x, y, z)];
            let half = size.get(&r.id).copied().unwrap_or(0);
            let majority_lesion = in_lesion
                .range((r.id, 0)..=(r.id, u32::MAX))
                .find(|(_, count)| 2 * **count >= half && half > 0)
                .map(|((_, lesion), _)| *lesion);
            let lesion = if at_max != 0 {
                Some(at_max)
            } else {
                majority_lesion
            };
            match lesion {
                Some(l) => Candidate {
                    centre_lps: r.max_lps,
                    suv_max: r.suv_max,
                    lesion: Some(l),
                    location: lesion_class(l),
                },
                None => Candidate {
                    centre_lps: r.max_lps,
                    suv_max: r.suv_max,
                    lesion: None,
                    location: structure_at(truth.structures, r.max_voxel),
                },
            }
        })
        .collect()
}

/// Structure class at `voxel`, else the most frequent among its 26 neighbours.
fn structure_at(structures: &Volume<u32>, voxel: [usize; 3]) -> Option<u32> {
    let geometry = structures.geometry();
    let dims = geometry.dims();
    let [x, y, z] = voxel;
    let centre = structures.data()[geometry.index(x, y, z)];
    if centre != 0 {
        return Some(centre - 1);
    }
    let mut votes: BTreeMap<u32, usize> = BTreeMap::new();
    for dz in -1i64..=1 {
        for dy in -1i64..=1 {
            for dx in -1i64..=1 {
                let p = [x as i64 + dx, y as i64 + dy, z as i64 + dz];
                if p.iter().zip(dims).any(|(&c, d)| c < 0 || c >= d as i64) {
                    continue;
                }
                let label =
                    structures.data()[geometry.index(p[0] as usize, p[1] as usize, p[2] as usize)];
                if label != 0 {
                    *votes.entry(label - 1).or_default() += 1;
                }
            }
        }
    }
    // Highest count; among equals the lowest class id (BTreeMap order, strict comparison).
    let mut best: Option<(u32, usize)> = None;
    for (class, count) in votes {
        if best.is_none_or(|(_, c)| count > c) {
            best = Some((class, count));
        }
    }
    best.map(|(class, _)| class)
}

/// The cached, unchanging part of a study (DESIGN S12): 3 mm grids and labelled candidates.
#[derive(Debug, Clone)]
pub struct StudyCache {
    pub subject: String,
    pub tracer: Tracer,
    pub pet3: Volume<f32>,
    pub ct3: Volume<f32>,
    pub candidates: Vec<Candidate>,
}

/// How examples are drawn each epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sampling {
    /// Every example once per epoch, in shuffled order (strategy I).
    Sequential,
    /// Per subject and epoch (strategies II–VI): in each location class (unknown counts as one
    /// more class), at most `per_location` suspicious and at most `per_location` physiological
    /// examples at random; then at most `max_suspicious` suspicious and `max_physiological`
    /// physiological of those, at random.
    Balanced {
        max_physiological: usize,
        max_suspicious: usize,
        per_location: usize,
    },
}

impl Sampling {
    /// The paper's limits: 32 physiological, 32 suspicious, 4 per location class.
    pub const PAPER_BALANCED: Sampling = Sampling::Balanced {
        max_physiological: 32,
        max_suspicious: 32,
        per_location: 4,
    };
}

/// (study, candidate) pairs of one epoch, in random order.
pub fn epoch_examples(
    studies: &[StudyCache],
    sampling: Sampling,
    rng: &mut impl Rng,
) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    for (s, study) in studies.iter().enumerate() {
        match sampling {
            Sampling::Sequential => out.extend((0..study.candidates.len()).map(|c| (s, c))),
            Sampling::Balanced {
                max_physiological,
                max_suspicious,
                per_location,
            } => {
                for (suspicious, cap) in [(false, max_physiological), (true, max_suspicious)] {
                    let mut strata: BTreeMap<Option<u32>, Vec<usize>> = BTreeMap::new();
                    for (c, cand) in study.candidates.iter().enumerate() {
                        if cand.suspicious() == suspicious {
                            strata.entry(cand.location).or_default().push(c);
                        }
                    }
                    let mut chosen = Vec::new();
                    for members in strata.values_mut() {
                        members.shuffle(rng);
                        chosen.extend(members.iter().take(per_location).copied());
                    }
                    chosen.shuffle(rng);
                    out.extend(chosen.into_iter().take(cap).map(|c| (s, c)));
                }
            }
        }
    }
    out.shuffle(rng);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;
    use uptake::Geometry;

    fn volume(values: Vec<u32>) -> Volume<u32> {
        let g = Geometry::axis_aligned([4, 3, 1], [2.0; 3], [0.0; 3]).unwrap();
        Volume::new(g, values).unwrap()
    }

    fn region(id: u32, max_voxel: [usize; 3]) -> RegionRef {
        RegionRef {
            id,
            max_voxel,
            max_lps: [0.0; 3],
            suv_max: 5.0,
        }
    }

    #[test]
    fn lesion_at_max_or_by_half_of_voxels() {
        // Row-major x fastest, 4 × 3 × 1.
        let regions = volume(vec![1, 1, 0, 2, 1, 1, 0, 2, 3, 3, 0, 0]);
        let lesions = volume(vec![0, 0, 0, 1, 2, 2, 0, 0, 0, 0, 0, 0]);
        let structures = volume(vec![9, 9, 9, 17, 0, 0, 0, 0, 0, 22, 0, 0]);
        let truth = GroundTruth {
            structures: &structures,
            lesions: &lesions,
            lesion_classes: &[16, 21],
        };
        let c = label_regions(
            &[
                region(1, [0, 0, 0]),
                region(2, [3, 1, 0]),
                region(3, [0, 2, 0]),
            ],
            &regions,
            &truth,
        );
        // Region 1: max outside lesions, 2 of 4 voxels in lesion 2 → suspicious, bone (21).
        assert_eq!(c[0].lesion, Some(2));
        assert_eq!(c[0].location, Some(21));
        // Region 2: max outside, 1 of 2 voxels in lesion 1 → suspicious, ln_pelvic (16).
        assert_eq!(c[1].lesion, Some(1));
        assert_eq!(c[1].location, Some(16));
        // Region 3: no lesion; structure 0 at max, neighbours: 0,0 (x=0,1,y=1) 22 at (1,2) → 21.
        assert!(!c[2].suspicious());
        assert_eq!(c[2].location, Some(21));
    }

    #[test]
    fn unknown_location_without_labelled_neighbours() {
        let zeros = volume(vec![0; 12]);
        let mut regions = vec![0; 12];
        regions[5] = 1;
        let truth = GroundTruth {
            structures: &zeros,
            lesions: &zeros,
            lesion_classes: &[],
        };
        let c = label_regions(&[region(1, [1, 1, 0])], &volume(regions), &truth);
        assert_eq!(c[0].location, None);
        assert!(!c[0].suspicious());
    }

    #[test]
    fn balanced_sampling_respects_limits() {
        let g = Geometry::axis_aligned([1, 1, 1], [3.0; 3], [0.0; 3]).unwrap();
        let candidate = |suspicious: bool, location| Candidate {
            centre_lps: [0.0; 3],
            suv_max: 2.0,
            lesion: suspicious.then_some(1),
            location,
        };
        let mut candidates = Vec::new();
        for class in 0..12 {
            for _ in 0..10 {
                candidates.push(candidate(false, Some(class)));
            }
        }
        for _ in 0..50 {
            candidates.push(candidate(true, Some(21)));
        }
        candidates.push(candidate(true, None));
        let study = StudyCache {
            subject: "s".into(),
            tracer: Tracer::Psma,
            pet3: Volume::filled(g, 0.0),
            ct3: Volume::filled(g, 0.0),
            candidates,
        };
        let studies = [study];
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let picked = epoch_examples(&studies, Sampling::PAPER_BALANCED, &mut rng);
        let cands = &studies[0].candidates;
        let physiological = picked
            .iter()
            .filter(|(_, c)| !cands[*c].suspicious())
            .count();
        let suspicious = picked.len() - physiological;
        // 12 classes × 4 = 48 physiological capped at 32; bone 4 + unknown 1 suspicious.
        assert_eq!(physiological, 32);
        assert_eq!(suspicious, 5);
        let mut unique = picked.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), picked.len());
        for class in 0..12 {
            let n = picked
                .iter()
                .filter(|(_, c)| !cands[*c].suspicious() && cands[*c].location == Some(class))
                .count();
            assert!(n <= 4);
        }
        let all = epoch_examples(&studies, Sampling::Sequential, &mut rng);
        assert_eq!(all.len(), cands.len());
    }
}
