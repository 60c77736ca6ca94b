//! One file per subcommand.

use std::path::Path;

/// `print!` that returns the error instead of panicking: a closed pipe (`uptake info F | head`)
/// then ends the command quietly (see `main`).
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        write!(std::io::stdout(), $($arg)*)
    }};
}

/// `println!` that returns the error instead of panicking (see [`out!`]).
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        writeln!(std::io::stdout(), $($arg)*)
    }};
}

pub mod analyze;
pub mod convert;
pub mod demo;
pub mod hybrid;
pub mod info;
pub mod mpr;
pub mod phantom;
pub mod regions;
pub mod resample;
pub mod suv;
pub mod train_tool;

/// What every subcommand returns; the message is printed after "uptake: ".
pub type CliResult = Result<(), Box<dyn std::error::Error>>;

/// Makes sure `dir` is a folder this process can write to, before any work is done for it: a
/// file in its place, a folder that cannot be created or one without write permission is an
/// error naming the path.
pub fn prepare_output_folder(dir: &Path) -> CliResult {
    if dir.exists() && !dir.is_dir() {
        return Err(format!(
            "output folder {}: exists and is not a folder",
            dir.display()
        )
        .into());
    }
    std::fs::create_dir_all(dir)
        .map_err(|e| format!("cannot create output folder {}: {e}", dir.display()))?;
    let probe = dir.join(".uptake-write-check");
    std::fs::File::create(&probe)
        .and_then(|_| std::fs::remove_file(&probe))
        .map_err(|e| format!("output folder {} is not writable: {e}", dir.display()))?;
    Ok(())
}

/// `std::fs::write` with the path in the error.
pub fn write_file(path: &Path, contents: impl AsRef<[u8]>) -> CliResult {
    std::fs::write(path, contents).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    Ok(())
}
