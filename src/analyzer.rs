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
use crate::gpu::cnn::{CHUNK_REGIONS, DeviceNetwork, NetworkSpec};
use crate::gpu::mpr::ReformatSpec;
use crate::gpu::{self, CudaBackend};
use crate::model::engine::MAX_BATCH_SIZE;
use crate::model::{Engine, EngineConfig, Model, OperatingPoints, Prediction};
use crate::regions::{RegionParams, Segmentation};
use crate::report::{ModelInfo, Report, RunInfo, StageTiming};
use crate::staging::{FindingInput, StagingConfig};
use crate::tracer::Tracer;
use crate::volume::Volume;
use crate::{grid, mpr, regions, staging};

/// Where inference and the heavy stages run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Device {
    /// CUDA when a usable device exists, else the CPU (with a log line saying why).
    #[default]
    Auto,
    Cpu,
    Cuda,
}

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
    /// `cuda` fails with [`Error::Device`] when it cannot.
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
    /// the device fails the study with [`Error::Device`]; it is not retried on the CPU.
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
        let pet = finite_or_replaced(pet, "PET", 0.0, options.replace_non_finite)?;
        let ct = finite_or_replaced(ct, "CT", -1000.0, options.replace_non_finite)?;
        timings.add(Stage::Check, t.elapsed().as_secs_f64());

        let study = Study {
            pet: &pet,
            ct: &ct,
            tracer,
            options,
            progress: &progress,
        };
        let classified = match &self.gpu {
            Some(gpu) => self.classify_on_device(gpu, &study, &mut timings)?,
            None => self.classify_on_host(&study, &mut timings)?,
        };

        progress(Stage::Staging, 0.0)?;
        let t = Instant::now();
        let findings: Vec<FindingInput> = classified
            .segmentation
            .regions
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
        let staged = staging::stage(
            &findings,
            self.model.classes(),
            classified.skeleton_volume_ml,
            &config,
        )?;
        timings.add(Stage::Staging, t.elapsed().as_secs_f64());
        progress(Stage::Staging, 1.0)?;
        Ok(Report::new(
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
                timings: timings.0,
            },
        ))
    }

    /// Grid, regions, reformations and CNN on the host.
    fn classify_on_host(&self, study: &Study<'_>, timings: &mut Timings) -> Result<Classified> {
        (study.progress)(Stage::Grid, 0.0)?;
        let t = Instant::now();
        let (pet3, ct3) = self.parallel(|| grid::to_common_grid(study.pet, study.ct))?;
        let skeleton_volume_ml = staging::skeleton_volume_ml(&ct3);
        timings.add(Stage::Grid, t.elapsed().as_secs_f64());

        (study.progress)(Stage::Regions, 0.0)?;
        let t = Instant::now();
        let (pet, params) = (study.pet, &study.options.regions);
        let segmentation = self.parallel(|| regions::segment(pet, params))?;
        timings.add(Stage::Regions, t.elapsed().as_secs_f64());

        let spec = self.model.input_spec();
        let per_region = spec.tensor_len();
        let batch = self.engine.batch_size();
        let mut inputs = vec![0.0f32; batch.min(segmentation.regions.len()) * per_region];
        let bits = vec![study.tracer.bit(); batch];
        let predictions = in_batches(
            &segmentation.regions,
            batch,
            study.progress,
            timings,
            |centres| {
                let inputs = &mut inputs[..centres.len() * per_region];
                let t = Instant::now();
                self.parallel(|| mpr::extract_batch(&pet3, &ct3, spec, centres, None, inputs))?;
                let reformat_s = t.elapsed().as_secs_f64();
                let t = Instant::now();
                let predictions = self.engine.infer(inputs, &bits[..centres.len()])?;
                Ok((predictions, reformat_s, t.elapsed().as_secs_f64()))
            },
        )?;
        Ok(Classified {
            segmentation,
            predictions,
            skeleton_volume_ml,
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
        // coverage check and log line as grid::to_common_grid.
        let outside = device
            .count_voxels(&device.resample(&ct, &grid, f32::NAN)?, 1.0)?
            .non_finite;
        check_ct_coverage(
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
        timings.add(Stage::Regions, t.elapsed().as_secs_f64());

        let spec = ReformatSpec::from_spec(self.model.input_spec());
        let batch = match self.config.batch_size {
            0 => CHUNK_REGIONS,
            n => n,
        };
        let bits = vec![study.tracer.bit(); batch];
        let predictions = in_batches(
            &segmentation.regions,
            batch,
            study.progress,
            timings,
            |centres| {
                let t = Instant::now();
                let input = device.reformat::<u16>(&pet3, &ct3, &spec, centres, None)?;
                // The gather is asynchronous: wait for it so that its time is not the CNN's.
                device.synchronize()?;
                let reformat_s = t.elapsed().as_secs_f64();
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
            predictions,
            skeleton_volume_ml,
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
    progress: &'a dyn Fn(Stage, f32) -> Result<()>,
}

/// What the stages before staging produce, on either device.
struct Classified {
    segmentation: Segmentation,
    /// One per region, in region order.
    predictions: Vec<Prediction>,
    /// CT > 200 HU on the common grid (staging's dmi).
    skeleton_volume_ml: f64,
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
/// regions a study has; the host may cancel between batches. `step` classifies the regions
/// centred at the given points and says how long its reformation and CNN parts took.
fn in_batches(
    regions: &[regions::Region],
    batch: usize,
    progress: &dyn Fn(Stage, f32) -> Result<()>,
    timings: &mut Timings,
    mut step: impl FnMut(&[[f64; 3]]) -> Result<(Vec<Prediction>, f64, f64)>,
) -> Result<Vec<Prediction>> {
    let (mut reformat_s, mut cnn_s) = (0.0, 0.0);
    let mut predictions = Vec::with_capacity(regions.len());
    for chunk in regions.chunks(batch.max(1)) {
        progress(
            Stage::Classify,
            predictions.len() as f32 / regions.len() as f32,
        )?;
        let centres: Vec<[f64; 3]> = chunk.iter().map(|r| r.max_lps).collect();
        let (batch_predictions, reformat, cnn) = step(&centres)?;
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

/// The error (or log line) of `grid::to_common_grid` when the CT covers `inside` of the `total`
/// voxels of the common grid over the PET: none is an error, part of it is worth a note.
fn check_ct_coverage(
    pet: &Volume<f32>,
    ct: &Volume<f32>,
    inside: usize,
    total: usize,
) -> Result<()> {
    if inside == 0 {
        let (pet_lo, pet_hi) = grid::field_of_view(pet.geometry());
        let (ct_lo, ct_hi) = grid::field_of_view(ct.geometry());
        return Err(grid::GridError::NoOverlap {
            pet_lo,
            pet_hi,
            ct_lo,
            ct_hi,
        }
        .into());
    }
    if inside < total {
        log::info!(
            "the CT covers {:.1} % of the PET field of view; the rest is −1000 HU",
            100.0 * inside as f64 / total as f64
        );
    }
    Ok(())
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
#[derive(Clone, Default)]
pub struct AnalyzeOptions<'a> {
    /// S4 parameters (45 % of SUVmax, seeds above 1 SUV, 26-connectivity by default).
    pub regions: RegionParams,
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
    /// Called at the start of each stage and between batches with the fraction done; returning
    /// `false` cancels the analysis (`Error::Cancelled`). Called on the analyzing thread.
    pub progress: Option<&'a dyn Fn(Stage, f32) -> bool>,
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
