//! berth-runtime: an OCI runtime with runc's command line.

use clap::Parser;

fn main() {
    let cli = berth_runtime::cli::Cli::parse();
    let code = match berth_runtime::cli::execute(cli) {
        Ok(code) => code,
        Err(e) => {
            berth_runtime::logging::error(&e.to_string());
            1
        }
    };
    std::process::exit(code);
}
