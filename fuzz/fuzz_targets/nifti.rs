//! NIfTI-1/2 from outside bytes, raw or gzip-compressed (the decoder recognises gzip by its
//! magic, as `nifti::read` does for a file). Any input must end in `Ok` or `Err`, never a panic,
//! an abort or an allocation the header merely claims.
#![no_main]

use libfuzzer_sys::fuzz_target;
use uptake::volume::nifti;

fuzz_target!(|bytes: &[u8]| {
    if let Ok(image) = nifti::decode(bytes) {
        let _ = image.into_volume();
    }
});
