//! The integration tests of uptake-train, as one test binary: every test links the training
//! framework, so a binary per file would repeat that link and its hundreds of megabytes.

mod cli_predict;
mod embedded_model;
mod eval_oracles;
mod export_parity;
mod loss;
mod phantom_labels;
mod predict_labels;
mod train_loop;
