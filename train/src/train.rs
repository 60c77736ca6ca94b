//! The training loop of DESIGN S12: strategies I–VI, early stopping on a validation split,
//! checkpoints, resumable runs, a progress bar with loss and ETA, one seed for everything.
//!
//! Randomness: the network's initial weights come from the device generator seeded with `seed`;
//! the split from a ChaCha8 stream seeded with `seed`; each epoch's sampling and augmentation from
//! a ChaCha8 stream seeded with (`seed`, epoch), so a resumed run draws what the uninterrupted run
//! would have drawn.

use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::module::Module;
use burn::optim::{AdamConfig, GradientsParams, ModuleOptimizer};
use burn::prelude::*;
use burn::store::ModuleRecord;
use burn::tensor::activation::{sigmoid, softmax};
use burn::tensor::{Int, TensorData};
use indicatif::{ProgressBar, ProgressStyle};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use uptake::Tracer;
use uptake::classes::{LocationClass, Role, v1_classes};
use uptake::model::TrainingInfo;
use uptake::model::format::{parse, read_file};
use uptake::mpr::{Augment, MprSpec};
use uptake::regions::RegionParams;

use crate::data::{Candidate, Sampling, StudyCache, epoch_examples};
use crate::eval::ap::average_precision;
use crate::export::v1_metadata;
use crate::network::{NetShape, Output, Targets, UptakeNet, loss};

/// Why training stopped early.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error("{0}")]
    Config(String),
    #[error("checkpoint {path}: {message}")]
    Checkpoint { path: PathBuf, message: String },
    #[error("model file {path}: {message}")]
    InitModel { path: PathBuf, message: String },
    #[error("reformation: {0}")]
    Mpr(#[from] uptake::mpr::MprError),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// The paper's training strategies (Methods, I–VI).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
pub enum Strategy {
    /// Sequential sampling of all examples, PSMA.
    I,
    /// Balanced sampling (32 / 32 / 4 per subject and epoch), PSMA.
    II,
    /// II + affine augmentation, PSMA.
    III,
    /// III on FDG.
    IV,
    /// IV fine-tuned on PSMA as in III (needs `--init` with a strategy IV checkpoint).
    V,
    /// III on PSMA + FDG with the tracer bit in the suspicious head.
    VI,
}

impl Strategy {
    pub fn sampling(self) -> Sampling {
        match self {
            Strategy::I => Sampling::Sequential,
            _ => Sampling::PAPER_BALANCED,
        }
    }

    pub fn augments(self) -> bool {
        !matches!(self, Strategy::I | Strategy::II)
    }

    /// Tracers whose studies this strategy trains on.
    pub fn tracers(self) -> &'static [Tracer] {
        match self {
            Strategy::IV => &[Tracer::Fdg],
            Strategy::VI => &[Tracer::Psma, Tracer::Fdg],
            _ => &[Tracer::Psma],
        }
    }

    /// Only VI feeds the tracer bit; single-tracer strategies hold it at 0, so the input carries
    /// no information there (the paper's single-tracer network has no such input).
    pub fn tracer_bit(self, tracer: Tracer) -> f32 {
        match self {
            Strategy::VI => tracer.bit(),
            _ => 0.0,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Strategy::I => "I: sequential sampling",
            Strategy::II => "II: balanced sampling",
            Strategy::III => "III: II + affine augmentation",
            Strategy::IV => "IV: III on FDG",
            Strategy::V => "V: IV fine-tuned on PSMA",
            Strategy::VI => "VI: III on PSMA + FDG with tracer input",
        }
    }
}

/// Settings of one run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TrainConfig {
    pub strategy: Strategy,
    pub max_epochs: usize,
    pub batch_size: usize,
    pub learning_rate: f64,
    /// Stop after this many epochs without a lower validation loss.
    pub patience: usize,
    pub seed: u64,
    /// Weight of the suspicious term for findings whose true location stages as miM (distant
    /// nodes, bone, organs), against 1 for the others; 1 is S12's plain loss.
    #[serde(default = "plain_weight")]
    pub distant_weight: f32,
    /// Focusing exponent γ of the suspicious term ([`Targets::focal_gamma`]); 0 is S12's BCE.
    #[serde(default)]
    pub focal_gamma: f32,
    /// S4's threshold fraction the cohort's regions were found with (`--region-fraction`);
    /// `None` in runs recorded before it was an option.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region_fraction: Option<f32>,
    /// CT window of the network input in HU (`--ct-window`), written into the exported model
    /// file; `None`: S5's [−300, 300].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ct_window_hu: Option<[f64; 2]>,
}

