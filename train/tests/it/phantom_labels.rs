//! Candidate regions of a phantom study, labelled from its ground truth (docs/training.md).

use uptake::AnalyzeOptions;
use uptake::Tracer;
use uptake::regions::{RegionParams, Segmentation, segment, subregions};
use uptake_phantom::{Coverage, PhantomSpec, Preset, Study, generate};
use uptake_train::data::StudyCache;
use uptake_train::phantom_cohort::phantom_study;
use uptake_train::studies::cache_study;

#[test]
fn phantom_regions_are_labelled_by_lesion_overlap() {
    let seed = 1003;
    let study = phantom_study(Tracer::Psma, seed, Preset::Small).unwrap();
    let truth = generate(&PhantomSpec {
        tracer: Tracer::Psma,
        seed,
        preset: Preset::Small,
        coverage: Coverage::WholeBody,
    })
    .unwrap();
    // S4's default fraction and a higher one, which leaves more, smaller regions.
    let mut counts = Vec::new();
    for fraction in [0.45, 0.6] {
        let regions = RegionParams {
            fraction,
            ..RegionParams::default()
        };
        let cache = cache_study(&study, &regions).unwrap();
        let segmentation = segment(&truth.pet, &regions).unwrap();
        // The analysis's candidates: S4's regions, then the sub-regions.
        let params = AnalyzeOptions::default().subregions.unwrap();
        let sub = subregions(&truth.pet, &segmentation, &regions, &params).unwrap();
        assert_eq!(
            cache.candidates.len(),
            segmentation.regions.len() + sub.subregions.len(),
            "f {fraction}"
        );
        counts.push(cache.candidates.len());
        check_labels(&cache, &truth, &segmentation);
        assert_eq!(cache.subject, format!("psma-{seed:05}"));
    }
    assert!(
        counts[1] > counts[0],
        "regions at f 0.45 and 0.6: {counts:?}"
    );
}

fn check_labels(cache: &StudyCache, truth: &Study, segmentation: &Segmentation) {
    assert!(!cache.candidates.is_empty());
    // Independently: the S4 region holding each lesion's peak voxel must be a suspicious
    // candidate with that lesion's class, found at the region's SUVmax point.
    let g = truth.pet.geometry();
    let mut checked = 0;
    for lesion in &truth.lesions {
        let [x, y, z] = lesion.peak_voxel;
        let region_id = segmentation.labels.data()[g.index(x, y, z)];
        let Some(region) = segmentation.regions.iter().find(|r| r.id == region_id) else {
            continue;
        };
        // Only when the region's own maximum is in this lesion is the label unambiguous.
        let [mx, my, mz] = region.max_voxel;
        if truth.pet_lesions.data()[g.index(mx, my, mz)] != lesion.id {
            continue;
        }
        let candidate = cache
            .candidates
            .iter()
            .find(|c| c.centre_lps == region.max_lps)
            .expect("every region is a candidate");
        assert!(
            candidate.suspicious(),
            "lesion {} at {:?}",
            lesion.id,
            lesion.site
        );
        assert_eq!(candidate.location, Some(lesion.class_id));
        checked += 1;
    }
    assert!(checked > 0, "no lesion was found as a region");
    // Regions away from lesions are physiological, with a known location for most.
    let physiological: Vec<_> = cache
        .candidates
        .iter()
        .filter(|c| !c.suspicious())
        .collect();
    assert!(!physiological.is_empty());
    let known = physiological
        .iter()
        .filter(|c| c.location.is_some())
        .count();
    assert!(
        2 * known > physiological.len(),
        "{known} of {}",
        physiological.len()
    );
}
