fn main() -> std::process::ExitCode {
    ks3_local::cli_main(std::env::args_os())
}
