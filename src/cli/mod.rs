//! One file per subcommand.

pub mod analyze;
pub mod convert;
pub mod demo;
pub mod info;
pub mod mpr;
pub mod not_yet;
pub mod phantom;
pub mod regions;
pub mod resample;
pub mod suv;

/// What every subcommand returns; the message is printed after "uptake: ".
pub type CliResult = Result<(), Box<dyn std::error::Error>>;
