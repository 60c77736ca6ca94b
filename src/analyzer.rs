//! The analyzer: configuration, model and compute device, reused across studies (DESIGN S0).
//!
//! # Where the stages run
//! On the CPU every stage runs on the host. With a CUDA device (DESIGN S13, docs/gpu.md) PET and
//! CT are uploaded once and resampled there; the device sorts the S4 visiting order and the host
//! runs the CPU's own sweep and statistics over it; reformations are gathered on the device
//! straight into the network's fp16 input and the network runs there, so only the order, the CT
//! on the common grid (for the skeleton volume) and the logits come back. From the logits on —
//! probabilities, staging, report — both paths run the same code.

use std::borrow::Cow;
use std::path::PathBuf;
use std::time::Instant;

use crate::error::{Error, Result};
use crate::findings::Source;
/// Where an analyzer runs; part of its configuration.
pub use crate::gpu::Device;
use crate::gpu::cnn::{CHUNK_REGIONS, DeviceNetwork, NetworkSpec};
use crate::gpu::{self, CudaBackend};
use crate::grid::GridError;
use crate::memory::{self, MemoryError};
use crate::model::engine::MAX_BATCH_SIZE;
use crate::model::{Engine, EngineConfig, Model, OperatingPoints, Prediction};
use crate::regions::{Region, RegionParams, Segmentation, SubregionParams, Subregions};
use crate::report::{CtCoverage, ModelInfo, Report, RunInfo, StageTiming};
use crate::staging::{FindingInput, StagingConfig};
use crate::tracer::Tracer;
use crate::volume::{Geometry, Volume};
use crate::{grid, mpr, regions, staging};

/// Largest accepted worker-thread count; more is a caller error, not a wish.
pub const MAX_THREADS: usize = 1024;

/// Everything an analyzer is built from.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AnalyzerConfig {
    pub device: Device,
    /// Worker threads for the CPU path; 0 = one per core.
    pub threads: usize,
    /// Model file; `None` = the model embedded in the library.
    pub model_path: Option<PathBuf>,
    /// Regions per inference batch (bounds the working memory); 0 = the engine's default on the
    /// CPU, 1024 on a CUDA device.
    pub batch_size: usize,
}

impl AnalyzerConfig {
    /// Checks every field without loading anything.
    pub fn validate(&self) -> Result<()> {
        if self.threads > MAX_THREADS {
            return Err(Error::InvalidArgument(format!(
                "threads = {}, at most {MAX_THREADS}",
                self.threads
            )));
        }
        if self.batch_size > MAX_BATCH_SIZE {
            return Err(Error::InvalidArgument(format!(
                "batch_size = {}, at most {MAX_BATCH_SIZE}",
                self.batch_size
            )));
        }
        if let Some(path) = self.model_path.as_ref().filter(|p| !p.is_file()) {
            return Err(Error::InvalidArgument(format!(
                "model file {} does not exist or is not a file",
                path.display()
            )));
        }
        Ok(())
    }
}

/// Holds the configuration, the model and its engine, and the device, for many studies.
///
/// `Send + Sync`: one analyzer serves concurrent studies. On a CUDA device they share one stream;
/// the backend serialises each operation behind its own lock, and every study works on its own
/// device buffers, so studies interleave safely (they do not run in parallel on the device).
#[derive(Debug)]
pub struct Analyzer {
    config: AnalyzerConfig,
    device: Device,
    model: Model,
    engine: Engine,
    /// Workers for the parallel stages (resampling, regions, reformations) when the host asked
    /// for a thread count; `None` uses rayon's global pool (one thread per core).
    pool: Option<rayon::ThreadPool>,
    /// The CUDA device and the model's network on it, when analysis runs there.
    gpu: Option<Gpu>,
}

/// An open CUDA device with the model's network loaded once, for every study.
#[derive(Debug)]
struct Gpu {
    backend: CudaBackend,
    network: DeviceNetwork,
}

