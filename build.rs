//! Generates `include/uptake.h` from the C ABI in `src/ffi` with cbindgen. The header is
//! committed; it is rewritten only when its contents change, and CI fails when the committed
//! copy differs from what this produces.

use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-changed=src/ffi");
    // A hand edit of the committed header is undone by the next build.
    println!("cargo:rerun-if-changed=include/uptake.h");
    println!("cargo:rerun-if-changed=cbindgen.toml");
    let crate_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let config = cbindgen::Config::from_file(crate_dir.join("cbindgen.toml"))
        .expect("cbindgen.toml is readable and valid");
    // Only src/ffi (and the modules it declares) is read: the header is the C ABI, and no
    // public item elsewhere in the crate can reach it.
    let header = cbindgen::Builder::new()
        .with_src(crate_dir.join("src/ffi/mod.rs"))
        .with_config(config)
        .generate();
    match header {
        Ok(bindings) => {
            let out = crate_dir.join("include").join("uptake.h");
            // write_to_file leaves the file untouched when the contents are the same.
            bindings.write_to_file(out);
        }
        Err(e) => panic!("cbindgen could not generate include/uptake.h: {e}"),
    }
}