/// Runs recorded before the distant weight existed used the plain loss.
fn plain_weight() -> f32 {
    1.0
}

impl TrainConfig {
    /// Refuses settings that cannot train, before any study is read or step taken.
    pub fn check(&self) -> Result<(), TrainError> {
        let w = self.distant_weight;
        if !(w.is_finite() && w > 0.0) {
            return Err(TrainError::Config(format!(
                "distant weight {w} must be finite and > 0"
            )));
        }
        let gamma = self.focal_gamma;
        if !(gamma.is_finite() && gamma >= 0.0) {
            return Err(TrainError::Config(format!(
                "focal gamma {gamma} must be finite and >= 0"
            )));
        }
        let spec = self.input_spec();
        let [lo, hi] = spec.ct_window_hu;
        spec.validate()
            .map_err(|e| TrainError::Config(format!("--ct-window={lo},{hi}: {e}")))
    }

    /// The reformations the network is trained on: S5's, with the run's CT window.
    pub fn input_spec(&self) -> MprSpec {
        let s5 = MprSpec::default();
        MprSpec {
            ct_window_hu: self.ct_window_hu.unwrap_or(s5.ct_window_hu),
            ..s5
        }
    }
}

/// What a run has done so far (`state.json` in the run folder).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunState {
    pub config: TrainConfig,
    /// Epochs completed.
    pub epochs_done: usize,
    pub best_epoch: usize,
    pub best_validation_loss: f64,
    pub history: Vec<EpochRecord>,
    pub stopped_early: bool,
    /// The weights the run started from (`--init`): a checkpoint's folder and file name, or a
    /// model file's model id with them; none: random weights.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init: Option<String>,
}