impl Gpu {
    /// Opens the device `requested` asks for (`None`: the CPU) and loads the model's network on
    /// it. `auto` takes the CPU, with a log line, when either step fails; `cuda` is then a
    /// device error.
    fn open(requested: Device, model: &Model) -> Result<Option<Self>> {
        let Some(backend) = gpu::open_for(requested, 0)? else {
            return Ok(None);
        };
        let network =
            NetworkSpec::from_graph(model.graph()).and_then(|spec| backend.load_network(&spec));
        match network {
            Ok(network) => Ok(Some(Self { backend, network })),
            Err(e) if requested == Device::Auto => {
                log::warn!("device auto: using the CPU ({e})");
                Ok(None)
            }
            Err(e) => Err(e.into()),
        }
    }
}

impl Analyzer {
    /// Validates the configuration, loads the model and resolves the device: `auto` uses a CUDA
    /// device when one opens and runs the model's network, else the CPU (with a log line why);
    /// `cuda` fails with [`Error::Gpu`] when it cannot.
    pub fn new(config: AnalyzerConfig) -> Result<Self> {
        config.validate()?;
        let model = match &config.model_path {
            Some(path) => Model::load(path)?,
            None => Model::embedded()?,
        };
        if !model.is_trained() {
            log::warn!(
                "model {} is untrained (random weights): its classifications mean nothing",
                model.model_id()
            );
        }
        let gpu = Gpu::open(config.device, &model)?;
        let device = if gpu.is_some() {
            Device::Cuda
        } else {
            Device::Cpu
        };
        let engine = model.engine(EngineConfig {
            threads: config.threads,
            batch_size: config.batch_size,
            ..EngineConfig::default()
        })?;
        log::info!(
            "analyzer ready: device {device:?}, {} engine thread(s), model {}",
            engine.threads(),
            model.model_id()
        );
        let pool = match config.threads {
            0 => None,
            n => Some(
                rayon::ThreadPoolBuilder::new()
                    .num_threads(n)
                    .thread_name(|i| format!("uptake-{i}"))
                    .build()
                    .map_err(|e| Error::Internal(format!("cannot start {n} threads: {e}")))?,
            ),
        };
        Ok(Self {
            config,
            device,
            model,
            engine,
            pool,
            gpu,
        })
    }

    /// The loaded model: class table, input spec, threshold, provenance.
    pub fn model(&self) -> &Model {
        &self.model
    }

    /// The operating points an analysis of a study with this tracer uses with these options:
    /// a `threshold` given alone holds for every finding; what is not given, the model's for
    /// this tracer.
    pub fn operating_points(
        &self,
        tracer: Tracer,
        threshold: Option<f32>,
        distant: Option<f32>,
    ) -> OperatingPoints {
        let model = self.model.operating_points(tracer);
        OperatingPoints {
            threshold: threshold.unwrap_or(model.threshold),
            distant_threshold: distant.or(threshold).unwrap_or(model.distant_threshold),
        }
    }

