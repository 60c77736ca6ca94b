//! Sub-regions (issue #33): a second candidate stage after S4 that proposes the uptake foci an
//! S4 region swallowed.
//!
//! S4 merges two foci as soon as the voxels between them reach 45 % of the brighter one's
//! SUVmax, so a node beside a ureter or a bone lesion beside the bladder becomes part of the
//! brighter region, whose SUVmax (the network's centre) lies in the organ. This stage looks
//! inside every S4 region, without changing it, for secondary maxima that stand out of their
//! surroundings, and proposes one extra candidate region for each.
//!
//! # Foci: maxima by their dynamic
//! Within one S4 region the voxels are flooded in order of decreasing value (the SUV, or with
//! `smoothing` the SUV under a 3 × 3 × 3 binomial kernel), ties by increasing linear index, with
//! S4's connectivity, restricted to the region's own voxels. A voxel without a flooded
//! neighbour starts a component (a local maximum); where components meet, the one with the
//! lower peak ends (the elder rule) at the *saddle* value s of the voxel joining them. Its
//! *dynamic* is peak − s, the height by which the maximum stands above the pass to brighter
//! uptake (the h-maxima of mathematical morphology are the maxima of dynamic ≥ h):
//!
//! ```text
//!   SUV
//!    │      ╭╮  organ (the region's SUVmax)
//!    │     ╭╯╰╮        ╭╮  focus: peak p
//!    │    ╭╯  ╰╮      ╭╯╰╮
//!    │   ╭╯    ╰──────╯  ╰╮  ── saddle s: dynamic = p − s
//!    │ ──╯        S4 region ╰── 45 % of the organ's SUVmax
//!    └──────────────────────────────
//! ```
//!
//! A component is a *focus* when its peak exceeds S4's seed minimum, its dynamic reaches
//! `max(min_dynamic_suv, noise_units·√peak, min_relative_dynamic·peak)` and it held at least
//! `min_voxels` voxels when it ended. The √peak term follows the noise of PET: counts are
//! Poisson, so the standard deviation of a voxel grows like the square root of its value, and
//! a threshold in noise units has to grow with it (hot organs have deeper noise maxima).
//!
//! # The sub-region of a focus
//! * [`SubregionShape::Cap`]: the voxels of the region connected to the focus's peak through
//!   values above `s + cap_fraction·(p − s)`: S4's own rule ("a region is the voxels above a
//!   fraction of its peak") applied to the focus above its saddle instead of above zero. Caps
//!   of one region are nested or disjoint (they are components of upper level sets); a voxel
//!   belongs to the smallest cap that holds it.
//! * [`SubregionShape::Basin`]: the focus's catchment basin of a watershed seeded at the foci
//!   and at the region's SUVmax, flooding the region in the same order: every voxel of the
//!   region joins the basin of its brightest flooded neighbour; other maxima merge freely.
//!
//! Either way the sub-regions are disjoint, lie inside their parent region and never hold the
//! parent's SUVmax voxel, so one label map ([`Subregions::labels`]) holds them all. Their
//! statistics are measured as S4's are (`stats.rs`): SUVmax, SUVpeak and the rest on the SUV
//! itself, whatever the flooding read. Ids continue after the S4 regions' ids, in order of
//! descending SUVmax (ties: the maximum's linear index).
//!
//! # Cost
//! One volume-sized `u32` map (each voxel's slot in the regions' voxel lists, later the
//! sub-region labels; only the pages that hold region voxels are written), one pass over S4's
//! label map, the regions' voxel lists (4 bytes per region voxel) and, per region being
//! flooded, about 24 bytes per voxel. Regions are flooded in parallel; the result does not
//! depend on the number of threads.

use std::collections::VecDeque;

use rayon::prelude::*;
use serde::Serialize;
use thiserror::Error;

use super::stats::label_and_measure;
use super::sweep::{candidate_key, voxel_of};
use super::{Region, RegionParams, Segmentation};
use crate::volume::{Volume, VolumeError};

/// Most bytes per PET voxel the stage allocates: the slot map that becomes the label map
/// (4) and the regions' voxel lists (4), and per region voxel while its region floods at most
/// 72 (69 counted): values, order, rank (4 each), two union-find forests (8 each), the ended components and
/// references to the foci (12 + 8), the seeds or the caps' queue, marks and list (4 + 1 + 4 + 4)
/// and the owners and foci's voxel lists (4 + 4). Regions flood in parallel but are disjoint, so
/// every voxel of the volume in a region is the worst case.
pub(crate) const SUBREGIONS_BYTES_PER_VOXEL: u64 = 80;

/// Which voxels around a focus form its sub-region.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SubregionShape {
    /// The connected voxels above `saddle + cap_fraction·(peak − saddle)`.
    #[default]
    Cap,
    /// The focus's catchment basin within its region.
    Basin,
}

