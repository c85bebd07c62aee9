//! `omnicast`: serve, token, emit, check, gen (see the README).

fn main() -> std::process::ExitCode {
    omnicast_cli::run(std::env::args_os())
}