    /// The CPU inference engine for the model.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    pub fn config(&self) -> &AnalyzerConfig {
        &self.config
    }

    /// The device actually in use (never `Auto`).
    pub fn device(&self) -> Device {
        self.device
    }

    /// The CUDA device analysis runs on, if any (its name and capabilities).
    pub fn cuda_device(&self) -> Option<&gpu::DeviceInfo> {
        self.gpu.as_ref().map(|g| g.backend.info())
    }

    /// Analyzes one study: PET in SUV and CT in HU, each on its own grid in patient space.
    /// SUV → common 3 mm grid → uptake regions → reformations → CNN → staging (DESIGN S0).
    /// Safe to call from several threads at once on one analyzer. On a CUDA device, a failure of
    /// the device fails the study with [`Error::Gpu`]; it is not retried on the CPU.
    pub fn analyze(
        &self,
        pet: &Volume<f32>,
        ct: &Volume<f32>,
        tracer: Tracer,
        options: &AnalyzeOptions,
    ) -> Result<Report> {
        let mut timings = Timings::default();
        let progress = |stage: Stage, fraction: f32| match options.progress {
            Some(report) if !report(stage, fraction) => Err(Error::Cancelled),
            _ => Ok(()),
        };

        progress(Stage::Check, 0.0)?;
        let t = Instant::now();
        options.validate()?;
        // Before anything is allocated: a study the CT barely covers, or one whose working set
        // exceeds the budget, is refused with the sizes that make it so.
        let ct_axial = ct_axial_coverage(pet.geometry(), ct.geometry());
        let minimum = options.min_ct_coverage.unwrap_or(DEFAULT_MIN_CT_COVERAGE);
        if ct_axial == 0.0 {
            return Err(GridError::no_overlap(pet.geometry(), ct.geometry()).into());
        }
        if ct_axial < minimum {
            return Err(GridError::CtCoverage {
                covered: ct_axial,
                minimum,
            }
            .into());
        }
        if ct_axial < 1.0 {
            log::warn!(
                "the CT covers {:.1} % of the PET's axial extent; the rest is read as air (−1000 HU)",
                100.0 * ct_axial
            );
        }
        let batch = match (&self.gpu, self.config.batch_size) {
            (Some(_), 0) => CHUNK_REGIONS,
            (Some(_), n) => n,
            (None, _) => self.engine.batch_size(),
        };
        let working_set = WorkingSet::of(
            pet.geometry(),
            ct.geometry(),
            batch * self.model.input_spec().tensor_len(),
            options.replace_non_finite,
            options.subregions.is_some(),
        )?;
        let budget = options.memory_budget.unwrap_or_else(memory::default_budget);
        if working_set.total() > budget {
            return Err(MemoryError::OverBudget {
                needed: working_set.total(),
                budget,
                breakdown: working_set.to_string(),
            }
            .into());
        }
        let pet = finite_or_replaced(pet, "PET", 0.0, options.replace_non_finite)?;
        let ct = finite_or_replaced(ct, "CT", -1000.0, options.replace_non_finite)?;
        timings.add(Stage::Check, t.elapsed().as_secs_f64());

        let study = Study {
            pet: &pet,
            ct: &ct,
            tracer,
            options,
            batch,
            progress: &progress,
        };
        let classified = match &self.gpu {
            Some(gpu) => self.classify_on_device(gpu, &study, &mut timings)?,
            None => self.classify_on_host(&study, &mut timings)?,
        };

        progress(Stage::Staging, 0.0)?;
        let t = Instant::now();
        let findings: Vec<FindingInput> = classified
            .candidates
            .iter()
            .zip(classified.predictions)
            .map(|(region, p)| FindingInput {
                region: region.clone(),
                p_suspicious: p.p_suspicious,
                location_probs: p.location_probs,
            })
            .collect();
        let points = self.operating_points(tracer, options.threshold, options.distant_threshold);
        let config = options.staging.clone().at(points);
        let mut staged = staging::stage(
            &findings,
            self.model.classes(),
            classified.skeleton_volume_ml,
            &config,
        )?;
        if let Some(subregions) = &classified.subregions {
            // Staging keeps the input order: S4's regions, then the sub-regions.
            let first = classified.segmentation.regions.len();
            for (finding, sub) in staged.findings[first..]
                .iter_mut()
                .zip(&subregions.subregions)
            {
                finding.source = Source::Subregion;
                finding.parent = Some(sub.parent);
            }
        }
        timings.add(Stage::Staging, t.elapsed().as_secs_f64());
        progress(Stage::Staging, 1.0)?;
        let mut report = Report::new(
            staged,
            classified.segmentation.labels,
            RunInfo {
                tracer,
                model: ModelInfo {
                    id: self.model.model_id().to_string(),
                    trained: self.model.is_trained(),
                },
                device: match self.device {
                    Device::Cuda => "cuda",
                    Device::Cpu | Device::Auto => "cpu",
                }
                .into(),
                ct_coverage: CtCoverage {
                    axial: ct_axial,
                    voxels: classified.ct_voxel_coverage,
                },
                timings: timings.0,
            },
        );
        report.subregion_map = classified.subregions.map(|s| s.labels);
        Ok(report)
    }

    /// Grid, regions, reformations and CNN on the host.
    fn classify_on_host(&self, study: &Study<'_>, timings: &mut Timings) -> Result<Classified> {
        (study.progress)(Stage::Grid, 0.0)?;
        let t = Instant::now();
        let grid = grid::common_grid(study.pet.geometry())?;
        let (ct3, inside) = self.parallel(|| grid::resample_counting(study.ct, &grid, -1000.0))?;
        let ct_voxel_coverage = check_ct_coverage(study.pet, study.ct, inside, grid.len())?;
        let pet3 = self.parallel(|| grid::resample(study.pet, &grid, 0.0))?;
        let skeleton_volume_ml = staging::skeleton_volume_ml(&ct3);
        timings.add(Stage::Grid, t.elapsed().as_secs_f64());

        (study.progress)(Stage::Regions, 0.0)?;
        let t = Instant::now();
        let (pet, params) = (study.pet, &study.options.regions);
        let segmentation = self.parallel(|| regions::segment(pet, params))?;
        let subregions = self.subregions(study, &segmentation)?;
        timings.add(Stage::Regions, t.elapsed().as_secs_f64());
        let candidates = candidate_regions(&segmentation, subregions.as_ref());

        let spec = self.model.input_spec();
        let per_region = spec.tensor_len();
        let batch = study.batch;
        let mut inputs = memory::try_vec(
            batch.min(candidates.len()) * per_region,
            0.0f32,
            "the network input of one batch",
        )?;
        let bits = vec![study.tracer.bit(); batch];
        let predictions = in_batches(
            &candidates,
            segmentation.regions.len(),
            batch,
            study.progress,
            timings,
            |centres, classifying| {
                let inputs = &mut inputs[..centres.len() * per_region];
                let t = Instant::now();
                self.parallel(|| mpr::extract_batch(&pet3, &ct3, spec, centres, None, inputs))?;
                let reformat_s = t.elapsed().as_secs_f64();
                classifying()?;
                let t = Instant::now();
                let predictions = self.engine.infer(inputs, &bits[..centres.len()])?;
                Ok((predictions, reformat_s, t.elapsed().as_secs_f64()))
            },
        )?;
        Ok(Classified {
            segmentation,
            subregions,
            candidates,
            predictions,
            skeleton_volume_ml,
            ct_voxel_coverage,
        })
    }

    /// Grid, regions, reformations and CNN with the CUDA device (module docs): the same stages,
    /// timings and progress calls as on the host.
    fn classify_on_device(
        &self,
        gpu: &Gpu,
        study: &Study<'_>,
        timings: &mut Timings,
    ) -> Result<Classified> {
        let device = &gpu.backend;
        (study.progress)(Stage::Grid, 0.0)?;
        let t = Instant::now();
        let grid = grid::common_grid(study.pet.geometry())?;
        let pet = device.upload(study.pet)?;
        let ct = device.upload(study.ct)?;
        // The common-grid voxels outside the CT, counted as NaN of a first resampling: the same
        // coverage check as on the host.
        let outside = device
            .count_voxels(&device.resample(&ct, &grid, f32::NAN)?, 1.0)?
            .non_finite;
        let ct_voxel_coverage = check_ct_coverage(
            study.pet,
            study.ct,
            grid.len().saturating_sub(outside as usize),
            grid.len(),
        )?;
        let ct3 = device.resample(&ct, &grid, -1000.0)?;
        drop(ct);
        let pet3 = device.resample(&pet, &grid, 0.0)?;
        let skeleton_volume_ml = staging::skeleton_volume_ml(&device.download(&ct3)?);
        timings.add(Stage::Grid, t.elapsed().as_secs_f64());

        (study.progress)(Stage::Regions, 0.0)?;
        let t = Instant::now();
        let params = &study.options.regions;
        let order = device.visiting_order(&pet, params.candidate_threshold()?)?;
        drop(pet);
        let host_pet = study.pet;
        let segmentation = self.parallel(|| regions::segment_ordered(host_pet, params, order))?;
        let subregions = self.subregions(study, &segmentation)?;
        timings.add(Stage::Regions, t.elapsed().as_secs_f64());
        let candidates = candidate_regions(&segmentation, subregions.as_ref());

        let spec = self.model.input_spec();
        let batch = study.batch;
        let bits = vec![study.tracer.bit(); batch];
        let predictions = in_batches(
            &candidates,
            segmentation.regions.len(),
            batch,
            study.progress,
            timings,
            |centres, classifying| {
                let t = Instant::now();
                let input = device.reformat::<u16>(&pet3, &ct3, spec, centres, None)?;
                // The gather is asynchronous: wait for it so that its time is not the CNN's.
                device.synchronize()?;
                let reformat_s = t.elapsed().as_secs_f64();
                classifying()?;
                let t = Instant::now();
                let logits = device.infer(&gpu.network, &input, &bits[..centres.len()])?;
                let predictions = logits
                    .suspicious
                    .iter()
                    .zip(logits.location.chunks_exact(logits.classes))
                    .map(|(&s, location)| Prediction::from_logits(s, location.to_vec()))
                    .collect();
                Ok((predictions, reformat_s, t.elapsed().as_secs_f64()))
            },
        )?;
        Ok(Classified {
            segmentation,
            subregions,
            candidates,
            predictions,
            skeleton_volume_ml,
            ct_voxel_coverage,
        })
    }

    /// The sub-regions of a study's S4 regions, when its options ask for them.
    fn subregions(
        &self,
        study: &Study<'_>,
        segmentation: &Segmentation,
    ) -> Result<Option<Subregions>> {
        let Some(params) = &study.options.subregions else {
            return Ok(None);
        };
        let regions = &study.options.regions;
        self.parallel(|| regions::subregions(study.pet, segmentation, regions, params))
            .map(Some)
            .map_err(|e| match e {
                regions::SubregionsError::Volume(e) => e.into(),
                e => Error::InvalidArgument(e.to_string()),
            })
    }

    /// Runs a parallel stage on the analyzer's workers.
    fn parallel<R: Send>(&self, stage: impl FnOnce() -> R + Send) -> R {
        match &self.pool {
            Some(pool) => pool.install(stage),
            None => stage(),
        }
    }
}