/// Parameters of the sub-region stage (module docs).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct SubregionParams {
    /// Least dynamic (peak − saddle) of a focus, SUV.
    pub min_dynamic_suv: f32,
    /// Least dynamic in units of √peak (SUV^½): noise grows like the square root of uptake.
    pub noise_units: f32,
    /// Least dynamic as a share of the focus's peak.
    pub min_relative_dynamic: f32,
    /// Least voxels of a focus's component when it meets brighter uptake, and of its cap.
    pub min_voxels: u32,
    /// Share of the dynamic above the saddle at which a cap is cut, in [0, 1).
    pub cap_fraction: f32,
    pub shape: SubregionShape,
    /// Flood the SUV under a 3 × 3 × 3 binomial kernel (1 2 1 along each axis), which removes
    /// most single-voxel noise maxima.
    pub smoothing: bool,
    /// With R > 0, flood the local contrast instead of the SUV: the value above minus the mean
    /// SUV of the (2R + 1)³ voxels around the voxel (those inside the volume). A linear slope
    /// of the SUV cancels, so a lesion on the flank of brighter uptake, which has no maximum of
    /// its own in the SUV, has one in the contrast; the region's brightest contrast is then a
    /// focus too, unless its cap holds the region's SUVmax. Caps only.
    pub background_radius: u32,
}

/// The defaults were chosen on phantoms (seeds 9700–9719, 10 PSMA + 10 FDG) by a rule written
/// before measuring: the most lesions with a candidate of their own, with at most 15 % more
/// candidates than S4's; `uptake-train candidates` measures any setting (docs/training.md).
impl Default for SubregionParams {
    fn default() -> Self {
        Self {
            min_dynamic_suv: 1.0,
            noise_units: 0.75,
            min_relative_dynamic: 0.0,
            min_voxels: 2,
            cap_fraction: 0.45,
            shape: SubregionShape::Cap,
            smoothing: false,
            background_radius: 0,
        }
    }
}

impl SubregionParams {
    /// Checks every field.
    pub fn validate(&self) -> Result<(), SubregionsError> {
        let bad = |name: &str, value: f32, range: &str| {
            Err(SubregionsError::BadParameter(format!(
                "{name} = {value}; expected {range}"
            )))
        };
        for (name, value) in [
            ("min_dynamic_suv", self.min_dynamic_suv),
            ("noise_units", self.noise_units),
        ] {
            if !(value.is_finite() && value >= 0.0) {
                return bad(name, value, "a finite value ≥ 0");
            }
        }
        if !(0.0..=1.0).contains(&self.min_relative_dynamic) {
            return bad(
                "min_relative_dynamic",
                self.min_relative_dynamic,
                "a share in [0, 1]",
            );
        }
        if !(0.0..1.0).contains(&self.cap_fraction) {
            return bad("cap_fraction", self.cap_fraction, "a share in [0, 1)");
        }
        if self.background_radius > MAX_BACKGROUND_RADIUS {
            return Err(SubregionsError::BadParameter(format!(
                "background_radius = {}; at most {MAX_BACKGROUND_RADIUS}",
                self.background_radius
            )));
        }
        if self.background_radius > 0 && self.shape == SubregionShape::Basin {
            return Err(SubregionsError::BadParameter(
                "background_radius > 0 needs caps: a basin of the contrast has no meaning".into(),
            ));
        }
        Ok(())
    }

    /// Least dynamic of a focus whose peak is `peak`.
    fn min_dynamic(&self, peak: f32) -> f32 {
        self.min_dynamic_suv
            .max(self.noise_units * peak.max(0.0).sqrt())
            .max(self.min_relative_dynamic * peak)
    }
}

/// Largest background radius: a box of 15³ voxels (6 cm at 4 mm) is far larger than a lesion.
const MAX_BACKGROUND_RADIUS: u32 = 7;

/// Why this stage rejected its input.
#[derive(Debug, Error)]
pub enum SubregionsError {
    #[error(transparent)]
    Volume(#[from] VolumeError),
    #[error("sub-region parameters: {0}")]
    BadParameter(String),
    #[error("the segmentation does not belong to this PET: {0}")]
    Mismatch(String),
}

/// One sub-region: a focus inside an S4 region and its statistics.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Subregion {
    /// Statistics as S4 measures a region; `id` follows the S4 regions' ids.
    pub region: Region,
    /// Id of the S4 region that holds it.
    pub parent: u32,
    /// The value (SUV, smoothed when the parameters say so) at which its focus met brighter
    /// uptake of the parent region.
    pub saddle: f32,
    /// Its focus's peak minus the saddle, in the same values.
    pub dynamic: f32,
}

/// The sub-regions of a segmentation and their label map (0 = none, otherwise the sub-region's
/// id; every labelled voxel also carries its parent's id in the S4 label map).
#[derive(Debug, Clone)]
pub struct Subregions {
    pub labels: Volume<u32>,
    /// Ordered by id.
    pub subregions: Vec<Subregion>,
}

/// A focus found in one region: its voxels (linear indices, ascending), saddle and dynamic.
struct Focus {
    voxels: Vec<u32>,
    saddle: f32,
    dynamic: f32,
}