impl RunState {
    /// The `training.strategy` line of a model exported from this run: what a reader needs to
    /// repeat it (settings left at their defaults are not named).
    pub fn provenance(&self) -> String {
        let c = &self.config;
        let mut line = format!(
            "{}; best epoch {} of {}; batch {}, Adam lr {}, seed {}",
            c.strategy.name(),
            self.best_epoch,
            self.epochs_done,
            c.batch_size,
            c.learning_rate,
            c.seed
        );
        if c.distant_weight != plain_weight() {
            line.push_str(&format!("; distant weight {}", c.distant_weight));
        }
        if c.focal_gamma != 0.0 {
            line.push_str(&format!("; focal gamma {}", c.focal_gamma));
        }
        if let Some(f) = c
            .region_fraction
            .filter(|&f| f != RegionParams::default().fraction)
        {
            line.push_str(&format!("; regions at {f} of SUVmax"));
        }
        let [lo, hi] = c.input_spec().ct_window_hu;
        if [lo, hi] != MprSpec::default().ct_window_hu {
            line.push_str(&format!("; CT window [{lo}, {hi}] HU"));
        }
        if let Some(init) = &self.init {
            line.push_str(&format!("; from {init}"));
        }
        line
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EpochRecord {
    pub epoch: usize,
    pub examples: usize,
    pub train_loss: f64,
    pub validation_loss: f64,
    pub validation_average_precision: Option<f64>,
    pub validation_accuracy_suspicious: Option<f64>,
    pub seconds: f64,
}

/// Files of a run folder.
pub struct RunDir(pub PathBuf);

impl RunDir {
    pub fn state(&self) -> PathBuf {
        self.0.join("state.json")
    }
    pub fn last_model(&self) -> PathBuf {
        self.0.join("last.bpk")
    }
    pub fn last_optimizer(&self) -> PathBuf {
        self.0.join("last-optimizer.bpk")
    }
    /// The weights of the epoch with the lowest validation loss.
    pub fn best_model(&self) -> PathBuf {
        self.0.join("best.bpk")
    }
}

/// Network inputs and targets for `examples` ((study, candidate) pairs), with one augmentation
/// per example when `augments` is given; reformations, tracer bit and loss as `config` sets them.
pub fn batch_tensors(
    studies: &[StudyCache],
    examples: &[(usize, usize)],
    augments: Option<&[Augment]>,
    config: &TrainConfig,
    device: &Device,
) -> Result<(Tensor<4>, Tensor<2>, Targets), TrainError> {
    let strategy = config.strategy;
    let spec = config.input_spec();
    let len = spec.tensor_len();
    let n = examples.len();
    let mut input = vec![0.0f32; n * len];
    input
        .par_chunks_mut(len)
        .enumerate()
        .try_for_each(|(i, out)| {
            let (s, c) = examples[i];
            let study = &studies[s];
            let augment = augments.map_or(Augment::IDENTITY, |a| a[i]);
            uptake::mpr::extract(
                &study.pet3,
                &study.ct3,
                &spec,
                study.candidates[c].centre_lps,
                &augment,
                out,
            )
        })?;
    let candidate = |&(s, c): &(usize, usize)| -> &Candidate { &studies[s].candidates[c] };
    let tracer: Vec<f32> = examples
        .iter()
        .map(|&(s, _)| strategy.tracer_bit(studies[s].tracer))
        .collect();
    let suspicious: Vec<f32> = examples
        .iter()
        .map(|e| f32::from(u8::from(candidate(e).suspicious())))
        .collect();
    let location: Vec<i64> = examples
        .iter()
        .map(|e| i64::from(candidate(e).location.unwrap_or(0)))
        .collect();
    let known: Vec<f32> = examples
        .iter()
        .map(|e| f32::from(u8::from(candidate(e).location.is_some())))
        .collect();
    let classes = v1_classes();
    let weights: Vec<f32> = examples
        .iter()
        .map(|e| suspicious_weight(&classes, candidate(e).location, config.distant_weight))
        .collect();
    let side = spec.plane_size;
    Ok((
        Tensor::from_data(
            TensorData::new(input, [n, spec.tensor_len() / (side * side), side, side]),
            device,
        ),
        Tensor::from_data(TensorData::new(tracer, [n, 1]), device),
        Targets {
            suspicious: Tensor::from_data(TensorData::new(suspicious, [n, 1]), device),
            location: Tensor::<1, Int>::from_data(TensorData::new(location, [n]), device),
            location_known: Tensor::from_data(TensorData::new(known, [n]), device),
            suspicious_weight: Tensor::from_data(TensorData::new(weights, [n, 1]), device),
            focal_gamma: config.focal_gamma,
        },
    ))
}

/// Weight of a finding's suspicious term: `distant_weight` where its true location (a class of
/// `classes`) stages as miM (a distant node, bone or an organ), 1 elsewhere and where the
/// location is unknown.
pub fn suspicious_weight(
    classes: &[LocationClass],
    location: Option<u32>,
    distant_weight: f32,
) -> f32 {
    let distant = location
        .and_then(|l| classes.get(l as usize))
        .is_some_and(|c| matches!(c.role, Role::M1a | Role::M1b | Role::M1c));
    if distant { distant_weight } else { 1.0 }
}

/// Per-candidate predictions: (p_suspicious, location probabilities).
pub struct Predictions {
    pub p_suspicious: Vec<f32>,
    pub location_probabilities: Vec<Vec<f32>>,
    /// Mean loss over the candidates (the suspicious term weighted as in training).
    pub loss: f64,
}

/// Runs `net` (batch norm in inference mode) on every candidate of `studies`, unaugmented, in
/// batches of `config`'s size, on its reformations and with its loss.
pub fn predict(
    net: &UptakeNet,
    studies: &[StudyCache],
    config: &TrainConfig,
    device: &Device,
) -> Result<Predictions, TrainError> {
    let examples: Vec<(usize, usize)> = studies
        .iter()
        .enumerate()
        .flat_map(|(s, st)| (0..st.candidates.len()).map(move |c| (s, c)))
        .collect();
    let mut p_suspicious = Vec::with_capacity(examples.len());
    let mut location_probabilities = Vec::with_capacity(examples.len());
    let mut loss_sum = 0.0;
    for chunk in examples.chunks(config.batch_size.max(1)) {
        let (input, tracer, targets) = batch_tensors(studies, chunk, None, config, device)?;
        let output = net.forward(input, tracer);
        loss_sum += scalar(loss(&output, &targets)) * chunk.len() as f64;
        let Output {
            suspicious,
            location,
        } = output;
        let classes = location.dims()[1];
        p_suspicious.extend(to_vec(sigmoid(suspicious)));
        let probs = to_vec(softmax(location, 1));
        location_probabilities.extend(probs.chunks(classes).map(<[f32]>::to_vec));
    }
    Ok(Predictions {
        p_suspicious,
        location_probabilities,
        loss: loss_sum / examples.len().max(1) as f64,
    })
}

fn to_vec<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().try_to_vec::<f32>().unwrap_or_default()
}

fn scalar(t: Tensor<1>) -> f64 {
    to_vec(t).first().copied().map_or(f64::NAN, f64::from)
}

/// Splits subjects into (train, validation) with a seeded shuffle of each tracer's subjects
/// (sorted by name first, so the split does not depend on load order), putting
/// `validation_fraction` of them (at least one where there are two or more) into validation.
pub fn split_validation(
    studies: Vec<StudyCache>,
    validation_fraction: f64,
    seed: u64,
) -> (Vec<StudyCache>, Vec<StudyCache>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let (psma, fdg): (Vec<_>, Vec<_>) = studies.into_iter().partition(|s| s.tracer == Tracer::Psma);
    let (mut train, mut validation) = (Vec::new(), Vec::new());
    for mut group in [psma, fdg] {
        group.sort_by(|a, b| a.subject.cmp(&b.subject));
        group.shuffle(&mut rng);
        let n_val = if group.len() >= 2 {
            ((group.len() as f64 * validation_fraction).round() as usize).clamp(1, group.len() - 1)
        } else {
            0
        };
        let train_part = group.split_off(n_val);
        validation.extend(group);
        train.extend(train_part);
    }
    (train, validation)
}

/// Generator of epoch `epoch`'s sampling and augmentation.
fn epoch_rng(seed: u64, epoch: usize) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(epoch as u64 + 1);
    rng
}