/// One study as the stages before staging see it.
struct Study<'a> {
    pet: &'a Volume<f32>,
    ct: &'a Volume<f32>,
    tracer: Tracer,
    options: &'a AnalyzeOptions<'a>,
    /// Regions per reformation and CNN batch.
    batch: usize,
    progress: &'a dyn Fn(Stage, f32) -> Result<()>,
}

/// The regions the network classifies: S4's, then the sub-regions.
fn candidate_regions(segmentation: &Segmentation, subregions: Option<&Subregions>) -> Vec<Region> {
    let subregions = subregions.map_or(&[][..], |s| &s.subregions[..]);
    segmentation
        .regions
        .iter()
        .cloned()
        .chain(subregions.iter().map(|s| s.region.clone()))
        .collect()
}

/// What the stages before staging produce, on either device.
struct Classified {
    segmentation: Segmentation,
    /// `None` when the options switched the sub-region stage off.
    subregions: Option<Subregions>,
    /// S4's regions, then the sub-regions: what the network classified.
    candidates: Vec<Region>,
    /// One per candidate, in candidate order.
    predictions: Vec<Prediction>,
    /// CT > 200 HU on the common grid (staging's dmi).
    skeleton_volume_ml: f64,
    /// Share of the common grid's voxels inside the CT.
    ct_voxel_coverage: f64,
}

