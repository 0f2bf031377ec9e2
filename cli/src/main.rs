//! `ks3-driver`: the KS3 storage driver on the command line. See `cli` for the commands.
mod bench;
mod cli;
mod image;

fn main() -> std::process::ExitCode {
    cli::main()
}