fn checkpoint_error(path: &Path, e: impl std::fmt::Display) -> TrainError {
    TrainError::Checkpoint {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

/// Loads network weights saved by a run (`best.bpk` / `last.bpk`): with batch norm, or without
/// where the run started from a model file.
pub fn load_net(path: &Path, shape: NetShape, device: &Device) -> Result<UptakeNet, TrainError> {
    let record = ModuleRecord::load(path).map_err(|e| checkpoint_error(path, e))?;
    let with_norm = UptakeNet::new(shape, device);
    let without_norm = with_norm.clone().without_norm();
    // The two structures save different numbers of tensors.
    let net = if record.len() == without_norm.clone().into_record().len() {
        without_norm
    } else {
        with_norm
    };
    net.try_load_record(record)
        .map_err(|e| checkpoint_error(path, e))
}

/// Weights to start a run from, with a name for the run's provenance: a run's checkpoint
/// (`.bpk`), or a model file (`.safetensors`, DESIGN S7) of the v1 network, whose folded network
/// then trains without batch norm. A model file whose PET or CT window differs from the run's
/// (`spec`) in its upper end only is rescaled to it ([`window_scales`]); a checkpoint whose run
/// (its `state.json`) used another CT window is refused.
pub fn load_init(
    path: &Path,
    shape: NetShape,
    spec: &MprSpec,
    device: &Device,
) -> Result<(UptakeNet, String), TrainError> {
    let is_model_file = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("safetensors"));
    if !is_model_file {
        // A run's checkpoint reads reformations in its run's windows (state.json beside it).
        let recorded = path.with_file_name("state.json");
        if recorded.exists() {
            let text = std::fs::read_to_string(&recorded)?;
            let state: RunState =
                serde_json::from_str(&text).map_err(|e| checkpoint_error(&recorded, e))?;
            let [lo, hi] = state.config.input_spec().ct_window_hu;
            if [lo, hi] != spec.ct_window_hu {
                return Err(TrainError::Config(format!(
                    "{}: its run trained on the CT window [{lo}, {hi}] HU: start from it with \
                     --ct-window={lo},{hi}, or from its exported model file, which can be \
                     rescaled to another upper end",
                    path.display()
                )));
            }
        }
        return Ok((load_net(path, shape, device)?, short_name(path)));
    }
    let error = |message: String| TrainError::InitModel {
        path: path.to_path_buf(),
        message,
    };
    let file = read_file(path)
        .and_then(|bytes| parse(&bytes))
        .map_err(|e| error(e.to_string()))?;
    // Same shapes are not enough: export writes the v1 layers, classes and input over them.
    let v1 = v1_metadata("", TrainingInfo::default(), 0.5, spec.clone());
    let m = &file.metadata;
    let same_planes = MprSpec {
        pet_window_suv: spec.pet_window_suv,
        ct_window_hu: spec.ct_window_hu,
        ..m.input.clone()
    } == v1.input;
    for (key, same) in [
        ("architecture", m.architecture == v1.architecture),
        ("classes", m.classes == v1.classes),
        ("input", same_planes),
    ] {
        if !same {
            return Err(error(format!(
                "its {key} metadata is not the v1 network's, which training writes"
            )));
        }
    }
    let scales = window_scales(&m.input, spec).map_err(error)?;
    let planes = spec.planes();
    let lookup = |name: &str| {
        file.tensors.get(name).map(|t| {
            let mut values = t.values.clone();
            if name == "conv1.weight" && t.shape.len() == 4 {
                let (inputs, taps) = (t.shape[1], t.shape[2] * t.shape[3]);
                for (i, w) in values.iter_mut().enumerate() {
                    let channel = (i / taps) % inputs;
                    *w *= scales[(channel / planes).min(1)];
                }
            }
            (t.shape.clone(), values)
        })
    };
    let net = UptakeNet::from_tensors(shape, &lookup, device).map_err(error)?;
    Ok((net, format!("{} ({})", m.model_id, short_name(path))))
}

/// Refuses, before any study is read, what [`train`] would refuse: settings that cannot train,
/// a run to resume that was made with other settings, or starting weights that do not fit.
pub fn check_run(
    config: &TrainConfig,
    run: &RunDir,
    init: Option<&Path>,
    resume: bool,
) -> Result<(), TrainError> {
    start(config, run, init, resume, &Device::flex()).map(|_| ())
}

/// What a run starts from: the recorded state of the run it resumes, or initial weights with
/// their name for the provenance (none: random weights).
enum Start {
    Resume(RunState),
    // Boxed: a network is far larger than a run's state.
    Fresh(Option<Box<(UptakeNet, String)>>),
}

/// [`check_run`]'s refusals, reading the starting point onto `device`.
fn start(
    config: &TrainConfig,
    run: &RunDir,
    init: Option<&Path>,
    resume: bool,
    device: &Device,
) -> Result<Start, TrainError> {
    config.check()?;
    if let Some(state) = resumed_state(config, run, resume)? {
        return Ok(Start::Resume(state));
    }
    match init {
        None if config.strategy == Strategy::V => Err(TrainError::Config(
            "strategy V fine-tunes a strategy IV model: pass --init with its weights".into(),
        )),
        None => Ok(Start::Fresh(None)),
        Some(path) => {
            let weights = load_init(path, NetShape::v1(), &config.input_spec(), device)?;
            Ok(Start::Fresh(Some(Box::new(weights))))
        }
    }
}

/// The recorded state of the run in `run` when resuming one, checked against `config`.
fn resumed_state(
    config: &TrainConfig,
    run: &RunDir,
    resume: bool,
) -> Result<Option<RunState>, TrainError> {
    if !(resume && run.state().exists()) {
        return Ok(None);
    }
    let text = std::fs::read_to_string(run.state())?;
    let state: RunState =
        serde_json::from_str(&text).map_err(|e| checkpoint_error(&run.state(), e))?;
    let was = &state.config;
    // The cached regions are the examples: another fraction would train on other ones.
    if let (Some(was), Some(now)) = (was.region_fraction, config.region_fraction)
        && was != now
    {
        return Err(TrainError::Config(format!(
            "the run found its regions at fraction {was}, not {now}: resume it with \
             --region-fraction {was}"
        )));
    }
    // Its weights read reformations in the run's window.
    let [lo, hi] = was.input_spec().ct_window_hu;
    if [lo, hi] != config.input_spec().ct_window_hu {
        return Err(TrainError::Config(format!(
            "the run trained on the CT window [{lo}, {hi}] HU: resume it with \
             --ct-window={lo},{hi}"
        )));
    }
    // Another loss would make its best validation loss incomparable with the new ones.
    let (w, gamma) = (was.distant_weight, was.focal_gamma);
    if (w, gamma) != (config.distant_weight, config.focal_gamma) {
        return Err(TrainError::Config(format!(
            "the run trained with distant weight {w} and focal gamma {gamma}: resume it with \
             --distant-weight {w} --focal-gamma {gamma}"
        )));
    }
    Ok(Some(state))
}

/// Factors for conv1's weights on the PET and on the CT planes that make a network trained in
/// `file`'s windows read reformations in `run`'s the same way: a window [lo, hi] maps x to
/// (x − lo)/(hi − lo), so with the same lo, scaling by the ratio of the widths gives the first
/// layer the same sums wherever the values lie inside both windows (zero padding included).
/// Another lo would shift the padding too, so it is refused.
pub fn window_scales(file: &MprSpec, run: &MprSpec) -> Result<[f32; 2], String> {
    let mut scales = [1.0; 2];
    for (scale, (name, was, now)) in scales.iter_mut().zip([
        ("PET", file.pet_window_suv, run.pet_window_suv),
        ("CT", file.ct_window_hu, run.ct_window_hu),
    ]) {
        if was[0] != now[0] {
            return Err(format!(
                "its {name} window {was:?} starts elsewhere than the run's {now:?}: \
                 fine-tuning can change a window's upper end only"
            ));
        }
        *scale = ((now[1] - now[0]) / (was[1] - was[0])) as f32;
    }
    Ok(scales)
}

/// `runs/vi13/best.bpk` → `vi13/best.bpk`: the weights' folder and file name, without the local
/// path above them.
fn short_name(path: &Path) -> String {
    let full = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
    let mut parts: Vec<String> = full
        .iter()
        .rev()
        .take(2)
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    parts.reverse();
    parts.join("/")
}

fn save_net(net: &UptakeNet, path: &Path) -> Result<(), TrainError> {
    net.clone()
        .into_record()
        .save(path)
        .map_err(|e| checkpoint_error(path, e))
}

fn save_state(run: &RunDir, state: &RunState) -> Result<(), TrainError> {
    let text =
        serde_json::to_string_pretty(state).map_err(|e| checkpoint_error(&run.state(), e))?;
    // Write then rename, so an interrupted run never leaves a torn state file.
    let tmp = run.0.join("state.json.tmp");
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, run.state())?;
    Ok(())
}