/// Wall time per stage, in the order the stages ran.
#[derive(Default)]
struct Timings(Vec<StageTiming>);

impl Timings {
    fn add(&mut self, stage: Stage, seconds: f64) {
        self.0.push(StageTiming {
            stage: stage.name().to_string(),
            ms: seconds * 1e3,
        });
    }
}

/// Reformations and CNN in batches of `batch` regions, so memory stays bounded however many
/// regions a study has; the host may cancel between the stages of every batch. `step`
/// classifies the regions centred at the given points, calls its second argument (the progress
/// report of the CNN stage) between reformation and CNN, and says how long each part took.
fn in_batches(
    regions: &[regions::Region],
    s4_regions: usize,
    batch: usize,
    progress: &dyn Fn(Stage, f32) -> Result<()>,
    timings: &mut Timings,
    mut step: impl FnMut(&[[f64; 3]], &dyn Fn() -> Result<()>) -> Result<(Vec<Prediction>, f64, f64)>,
) -> Result<Vec<Prediction>> {
    let (mut reformat_s, mut cnn_s) = (0.0, 0.0);
    let mut predictions = Vec::with_capacity(regions.len());
    // S4's regions and the sub-regions go in batches of their own: the CPU engine's float
    // results may depend on a batch's size, and S4's findings must not change when the
    // sub-region stage is switched on.
    let (s4, sub) = regions.split_at(s4_regions);
    for chunk in s4.chunks(batch.max(1)).chain(sub.chunks(batch.max(1))) {
        let done = predictions.len() as f32 / regions.len() as f32;
        progress(Stage::Reformat, done)?;
        let centres: Vec<[f64; 3]> = chunk.iter().map(|r| r.max_lps).collect();
        let (batch_predictions, reformat, cnn) =
            step(&centres, &|| progress(Stage::Classify, done))?;
        if batch_predictions.len() != chunk.len() {
            return Err(Error::Internal(format!(
                "{} predictions for {} regions",
                batch_predictions.len(),
                chunk.len()
            )));
        }
        predictions.extend(batch_predictions);
        reformat_s += reformat;
        cnn_s += cnn;
    }
    timings.add(Stage::Reformat, reformat_s);
    timings.add(Stage::Classify, cnn_s);
    Ok(predictions)
}

