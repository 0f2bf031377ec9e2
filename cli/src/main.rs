//! `ks3-driver`: the KS3 storage driver on the command line. See `cli` for the commands.
mod bench;
mod cli;
// The demo's generated image is the benchmark's (its registries push the same kind).
use ks3_bench::image;

fn main() -> std::process::ExitCode {
    cli::main()
}
