//! The analyzer: configuration, model and compute device, reused across studies (DESIGN S0).

use std::borrow::Cow;
use std::path::PathBuf;
use std::time::Instant;

use crate::error::{Error, Result};
use crate::model::engine::MAX_BATCH_SIZE;
use crate::model::{Engine, EngineConfig, Model, Prediction};
use crate::regions::RegionParams;
use crate::report::{ModelInfo, RegionStats, Report, RunInfo, StageTiming};
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
    /// Regions per inference batch (bounds the working memory); 0 = the engine's default.
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
#[derive(Debug)]
pub struct Analyzer {
    config: AnalyzerConfig,
    device: Device,
    model: Model,
    engine: Engine,
    /// Workers for the parallel stages (resampling, regions, reformations) when the host asked
    /// for a thread count; `None` uses rayon's global pool (one thread per core).
    pool: Option<rayon::ThreadPool>,
}

impl Analyzer {
    /// Validates the configuration and resolves the device.
    pub fn new(config: AnalyzerConfig) -> Result<Self> {
        config.validate()?;
        let device = match config.device {
            Device::Cpu => Device::Cpu,
            Device::Auto => {
                log::info!(
                    "device auto: using the CPU (analysis does not use the CUDA kernels yet)"
                );
                Device::Cpu
            }
            Device::Cuda => {
                return Err(Error::Device(
                    "device = cuda was requested, but analysis does not use the CUDA kernels yet"
                        .into(),
                ));
            }
        };
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
        })
    }

    /// The loaded model: class table, input spec, threshold, provenance.
    pub fn model(&self) -> &Model {
        &self.model
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

    /// Analyzes one study: PET in SUV and CT in HU, each on its own grid in patient space.
    /// SUV → common 3 mm grid → uptake regions → reformations → CNN → staging (DESIGN S0).
    /// Safe to call from several threads at once on one analyzer.
    pub fn analyze(
        &self,
        pet: &Volume<f32>,
        ct: &Volume<f32>,
        tracer: Tracer,
        options: &AnalyzeOptions,
    ) -> Result<Report> {
        let mut timings = Vec::new();
        let mut timed = |stage: Stage, seconds: f64| {
            timings.push(StageTiming {
                stage: stage.name().to_string(),
                ms: seconds * 1e3,
            })
        };
        let progress = |stage: Stage, fraction: f32| match options.progress {
            Some(report) if !report(stage, fraction) => Err(Error::Cancelled),
            _ => Ok(()),
        };

        progress(Stage::Check, 0.0)?;
        let t = Instant::now();
        let pet = finite_or_replaced(pet, "PET", 0.0, options.replace_non_finite)?;
        let ct = finite_or_replaced(ct, "CT", -1000.0, options.replace_non_finite)?;
        timed(Stage::Check, t.elapsed().as_secs_f64());

        progress(Stage::Grid, 0.0)?;
        let t = Instant::now();
        let (pet3, ct3) = self.parallel(|| grid::to_common_grid(&pet, &ct))?;
        timed(Stage::Grid, t.elapsed().as_secs_f64());

        progress(Stage::Regions, 0.0)?;
        let t = Instant::now();
        let params = &options.regions;
        let segmentation = self.parallel(|| regions::segment(&pet, params))?;
        timed(Stage::Regions, t.elapsed().as_secs_f64());

        let (predictions, reformat_s, cnn_s) =
            self.classify(&pet3, &ct3, &segmentation.regions, tracer, &progress)?;
        timed(Stage::Reformat, reformat_s);
        timed(Stage::Classify, cnn_s);

        progress(Stage::Staging, 0.0)?;
        let t = Instant::now();
        let findings: Vec<FindingInput> = segmentation
            .regions
            .iter()
            .zip(predictions)
            .map(|(region, p)| FindingInput {
                region: RegionStats::from(region),
                p_suspicious: p.p_suspicious,
                location_probs: p.location_probs,
            })
            .collect();
        let config = StagingConfig {
            threshold: options.threshold.unwrap_or(self.model.threshold()),
            ..options.staging.clone()
        };
        let staged = staging::stage(
            &findings,
            self.model.classes(),
            staging::skeleton_volume_ml(&ct3),
            &config,
        )?;
        timed(Stage::Staging, t.elapsed().as_secs_f64());
        progress(Stage::Staging, 1.0)?;
        Ok(Report::new(
            staged,
            segmentation.labels,
            RunInfo {
                tracer,
                model: ModelInfo {
                    id: self.model.model_id().to_string(),
                    trained: self.model.is_trained(),
                },
                device: "cpu".into(),
                timings,
            },
        ))
    }

    /// Reformations and CNN in batches of the engine's size, so memory stays bounded however
    /// many regions a study has. Returns the predictions and the seconds spent in each part.
    fn classify(
        &self,
        pet3: &Volume<f32>,
        ct3: &Volume<f32>,
        regions: &[regions::Region],
        tracer: Tracer,
        progress: &dyn Fn(Stage, f32) -> Result<()>,
    ) -> Result<(Vec<Prediction>, f64, f64)> {
        let spec = self.model.input_spec();
        let per_region = spec.tensor_len();
        let batch = self.engine.batch_size().min(regions.len()).max(1);
        let mut inputs = vec![0.0f32; batch * per_region];
        let bits = vec![tracer.bit(); batch];
        let (mut reformat_s, mut cnn_s) = (0.0, 0.0);
        let mut predictions = Vec::with_capacity(regions.len());
        for chunk in regions.chunks(batch) {
            progress(
                Stage::Classify,
                predictions.len() as f32 / regions.len() as f32,
            )?;
            let n = chunk.len();
            let centres: Vec<[f64; 3]> = chunk.iter().map(|r| r.max_lps).collect();
            let t = Instant::now();
            self.parallel(|| {
                mpr::extract_batch(
                    pet3,
                    ct3,
                    spec,
                    &centres,
                    None,
                    &mut inputs[..n * per_region],
                )
            })?;
            reformat_s += t.elapsed().as_secs_f64();
            let t = Instant::now();
            predictions.extend(self.engine.infer(&inputs[..n * per_region], &bits[..n])?);
            cnn_s += t.elapsed().as_secs_f64();
        }
        Ok((predictions, reformat_s, cnn_s))
    }

    /// Runs a parallel stage on the analyzer's workers.
    fn parallel<R: Send>(&self, stage: impl FnOnce() -> R + Send) -> R {
        match &self.pool {
            Some(pool) => pool.install(stage),
            None => stage(),
        }
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
    /// PET and CT onto the common 3 mm grid.
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
    /// Suspicious threshold; `None` = the model's operating point.
    pub threshold: Option<f32>,
    /// Staging settings; its `threshold` is replaced by the one above.
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
        assert_eq!(auto.device(), Device::Cpu);
        assert_eq!(auto.model().classes().len(), 23);
        assert!(!auto.model().is_trained());
    }
}
