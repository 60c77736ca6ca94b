//! `uptake-train agreement --csv staging.csv`

use std::fmt::Display;
use std::path::PathBuf;

use uptake_train::eval::agreement::{self, Agreement, StagingAgreement};
use uptake_train::eval::bootstrap::BootstrapSpec;

use super::{CliResult, write_json};

#[derive(clap::Args)]
pub struct Args {
    /// CSV with header subject,expert_N,predicted_N,expert_M,predicted_M.
    #[arg(long)]
    csv: PathBuf,
    /// Also write the matrices and figures as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
}

pub fn run(args: Args) -> CliResult {
    let pairs = agreement::read_csv(&args.csv).map_err(|e| e.to_string())?;
    let result = agreement::agreement(&pairs, BootstrapSpec::default().resamples);
    print(&result);
    if let Some(path) = &args.json {
        write_json(path, &result)?;
    }
    Ok(())
}

/// Prints the confusion matrices and the agreement figures.
pub fn print(result: &StagingAgreement) {
    print_matrix("miN", &result.n_stages, &result.n_confusion);
    print_matrix("miM", &result.m_stages, &result.m_confusion);
    let line = |name: &str, a: &Agreement| {
        let interval = match (a.low, a.high) {
            (Some(low), Some(high)) => {
                format!("  95 % CI {:.1}–{:.1} %", 100.0 * low, 100.0 * high)
            }
            _ => String::new(),
        };
        println!(
            "{name:<28} {:>5.1} %  ({}/{}){interval}",
            100.0 * a.fraction,
            a.agree,
            a.total
        );
    };
    line("N agreement", &result.n_exact);
    line("N0 vs N+ agreement", &result.n0_vs_n_positive);
    line("M agreement", &result.m_exact);
    line("M without bone pattern", &result.m_without_bone_pattern);
    line("M0 vs M1 agreement", &result.m0_vs_m1);
}

/// Rows: expert stage; columns: predicted stage.
fn print_matrix(title: &str, stages: &[impl Display], confusion: &[Vec<usize>]) {
    print!("{title:<10}");
    for s in stages {
        print!("{s:>9}");
    }
    println!("{:>9}", "total");
    for (s, row) in stages.iter().zip(confusion) {
        print!("{s:<10}");
        for c in row {
            print!("{c:>9}");
        }
        println!("{:>9}", row.iter().sum::<usize>());
    }
    println!();
}