/// Trains on `train`, stopping early on `validation`, writing checkpoints into `run`. With
/// `resume`, continues a run whose `state.json` exists there; `init` starts from other weights
/// (strategy V: the IV checkpoint; or a model file, see [`load_init`]).
pub fn train(
    config: &TrainConfig,
    train: &[StudyCache],
    validation: &[StudyCache],
    run: &RunDir,
    init: Option<&Path>,
    resume: bool,
    device: &Device,
) -> Result<RunState, TrainError> {
    let ad = device.clone().autodiff();
    ad.seed(config.seed);
    let start = start(config, run, init, resume, &ad)?;
    if train.is_empty() || validation.is_empty() {
        return Err(TrainError::Config(format!(
            "need training and validation subjects (have {} and {})",
            train.len(),
            validation.len()
        )));
    }
    std::fs::create_dir_all(&run.0)?;
    let shape = NetShape::v1();
    let mut optimizer: ModuleOptimizer = AdamConfig::new().init();
    let (mut net, mut state) = match start {
        Start::Resume(state) => {
            let net = load_net(&run.last_model(), shape, &ad)?;
            optimizer = optimizer
                .load(run.last_optimizer())
                .map_err(|e| checkpoint_error(&run.last_optimizer(), e))?;
            (net, state)
        }
        Start::Fresh(weights) => {
            let (net, init) = match weights {
                Some(weights) => {
                    let (net, name) = *weights;
                    (net, Some(name))
                }
                None => (UptakeNet::new(shape, &ad), None),
            };
            let state = RunState {
                config: config.clone(),
                epochs_done: 0,
                best_epoch: 0,
                best_validation_loss: f64::INFINITY,
                history: Vec::new(),
                stopped_early: false,
                init,
            };
            (net, state)
        }
    };
    let strategy = config.strategy;
    let batch = config.batch_size.max(1);
    while state.epochs_done < config.max_epochs && !state.stopped_early {
        let epoch = state.epochs_done + 1;
        let started = Instant::now();
        let mut rng = epoch_rng(config.seed, epoch);
        let examples = epoch_examples(train, strategy.sampling(), &mut rng);
        let augments: Option<Vec<Augment>> = strategy
            .augments()
            .then(|| examples.iter().map(|_| Augment::random(&mut rng)).collect());
        let steps = examples.len().div_ceil(batch);
        let bar = ProgressBar::new(steps as u64);
        bar.set_style(
            ProgressStyle::with_template(
                "epoch {prefix} [{bar:30}] {pos}/{len} steps, loss {msg}, {elapsed} elapsed, ETA {eta}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        bar.set_prefix(format!("{epoch}/{}", config.max_epochs));
        let mut loss_sum = 0.0;
        for (step, chunk) in examples.chunks(batch).enumerate() {
            let chunk_augments = augments
                .as_ref()
                .map(|a| &a[step * batch..step * batch + chunk.len()]);
            let (input, tracer, targets) =
                batch_tensors(train, chunk, chunk_augments, config, &ad)?;
            let output = net.forward(input, tracer);
            let batch_loss = loss(&output, &targets);
            let value = scalar(batch_loss.clone());
            let grads = GradientsParams::from_grads(batch_loss.backward(), &net);
            net = optimizer.step(config.learning_rate, net, grads);
            loss_sum += value * chunk.len() as f64;
            bar.set_message(format!(
                "{:.4}",
                loss_sum / ((step * batch + chunk.len()) as f64)
            ));
            bar.inc(1);
        }
        bar.finish_and_clear();
        let inference = net.valid();
        let predictions = predict(&inference, validation, config, device)?;
        let (scores, positives, located, correct) = validation_figures(validation, &predictions);
        let record = EpochRecord {
            epoch,
            examples: examples.len(),
            train_loss: loss_sum / examples.len().max(1) as f64,
            validation_loss: predictions.loss,
            validation_average_precision: average_precision(&scores, &positives).ok(),
            validation_accuracy_suspicious: (located > 0).then(|| correct as f64 / located as f64),
            seconds: started.elapsed().as_secs_f64(),
        };
        eprintln!(
            "epoch {epoch}: {} examples, train loss {:.4}, validation loss {:.4}, AP {}, \
             location accuracy (suspicious) {}, {:.1} s",
            record.examples,
            record.train_loss,
            record.validation_loss,
            record
                .validation_average_precision
                .map_or("-".into(), |v| format!("{v:.3}")),
            record
                .validation_accuracy_suspicious
                .map_or("-".into(), |v| format!("{v:.3}")),
            record.seconds
        );
        save_net(&net, &run.last_model())?;
        optimizer
            .save(run.last_optimizer())
            .map_err(|e| checkpoint_error(&run.last_optimizer(), e))?;
        if record.validation_loss < state.best_validation_loss {
            state.best_validation_loss = record.validation_loss;
            state.best_epoch = epoch;
            save_net(&net, &run.best_model())?;
        } else if epoch - state.best_epoch >= config.patience {
            state.stopped_early = true;
        }
        state.history.push(record);
        state.epochs_done = epoch;
        save_state(run, &state)?;
    }
    Ok(state)
}

/// Scores and labels of the validation candidates, and location hits on suspicious ones.
fn validation_figures(
    studies: &[StudyCache],
    predictions: &Predictions,
) -> (Vec<f64>, Vec<bool>, usize, usize) {
    let candidates: Vec<&Candidate> = studies.iter().flat_map(|s| &s.candidates).collect();
    let scores = predictions
        .p_suspicious
        .iter()
        .map(|&p| f64::from(p))
        .collect();
    let positives = candidates.iter().map(|c| c.suspicious()).collect();
    let (mut located, mut correct) = (0, 0);
    for (c, probs) in candidates.iter().zip(&predictions.location_probabilities) {
        if let (true, Some(truth)) = (c.suspicious(), c.location) {
            located += 1;
            if argmax(probs) == truth as usize {
                correct += 1;
            }
        }
    }
    (scores, positives, located, correct)
}

/// Index of the largest value (first among equals).
pub fn argmax(values: &[f32]) -> usize {
    let mut best = 0;
    for (i, &v) in values.iter().enumerate() {
        if v > values[best] {
            best = i;
        }
    }
    best
}
