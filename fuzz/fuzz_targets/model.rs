//! A model file from outside bytes: the safetensors container, the metadata, every tensor and
//! the graph built from them (`Model::from_bytes`, what `Model::load` runs after reading).
#![no_main]

use libfuzzer_sys::fuzz_target;
use uptake::model::{Model, format};

fuzz_target!(|bytes: &[u8]| {
    let _ = format::parse(bytes);
    let _ = Model::from_bytes(bytes);
});