/// The share of the common grid's voxels (`inside` of `total`) that lie inside the CT; none is
/// an error.
fn check_ct_coverage(
    pet: &Volume<f32>,
    ct: &Volume<f32>,
    inside: usize,
    total: usize,
) -> Result<f64> {
    if inside == 0 {
        return Err(GridError::no_overlap(pet.geometry(), ct.geometry()).into());
    }
    Ok(inside as f64 / total as f64)
}

/// Below this share of the PET's axial extent covered by the CT a study is refused by default:
/// a PET/CT's CT spans the whole PET (it corrects attenuation), so a CT covering less than most
/// of it is the wrong CT or a truncated series, and the uncovered part would be read as air.
pub const DEFAULT_MIN_CT_COVERAGE: f64 = 0.9;

/// The share of the PET field of view's extent along patient z (superior–inferior) that the
/// CT's field of view covers, in [0, 1].
pub fn ct_axial_coverage(pet: &Geometry, ct: &Geometry) -> f64 {
    let (pet_lo, pet_hi) = grid::field_of_view(pet);
    let (ct_lo, ct_hi) = grid::field_of_view(ct);
    let overlap = pet_hi[2].min(ct_hi[2]) - pet_lo[2].max(ct_lo[2]);
    (overlap / (pet_hi[2] - pet_lo[2])).clamp(0.0, 1.0)
}

/// What one study's stages allocate beyond its inputs, estimated from the geometries alone so
/// that an over-budget study is refused before anything is allocated.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WorkingSet {
    /// Voxels of the common 3 mm grid (S3), `dims` of it.
    pub grid_voxels: u64,
    pub grid_dims: [usize; 3],
    /// PET and CT on the common grid: 8 bytes per grid voxel.
    pub grid_bytes: u64,
    /// Regions on the native PET grid (S4): the label map, the visiting order and its sort
    /// scratch, and the report's label map (at most 24 bytes per PET voxel), and the SUVpeak
    /// sphere's offsets (huge where the PET's voxels are tiny).
    pub regions_bytes: u64,
    /// The sub-region stage, when on (`regions::subregions`): its maps and the flooding's
    /// arrays, at most 80 bytes per PET voxel (every voxel in a region, each its own maximum).
    pub subregions_bytes: u64,
    /// One batch of network input, its zero-padded copy and the activations: at most four
    /// times the input of a batch.
    pub batch_bytes: u64,
    /// Copies of PET and CT when non-finite voxels are to be replaced.
    pub copies_bytes: u64,
}

impl WorkingSet {
    fn of(
        pet: &Geometry,
        ct: &Geometry,
        batch_floats: usize,
        replace_non_finite: bool,
        subregions: bool,
    ) -> Result<Self> {
        let grid = grid::common_grid(pet)?;
        let grid_voxels = grid.len() as u64;
        let pet_voxels = pet.len() as u64;
        Ok(Self {
            grid_voxels,
            grid_dims: grid.dims(),
            grid_bytes: 8 * grid_voxels,
            regions_bytes: 24 * pet_voxels + regions::peak_sphere_bytes(pet),
            subregions_bytes: if subregions {
                regions::SUBREGIONS_BYTES_PER_VOXEL * pet_voxels
            } else {
                0
            },
            batch_bytes: 16 * batch_floats as u64,
            copies_bytes: if replace_non_finite {
                4 * (pet_voxels + ct.len() as u64)
            } else {
                0
            },
        })
    }

