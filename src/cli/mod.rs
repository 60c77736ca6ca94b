//! One file per subcommand.

pub mod analyze;
pub mod convert;
pub mod demo;
pub mod info;
pub mod mpr;
pub mod phantom;
pub mod regions;
pub mod resample;
pub mod suv;
pub mod train_tool;

/// What every subcommand returns; the message is printed after "uptake: ".
pub type CliResult = Result<(), Box<dyn std::error::Error>>;