/// Proposes the sub-regions of `segmentation` (S4's regions of `pet`, found with `regions`).
/// Leaves the segmentation as it is: sub-regions are extra candidates.
pub fn subregions(
    pet: &Volume<f32>,
    segmentation: &Segmentation,
    regions: &RegionParams,
    params: &SubregionParams,
) -> Result<Subregions, SubregionsError> {
    params.validate()?;
    let geometry = *pet.geometry();
    if segmentation.labels.dims() != pet.dims() {
        return Err(SubregionsError::Mismatch(format!(
            "label map of {:?} voxels, PET of {:?}",
            segmentation.labels.dims(),
            pet.dims()
        )));
    }
    pet.check_finite("PET")?;
    let labels = segmentation.labels.data();
    let region_count = segmentation.regions.len();

    // The voxels of each region in index order, placed by S4's voxel counts in one pass over the
    // label map, and each voxel's slot: 1 + its place in the concatenated lists (0: no region),
    // which names both its region and its position there. The slot map is the one volume-sized
    // map of the stage: it becomes the sub-region label map, so only the pages holding region
    // voxels are ever written (the zeroed allocation leaves the rest untouched).
    let mut start = vec![0usize; region_count + 1];
    for (r, region) in segmentation.regions.iter().enumerate() {
        let count = usize::try_from(region.voxel_count).unwrap_or(usize::MAX);
        start[r + 1] = start[r].saturating_add(count);
    }
    if start[region_count] > labels.len() {
        return Err(SubregionsError::Mismatch(format!(
            "the regions count {} voxels, the label map holds {}",
            start[region_count],
            labels.len()
        )));
    }
    let mut members = vec![0u32; start[region_count]];
    let mut slots = vec![0u32; labels.len()];
    let mut cursor = start.clone();
    for (index, &label) in labels.iter().enumerate() {
        if label == 0 {
            continue;
        }
        let r = label as usize - 1;
        match cursor.get_mut(r) {
            Some(slot) if r < region_count && *slot < start[r + 1] => {
                members[*slot] = index as u32;
                slots[index] = *slot as u32 + 1;
                *slot += 1;
            }
            _ => {
                return Err(SubregionsError::Mismatch(format!(
                    "label {label}: beyond {region_count} regions or more voxels than its region \
                     counts"
                )));
            }
        }
    }
    if cursor[..region_count] != start[1..] {
        return Err(SubregionsError::Mismatch(
            "a region has fewer voxels in the label map than it counts".into(),
        ));
    }

    let steps = regions.connectivity.offsets();
    let [nx, ny, _] = pet.dims();
    let flood = Flood {
        pet,
        slots: &slots,
        linear_steps: steps
            .iter()
            .map(|&[dx, dy, dz]| dx + nx as isize * (dy + ny as isize * dz))
            .collect(),
        steps,
        seed_min_suv: regions.seed_min_suv,
        params,
    };
    let found: Vec<(u32, Vec<Focus>)> = (0..region_count)
        .into_par_iter()
        .map(|r| {
            let voxels = &members[start[r]..start[r + 1]];
            let max = segmentation.regions[r].max_voxel;
            let max = geometry.index(max[0], max[1], max[2]);
            let span = Span {
                first: start[r] as u32,
                len: voxels.len() as u32,
            };
            (r as u32 + 1, flood.foci(span, voxels, max))
        })
        .filter(|(_, foci)| !foci.is_empty())
        .collect();
    drop(flood);

    // Measure the foci as S4 measures its regions, numbered here in region order.
    let mut sub_labels = slots;
    for &index in &members {
        sub_labels[index as usize] = 0;
    }
    drop(members);
    let mut focus_voxels = Vec::new();
    let mut about = Vec::new();
    for (parent, foci) in &found {
        for focus in foci {
            about.push((*parent, focus.saddle, focus.dynamic));
            for &index in &focus.voxels {
                sub_labels[index as usize] = about.len() as u32;
                focus_voxels.push(index);
            }
        }
    }
    drop(found);
    focus_voxels.sort_unstable();
    let data = pet.data();
    let keys: Vec<u64> = focus_voxels
        .iter()
        .map(|&index| candidate_key(data[index as usize], index as usize))
        .collect();
    let (mut sub_labels, measured) =
        label_and_measure(pet, keys, sub_labels, about.len() as u32, |label| label);

    // Ids after S4's, by descending SUVmax (ties: the maximum's linear index), as S4 numbers.
    let mut order: Vec<usize> = (0..measured.len()).collect();
    let max_index = |r: &Region| geometry.index(r.max_voxel[0], r.max_voxel[1], r.max_voxel[2]);
    order.sort_by(|&a, &b| {
        let (a, b) = (&measured[a], &measured[b]);
        b.suv_max
            .total_cmp(&a.suv_max)
            .then(max_index(a).cmp(&max_index(b)))
    });
    let first_id = region_count as u32 + 1;
    let mut new_id = vec![0u32; measured.len() + 1];
    for (rank, &i) in order.iter().enumerate() {
        new_id[i + 1] = first_id + rank as u32;
    }
    for &index in &focus_voxels {
        let label = &mut sub_labels[index as usize];
        *label = new_id[*label as usize];
    }
    drop(focus_voxels);
    let subregions = order
        .iter()
        .map(|&i| {
            let (parent, saddle, dynamic) = about[i];
            Subregion {
                region: Region {
                    id: new_id[i + 1],
                    ..measured[i].clone()
                },
                parent,
                saddle,
                dynamic,
            }
        })
        .collect();
    Ok(Subregions {
        labels: Volume::new(geometry, sub_labels)?,
        subregions,
    })
}