    pub fn total(&self) -> u64 {
        self.grid_bytes
            + self.regions_bytes
            + self.subregions_bytes
            + self.batch_bytes
            + self.copies_bytes
    }
}

impl std::fmt::Display for WorkingSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let [x, y, z] = self.grid_dims;
        write!(
            f,
            "PET and CT on the 3 mm grid of {x}×{y}×{z} voxels: {}; regions on the PET grid: {}; \
             one network batch: {}",
            memory::mib(self.grid_bytes),
            memory::mib(self.regions_bytes),
            memory::mib(self.batch_bytes)
        )?;
        if self.subregions_bytes > 0 {
            write!(f, "; sub-regions: {}", memory::mib(self.subregions_bytes))?;
        }
        if self.copies_bytes > 0 {
            write!(
                f,
                "; copies with non-finite voxels replaced: {}",
                memory::mib(self.copies_bytes)
            )?;
        }
        Ok(())
    }
}

/// The input unchanged when every voxel is finite; otherwise an error, or (when the host asked
/// for it) a copy with non-finite voxels set to `fill` and a warning with their count.
fn finite_or_replaced<'a>(
    volume: &'a Volume<f32>,
    what: &'static str,
    fill: f32,
    replace: bool,
) -> Result<Cow<'a, Volume<f32>>> {
    match volume.check_finite(what) {
        Ok(()) => Ok(Cow::Borrowed(volume)),
        Err(e) if !replace => Err(e.into()),
        Err(_) => {
            let mut copy = volume.clone();
            let count = copy.replace_non_finite(fill);
            log::warn!("{what}: {count} non-finite voxels set to {fill}");
            Ok(Cow::Owned(copy))
        }
    }
}

/// Pipeline stages in order, as timed in the report and passed to a progress callback.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Input checks (finite voxels).
    Check,
    /// PET and CT onto the common 3 mm grid (and the CT's skeleton volume there).
    Grid,
    /// Uptake regions at 45 % of SUVmax on the native PET grid.
    Regions,
    /// Network input for every region.
    Reformat,
    /// CNN inference.
    Classify,
    /// miTNM staging and burden.
    Staging,
}

impl Stage {
    pub fn name(self) -> &'static str {
        match self {
            Stage::Check => "check",
            Stage::Grid => "grid",
            Stage::Regions => "regions",
            Stage::Reformat => "reformat",
            Stage::Classify => "classify",
            Stage::Staging => "staging",
        }
    }
}

/// Per-study options of [`Analyzer::analyze`].
#[derive(Clone)]
pub struct AnalyzeOptions<'a> {
    /// S4 parameters (45 % of SUVmax, seeds above 1 SUV, 26-connectivity by default).
    pub regions: RegionParams,
    /// The second candidate stage (`regions::subregions`): foci inside S4 regions become extra
    /// candidates. On by default; `None` classifies S4's regions alone, as the paper does.
    pub subregions: Option<SubregionParams>,
    /// Suspicious threshold; `None` = the model's operating point for the study's tracer
    /// ([`Model::operating_points`]). Given without `distant_threshold`, it holds for every
    /// finding.
    pub threshold: Option<f32>,
    /// Suspicious threshold of distant findings (M1a, M1b, M1c); `None` = `threshold` when that
    /// is given, else the model's distant operating point for the study's tracer.
    pub distant_threshold: Option<f32>,
    /// Staging settings; its two thresholds are replaced by the ones above.
    pub staging: StagingConfig,
    /// Map non-finite voxels to 0 SUV / −1000 HU (with a warning) instead of rejecting them.
    pub replace_non_finite: bool,
    /// Most bytes the study's stages may allocate beyond its inputs ([`WorkingSet`]); a study
    /// over it is refused before anything is allocated. `None`: half the machine's physical memory,
    /// at most 4 GiB.
    pub memory_budget: Option<u64>,
    /// Least share of the PET's axial extent the CT must cover, in [0, 1]; `None`:
    /// [`DEFAULT_MIN_CT_COVERAGE`]. Below it the study is refused; a partial cover above it is
    /// logged as a warning, and the report states the coverage either way.
    pub min_ct_coverage: Option<f64>,
    /// Called at the start of each stage (reformat and classify alternate, once per batch of
    /// regions) with the fraction done; returning
    /// `false` cancels the analysis (`Error::Cancelled`). Called on the analyzing thread.
    pub progress: Option<&'a dyn Fn(Stage, f32) -> bool>,
}

