//! The analyzer: configuration, model and compute device, reused across studies (DESIGN S0).

use std::path::PathBuf;

use crate::error::{Error, Result};
use crate::model::engine::MAX_BATCH_SIZE;
use crate::model::{Engine, EngineConfig, Model};

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
}

impl Analyzer {
    /// Validates the configuration and resolves the device.
    pub fn new(config: AnalyzerConfig) -> Result<Self> {
        config.validate()?;
        let device = match config.device {
            Device::Cpu => Device::Cpu,
            Device::Auto => {
                log::info!("device auto: using the CPU (this build has no CUDA backend yet)");
                Device::Cpu
            }
            Device::Cuda => {
                return Err(Error::Device(
                    "device = cuda was requested, but this build has no CUDA backend yet".into(),
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
        Ok(Self {
            config,
            device,
            model,
            engine,
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