/// What flooding any region reads.
struct Flood<'a> {
    pet: &'a Volume<f32>,
    /// Each region voxel's slot (1 + its place in the regions' concatenated voxel lists).
    slots: &'a [u32],
    /// `steps` as linear offsets, for voxels away from the volume's faces.
    linear_steps: Vec<isize>,
    steps: Vec<[isize; 3]>,
    seed_min_suv: f32,
    params: &'a SubregionParams,
}

/// The slots of one region's voxels: `first + 1 ..= first + len`.
#[derive(Clone, Copy)]
struct Span {
    first: u32,
    len: u32,
}

impl Span {
    /// The position in the region's voxel list of the voxel in `slot`, if it is the region's.
    #[inline]
    fn position(self, slot: u32) -> Option<usize> {
        // Slot 0 (no region) and slots below the span wrap to huge values.
        let p = slot.wrapping_sub(self.first + 1);
        (p < self.len).then_some(p as usize)
    }
}

/// A component that ended where it met brighter uptake.
struct Ended {
    /// Flooding rank of its peak.
    peak: u32,
    saddle: f32,
    voxels: u32,
}

impl Flood<'_> {
    /// The value flooded at a voxel: the SUV, or its 3 × 3 × 3 binomial mean (weights 1 2 1
    /// along each axis, renormalised over the voxels inside the volume), less the background
    /// box's mean when the parameters ask for the contrast.
    fn value(&self, index: usize) -> f32 {
        let base = self.smoothed(index);
        match self.params.background_radius {
            0 => base,
            r => base - self.box_mean(index, r as usize),
        }
    }

    /// Mean SUV of the voxels inside the volume within `r` voxels of voxel `index` along each
    /// axis.
    fn box_mean(&self, index: usize, r: usize) -> f32 {
        let data = self.pet.data();
        let [nx, ny, nz] = self.pet.dims();
        let [x, y, z] = voxel_of(index, nx, ny);
        let (xs, ys, zs) = (
            x.saturating_sub(r)..(x + r + 1).min(nx),
            y.saturating_sub(r)..(y + r + 1).min(ny),
            z.saturating_sub(r)..(z + r + 1).min(nz),
        );
        let mut sum = 0.0f64;
        for zn in zs.clone() {
            for yn in ys.clone() {
                let row = nx * (yn + ny * zn);
                sum += data[row + xs.start..row + xs.end]
                    .iter()
                    .map(|&v| f64::from(v))
                    .sum::<f64>();
            }
        }
        (sum / (xs.len() * ys.len() * zs.len()) as f64) as f32
    }

    /// The SUV at a voxel, or with `smoothing` its 3 × 3 × 3 binomial mean.
    fn smoothed(&self, index: usize) -> f32 {
        let data = self.pet.data();
        if !self.params.smoothing {
            return data[index];
        }
        let [nx, ny, nz] = self.pet.dims();
        let [x, y, z] = voxel_of(index, nx, ny);
        let (mut sum, mut weight) = (0.0f32, 0.0f32);
        for zn in z.saturating_sub(1)..(z + 2).min(nz) {
            for yn in y.saturating_sub(1)..(y + 2).min(ny) {
                for xn in x.saturating_sub(1)..(x + 2).min(nx) {
                    let w = [(xn, x), (yn, y), (zn, z)]
                        .iter()
                        .map(|&(a, b)| if a == b { 2.0 } else { 1.0 })
                        .product::<f32>();
                    sum += w * data[xn + nx * (yn + ny * zn)];
                    weight += w;
                }
            }
        }
        sum / weight
    }

    /// Calls `visit(position)` for every neighbour of voxel `index` that belongs to the region
    /// of `span`, with its position in the region's voxel list.
    #[inline]
    fn neighbours(&self, span: Span, index: usize, mut visit: impl FnMut(usize)) {
        let [nx, ny, nz] = self.pet.dims();
        let [x, y, z] = voxel_of(index, nx, ny);
        if (1..nx - 1).contains(&x) && (1..ny - 1).contains(&y) && (1..nz - 1).contains(&z) {
            // Away from the faces every step stays inside the volume.
            for &step in &self.linear_steps {
                if let Some(p) = span.position(self.slots[index.wrapping_add_signed(step)]) {
                    visit(p);
                }
            }
            return;
        }
        for &[dx, dy, dz] in &self.steps {
            let (xn, yn, zn) = (
                x.wrapping_add_signed(dx),
                y.wrapping_add_signed(dy),
                z.wrapping_add_signed(dz),
            );
            // A step below 0 wraps to a huge value and fails the test as well.
            if xn < nx
                && yn < ny
                && zn < nz
                && let Some(p) = span.position(self.slots[xn + nx * (yn + ny * zn)])
            {
                visit(p);
            }
        }
    }

    /// The foci of the region of `span`, whose voxels are `voxels` (linear indices, ascending)
    /// and whose SUVmax lies at linear index `max`.
    fn foci(&self, span: Span, voxels: &[u32], max: usize) -> Vec<Focus> {
        let n = voxels.len();
        if n < 2 {
            return Vec::new();
        }
        let value: Vec<f32> = voxels.iter().map(|&i| self.value(i as usize)).collect();
        // Flooding order: decreasing value, ties by increasing index (= position).
        let mut order: Vec<u32> = (0..n as u32).collect();
        order.sort_unstable_by(|&a, &b| {
            value[b as usize]
                .total_cmp(&value[a as usize])
                .then(a.cmp(&b))
        });
        let mut rank = vec![0u32; n];
        for (r, &p) in order.iter().enumerate() {
            rank[p as usize] = r as u32;
        }

        // Pass 1: the elder rule on a union-find forest over ranks, whose roots are the
        // components' peaks (the lowest rank of each).
        let mut forest = RankForest::new(n);
        let mut ended = Vec::new();
        let mut roots = Vec::with_capacity(26);
        for (i, &p) in order.iter().enumerate() {
            self.flooded_roots(span, voxels[p as usize], i, &rank, &mut forest, &mut roots);
            let Some(&elder) = roots.iter().min() else {
                continue;
            };
            forest.join(i as u32, elder);
            for &root in roots.iter().filter(|&&r| r != elder) {
                ended.push(Ended {
                    peak: root,
                    saddle: value[p as usize],
                    voxels: forest.size[root as usize],
                });
                forest.merge(root, elder);
            }
        }
        let params = self.params;
        if params.background_radius > 0 && voxels[order[0] as usize] as usize != max {
            // The brightest contrast never ends: it stands above the region's least one.
            ended.push(Ended {
                peak: 0,
                saddle: value[order[n - 1] as usize],
                voxels: n as u32,
            });
        }
        let peak_value = |peak: u32| value[order[peak as usize] as usize];
        // The seed minimum and the noise terms read the SUV at the peak, whatever is flooded.
        let data = self.pet.data();
        let suv_at = |peak: u32| data[voxels[order[peak as usize] as usize] as usize];
        let is_focus = |e: &Ended| {
            let suv = suv_at(e.peak);
            suv > self.seed_min_suv
                && peak_value(e.peak) - e.saddle >= params.min_dynamic(suv)
                && e.voxels >= params.min_voxels
        };
        let mut foci: Vec<&Ended> = ended.iter().filter(|e| is_focus(e)).collect();
        if foci.is_empty() {
            return Vec::new();
        }

        // Each region voxel's owner among the foci (1-based in `foci`; 0 = none), by rank.
        let mut owner = vec![0u32; n];
        let max_rank = rank[(self.slots[max] - span.first - 1) as usize];
        match params.shape {
            SubregionShape::Cap => {
                let level =
                    |e: &Ended| e.saddle + params.cap_fraction * (peak_value(e.peak) - e.saddle);
                // Nested caps are cut at higher levels: writing in ascending level leaves each
                // voxel with the smallest cap that holds it.
                foci.sort_by(|a, b| level(a).total_cmp(&level(b)).then(a.peak.cmp(&b.peak)));
                let mut kept = Vec::with_capacity(foci.len());
                let mut queue = VecDeque::new();
                let mut seen = vec![false; n];
                let mut cap = Vec::new();
                for e in foci {
                    let level = level(e);
                    // Breadth-first from the peak through values above the level.
                    cap.clear();
                    queue.push_back(e.peak);
                    seen[e.peak as usize] = true;
                    while let Some(r) = queue.pop_front() {
                        cap.push(r);
                        let index = voxels[order[r as usize] as usize] as usize;
                        self.neighbours(span, index, |q| {
                            let nr = rank[q];
                            if !seen[nr as usize] && value[q] > level {
                                seen[nr as usize] = true;
                                queue.push_back(nr);
                            }
                        });
                    }
                    for &r in &cap {
                        seen[r as usize] = false;
                    }
                    // A cap holding the region's SUVmax would be reformatted at the region's
                    // own centre: nothing new for the network.
                    let holds_max = cap.contains(&max_rank);
                    if cap.len() >= params.min_voxels as usize && !holds_max {
                        kept.push(e);
                        for &r in &cap {
                            owner[r as usize] = kept.len() as u32;
                        }
                    }
                }
                foci = kept;
            }
            SubregionShape::Basin => {
                // Pass 2: flood again; components of two seeds (foci or the region's SUVmax,
                // rank 0) never merge, any other component merges into its elder neighbour.
                let mut seed = vec![0u32; n];
                seed[0] = u32::MAX;
                for (k, e) in foci.iter().enumerate() {
                    seed[e.peak as usize] = k as u32 + 1;
                }
                let mut forest = RankForest::new(n);
                for (i, &p) in order.iter().enumerate() {
                    self.flooded_roots(span, voxels[p as usize], i, &rank, &mut forest, &mut roots);
                    let Some(&elder) = roots.iter().min() else {
                        continue;
                    };
                    forest.join(i as u32, elder);
                    for &root in roots.iter().filter(|&&r| r != elder) {
                        match (seed[elder as usize] != 0, seed[root as usize] != 0) {
                            (true, true) => {}
                            (_, false) => forest.merge(root, elder),
                            // A seed's component absorbs an elder that is no seed (a maximum
                            // whose own dynamic fell short): it keeps the seed's basin.
                            (false, true) => forest.merge(elder, root),
                        }
                    }
                }
                for r in 0..n as u32 {
                    let s = seed[forest.find(r) as usize];
                    if s != u32::MAX {
                        owner[r as usize] = s;
                    }
                }
            }
        }
        let mut focus_voxels: Vec<Vec<u32>> = vec![Vec::new(); foci.len()];
        // Positions ascend with the index, so each list comes out in index order.
        for (p, &index) in voxels.iter().enumerate() {
            let o = owner[rank[p] as usize];
            if o != 0 {
                focus_voxels[o as usize - 1].push(index);
            }
        }
        foci.iter()
            .zip(focus_voxels)
            .filter(|(_, v)| !v.is_empty())
            .map(|(e, voxels)| Focus {
                voxels,
                saddle: e.saddle,
                dynamic: peak_value(e.peak) - e.saddle,
            })
            .collect()
    }

    /// The distinct roots of the neighbours of voxel `index` (rank `i`) flooded before it.
    fn flooded_roots(
        &self,
        span: Span,
        index: u32,
        i: usize,
        rank: &[u32],
        forest: &mut RankForest,
        roots: &mut Vec<u32>,
    ) {
        roots.clear();
        self.neighbours(span, index as usize, |q| {
            let r = rank[q];
            if (r as usize) < i {
                let root = forest.find(r);
                if !roots.contains(&root) {
                    roots.push(root);
                }
            }
        });
    }
}