impl Default for AnalyzeOptions<'_> {
    fn default() -> Self {
        Self {
            regions: RegionParams::default(),
            subregions: Some(SubregionParams::default()),
            threshold: None,
            distant_threshold: None,
            staging: StagingConfig::default(),
            replace_non_finite: false,
            memory_budget: None,
            min_ct_coverage: None,
            progress: None,
        }
    }
}

impl AnalyzeOptions<'_> {
    /// Checks the options every host shares (the C ABI, the CLI and Rust callers alike).
    pub fn validate(&self) -> Result<()> {
        check_threshold("threshold", self.threshold)?;
        check_threshold("distant_threshold", self.distant_threshold)?;
        if let Some(params) = &self.subregions {
            params
                .validate()
                .map_err(|e| Error::InvalidArgument(e.to_string()))?;
        }
        if let Some(c) = self.min_ct_coverage.filter(|c| !(0.0..=1.0).contains(c)) {
            return Err(Error::InvalidArgument(format!(
                "min_ct_coverage = {c}; expected a share in [0, 1]"
            )));
        }
        Ok(())
    }
}

/// An operating point is a probability, in [0, 1], as staging's own rule has it (0 calls every
/// region suspicious: the end of an ROC sweep, which evaluation uses).
fn check_threshold(name: &str, value: Option<f32>) -> Result<()> {
    match value {
        Some(t) if !(0.0..=1.0).contains(&t) => Err(Error::InvalidArgument(format!(
            "{name} = {t}; expected a value in [0, 1]"
        ))),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_threshold_given_alone_holds_for_every_finding() {
        let analyzer = Analyzer::new(AnalyzerConfig::default()).unwrap();
        let points = |threshold, distant_threshold| OperatingPoints {
            threshold,
            distant_threshold,
        };
        let [psma, fdg] = [Tracer::Psma, Tracer::Fdg].map(|tracer| {
            let model = analyzer.model().operating_points(tracer);
            let cases = [
                ((None, None), model),
                ((Some(0.3), None), points(0.3, 0.3)),
                ((None, Some(0.7)), points(model.threshold, 0.7)),
                ((Some(0.3), Some(0.7)), points(0.3, 0.7)),
            ];
            for ((threshold, distant), expected) in cases {
                let got = analyzer.operating_points(tracer, threshold, distant);
                assert_eq!(got, expected, "{tracer:?} {threshold:?} {distant:?}");
            }
            model
        });
        assert_ne!(psma, fdg, "the embedded model gives FDG its own pair");
    }

    #[test]
    fn validates_threads_and_model_path() {
        assert!(Analyzer::new(AnalyzerConfig::default()).is_ok());
        let too_many = AnalyzerConfig {
            threads: MAX_THREADS + 1,
            ..Default::default()
        };
        assert!(matches!(
            Analyzer::new(too_many),
            Err(Error::InvalidArgument(_))
        ));
        let huge_batch = AnalyzerConfig {
            batch_size: MAX_BATCH_SIZE + 1,
            ..Default::default()
        };
        assert!(matches!(
            Analyzer::new(huge_batch),
            Err(Error::InvalidArgument(_))
        ));
        let missing = AnalyzerConfig {
            model_path: Some("/nonexistent/model.safetensors".into()),
            ..Default::default()
        };
        assert!(matches!(
            Analyzer::new(missing),
            Err(Error::InvalidArgument(_))
        ));
        let auto = Analyzer::new(AnalyzerConfig::default()).unwrap();
        let expected = match gpu::CudaBackend::open(0) {
            Ok(_) => Device::Cuda,
            Err(_) => Device::Cpu,
        };
        assert_eq!(auto.device(), expected);
        assert_eq!(auto.model().classes().len(), 23);
        assert!(auto.model().is_trained());
    }
}
