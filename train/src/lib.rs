//! Training and evaluation tool for the uptake network (DESIGN S12).
//!
//! A workspace member of its own so that the plugin never depends on the training framework.
#![deny(unsafe_code)]

pub mod data;
pub mod eval;
pub mod export;
pub mod network;
pub mod phantom_cohort;
pub mod predict;
pub mod studies;
pub mod train;