/// Union-find over flooding ranks; a root is its component's first rank (its peak), except
/// where a basin's seed absorbs an elder.
struct RankForest {
    parent: Vec<u32>,
    /// Voxels of each root's component.
    size: Vec<u32>,
}

impl RankForest {
    fn new(n: usize) -> Self {
        Self {
            parent: (0..n as u32).collect(),
            size: vec![1; n],
        }
    }

    /// The root of `node`, halving the path on the way.
    fn find(&mut self, mut node: u32) -> u32 {
        loop {
            let parent = self.parent[node as usize];
            if parent == node {
                return node;
            }
            let grandparent = self.parent[parent as usize];
            self.parent[node as usize] = grandparent;
            node = grandparent;
        }
    }

    /// Adds the single node `node` to the component of root `root`.
    fn join(&mut self, node: u32, root: u32) {
        self.parent[node as usize] = root;
        self.size[root as usize] += 1;
    }

    /// Merges the component of root `from` into that of root `into`.
    fn merge(&mut self, from: u32, into: u32) {
        self.parent[from as usize] = into;
        self.size[into as usize] += self.size[from as usize];
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::regions::segment;
    use crate::volume::Geometry;

    const DIMS: [usize; 3] = [48, 24, 20];

    /// A 48 × 24 × 20 volume of 2 mm voxels on a background of 0.2 SUV: uniform "organs"
    /// (x from, x to, SUV; y 6–18, z 5–15) blurred three times by the binomial 1 2 1 along each
    /// axis (σ ≈ 1.2 voxels, as a PET's resolution blurs them), plus Gaussian "lesions" (centre
    /// in voxels, peak SUV, σ in voxels).
    fn study(organs: &[(usize, usize, f64)], lesions: &[([f64; 3], f64, f64)]) -> Volume<f32> {
        let geometry = Geometry::axis_aligned(DIMS, [2.0; 3], [0.0; 3]).unwrap();
        let mut organ: Vec<f64> = (0..geometry.len())
            .map(|i| {
                let [x, y, z] = geometry.coords(i);
                organs
                    .iter()
                    .filter(|o| (o.0..=o.1).contains(&x) && (6..=18).contains(&y))
                    .filter(|_| (5..=15).contains(&z))
                    .map(|o| o.2)
                    .sum()
            })
            .collect();
        let strides = [1, DIMS[0], DIMS[0] * DIMS[1]];
        for _ in 0..3 {
            for axis in 0..3 {
                let blurred = (0..organ.len())
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
                organ = blurred;
            }
        }
        let data = organ
            .iter()
            .enumerate()
            .map(|(i, &o)| {
                let c = geometry.coords(i).map(|c| c as f64);
                let lesion: f64 = lesions
                    .iter()
                    .map(|&(centre, peak, sigma)| {
                        let d2: f64 = (0..3).map(|a| (c[a] - centre[a]).powi(2)).sum();
                        peak * (-d2 / (2.0 * sigma * sigma)).exp()
                    })
                    .sum();
                (0.2 + o + lesion) as f32
            })
            .collect();
        Volume::new(geometry, data).unwrap()
    }

    /// Foci of at least 1 SUV, flooded on the SUV itself, in each shape.
    fn shapes() -> [SubregionParams; 3] {
        let cap = SubregionParams {
            min_dynamic_suv: 1.0,
            noise_units: 0.0,
            min_relative_dynamic: 0.0,
            min_voxels: 2,
            cap_fraction: 0.0,
            shape: SubregionShape::Cap,
            smoothing: false,
            background_radius: 0,
        };
        [
            cap,
            SubregionParams {
                cap_fraction: 0.45,
                ..cap
            },
            SubregionParams {
                shape: SubregionShape::Basin,
                ..cap
            },
        ]
    }

    #[test]
    fn a_lesion_touching_a_brighter_organ_gets_a_sub_region_of_its_own() {
        // Two organs of SUV 16 and 24, each with a fainter lesion (peaks about 14.4 and 18.6)
        // beside it: S4 merges each pair, because the voxels between them (about 10 and 14
        // SUV) stay above 45 % of the organ's SUVmax.
        let pet = study(
            &[(2, 10, 16.0), (26, 34, 24.0)],
            &[
                ([13.0, 12.0, 10.0], 14.0, 1.3),
                ([37.0, 12.0, 10.0], 18.0, 1.3),
            ],
        );
        let regions = RegionParams::default();
        let s4 = segment(&pet, &regions).unwrap();
        let got: Vec<_> = s4.regions.iter().map(|r| (r.id, r.max_voxel[0])).collect();
        assert_eq!(
            got.len(),
            2,
            "S4 merges each lesion into its organ: {got:?}"
        );
        assert!(got[0].1 < 36 && got[1].1 < 12, "{got:?}");
        for params in shapes() {
            let found = subregions(&pet, &s4, &regions, &params).unwrap();
            let got: Vec<_> = found
                .subregions
                .iter()
                .map(|s| (s.region.id, s.parent, s.region.max_voxel))
                .collect();
            // Ids after S4's, by descending SUVmax; S4 region 1 is the SUV 24 organ.
            assert_eq!(
                got,
                [(3, 1, [37, 12, 10]), (4, 2, [13, 12, 10])],
                "{params:?}"
            );
            for sub in &found.subregions {
                assert!(sub.dynamic > 3.0 && sub.dynamic < 6.0, "{sub:?}");
                // Inside the parent, on the lesion's side of the organ's edge, and as many
                // voxels as the label map gives it.
                let edge = if sub.parent == 1 { 35 } else { 11 };
                let mut count = 0;
                for (i, &l) in found.labels.data().iter().enumerate() {
                    if l == sub.region.id {
                        assert_eq!(s4.labels.data()[i], sub.parent);
                        let x = pet.geometry().coords(i)[0];
                        assert!(x >= edge, "{params:?}: voxel x = {x} on the organ's side");
                        count += 1;
                    }
                }
                assert_eq!(count, sub.region.voxel_count, "{params:?}");
                // A cap cut at 45 % of the dynamic keeps only the lesion's top.
                let least = if params.cap_fraction > 0.0 { 2 } else { 5 };
                assert!(count >= least, "{params:?}: {count} voxels");
            }
        }
    }

    #[test]
    fn one_blob_or_a_plateau_gives_no_sub_region() {
        let regions = RegionParams::default();
        let blob = study(&[], &[([15.0, 12.0, 10.0], 12.0, 2.0)]);
        // A uniform organ alone: its flat top has only rounding-deep maxima.
        let plateau = study(&[(10, 30, 16.0)], &[]);
        // A lesion 0.7 SUV above its saddle with the organ.
        let shallow = study(&[(2, 10, 16.0)], &[([13.0, 12.0, 10.0], 8.0, 1.3)]);
        for pet in [blob, plateau, shallow] {
            let s4 = segment(&pet, &regions).unwrap();
            assert_eq!(s4.regions.len(), 1);
            for params in shapes() {
                let found = subregions(&pet, &s4, &regions, &params).unwrap();
                assert!(found.subregions.is_empty(), "{params:?}");
                assert!(found.labels.data().iter().all(|&l| l == 0));
            }
        }
    }

    #[test]
    fn the_thresholds_decide_which_maxima_are_foci() {
        let pet = study(&[(2, 10, 16.0)], &[([13.0, 12.0, 10.0], 14.0, 1.3)]);
        let regions = RegionParams::default();
        let s4 = segment(&pet, &regions).unwrap();
        let count = |params: SubregionParams| {
            subregions(&pet, &s4, &regions, &params)
                .unwrap()
                .subregions
                .len()
        };
        // The lesion's dynamic is about 4.4 SUV at a peak of about 14.4 (√peak ≈ 3.8).
        let base = shapes()[0];
        assert_eq!(count(base), 1);
        for (params, expected) in [
            (
                SubregionParams {
                    min_dynamic_suv: 5.0,
                    ..base
                },
                0,
            ),
            (
                SubregionParams {
                    noise_units: 1.0,
                    ..base
                },
                1,
            ),
            (
                SubregionParams {
                    noise_units: 1.5,
                    ..base
                },
                0,
            ),
            (
                SubregionParams {
                    min_relative_dynamic: 0.25,
                    ..base
                },
                1,
            ),
            (
                SubregionParams {
                    min_relative_dynamic: 0.35,
                    ..base
                },
                0,
            ),
            (
                SubregionParams {
                    min_voxels: 100_000,
                    ..base
                },
                0,
            ),
        ] {
            assert_eq!(count(params), expected, "{params:?}");
        }
    }

    #[test]
    fn a_lesion_on_the_flank_of_brighter_uptake_is_found_in_the_contrast_only() {
        // A broad organ of SUV 30 (σ 5 voxels) and a lesion of 6 SUV (σ 1 voxel) 8 voxels from
        // its centre, where the organ still gives about 8.3 SUV: the sum falls monotonically
        // through the lesion (no maximum of its own), but its contrast to the surrounding
        // 7³ voxels peaks there.
        let pet = study(
            &[],
            &[
                ([8.0, 12.0, 10.0], 30.0, 5.0),
                ([16.0, 12.0, 10.0], 6.0, 1.0),
            ],
        );
        let regions = RegionParams::default();
        let s4 = segment(&pet, &regions).unwrap();
        assert_eq!(s4.regions.len(), 1);
        let lesion = pet.geometry().index(16, 12, 10);
        assert_eq!(
            s4.labels.data()[lesion],
            1,
            "the lesion lies in the organ's region"
        );
        let suv = SubregionParams {
            min_voxels: 1,
            cap_fraction: 0.45,
            ..shapes()[0]
        };
        for params in [
            suv,
            SubregionParams {
                shape: SubregionShape::Basin,
                ..suv
            },
        ] {
            let found = subregions(&pet, &s4, &regions, &params).unwrap();
            assert!(found.subregions.is_empty(), "{params:?}");
        }
        let contrast = SubregionParams {
            background_radius: 3,
            ..suv
        };
        let found = subregions(&pet, &s4, &regions, &contrast).unwrap();
        // The organ's own contrast maximum is its SUVmax: no second candidate there.
        assert_eq!(found.subregions.len(), 1, "{:?}", found.subregions);
        let sub = &found.subregions[0];
        assert_eq!(sub.parent, 1);
        assert_eq!(found.labels.data()[lesion], sub.region.id);
        let [x, y, z] = sub.region.max_voxel;
        assert!((15..=16).contains(&x) && [y, z] == [12, 10], "{sub:?}");
        // The contrast needs caps.
        let basin = SubregionParams {
            shape: SubregionShape::Basin,
            ..contrast
        };
        assert!(matches!(
            subregions(&pet, &s4, &regions, &basin),
            Err(SubregionsError::BadParameter(_))
        ));
    }

    #[test]
    fn rejects_bad_parameters_and_a_foreign_segmentation() {
        let pet = study(&[], &[([15.0, 12.0, 10.0], 12.0, 2.0)]);
        let regions = RegionParams::default();
        let s4 = segment(&pet, &regions).unwrap();
        for params in [
            SubregionParams {
                cap_fraction: 1.0,
                ..SubregionParams::default()
            },
            SubregionParams {
                noise_units: f32::NAN,
                ..SubregionParams::default()
            },
            SubregionParams {
                min_relative_dynamic: -0.1,
                ..SubregionParams::default()
            },
        ] {
            assert!(matches!(
                subregions(&pet, &s4, &regions, &params),
                Err(SubregionsError::BadParameter(_))
            ));
        }
        let other = Volume::filled(
            Geometry::axis_aligned([4, 4, 4], [2.0; 3], [0.0; 3]).unwrap(),
            1.0,
        );
        assert!(matches!(
            subregions(&other, &s4, &regions, &SubregionParams::default()),
            Err(SubregionsError::Mismatch(_))
        ));
        // Regions whose voxel counts disagree with the label map, either way, or a label
        // without a region.
        for change in [1i64, -1, 1 << 40] {
            let mut foreign = s4.clone();
            let count = &mut foreign.regions[0].voxel_count;
            *count = count.saturating_add_signed(change);
            assert!(matches!(
                subregions(&pet, &foreign, &regions, &SubregionParams::default()),
                Err(SubregionsError::Mismatch(_))
            ));
        }
        let mut foreign = s4.clone();
        foreign.regions.pop();
        assert!(matches!(
            subregions(&pet, &foreign, &regions, &SubregionParams::default()),
            Err(SubregionsError::Mismatch(_))
        ));
    }
}
