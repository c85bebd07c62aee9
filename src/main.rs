//! The omnicast command line: validate the catalog and regenerate its documentation.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "omnicast",
    version,
    about = "Schema-driven, permission-aware real-time events"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Validate an events.yaml and print every problem found.
    Check {
        /// The catalog file.
        #[arg(default_value = "events.yaml")]
        catalog: PathBuf,
    },
    /// Write generated-docs/ (EVENTS.md and JSON Schemas) from the catalog this binary was built with.
    Gen {
        /// Where to write.
        #[arg(long, default_value = "generated-docs")]
        out: PathBuf,
        /// Only report drift; exit 1 if the directory is not up to date.
        #[arg(long)]
        check: bool,
    },
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Check { catalog } => match omnicast_codegen::load(&catalog) {
            Ok(model) => {
                println!(
                    "{}: ok ({} events in {} namespaces, {} roles)",
                    catalog.display(),
                    model.events.len(),
                    model.namespaces.len(),
                    model.roles.len()
                );
                ExitCode::SUCCESS
            }
            Err(diagnostics) => {
                eprintln!("{diagnostics}");
                ExitCode::FAILURE
            }
        },
        Command::Gen { out, check } => {
            let result = if check {
                omnicast::docs::drift(&out)
            } else {
                omnicast::docs::write(&out)
            };
            match result {
                Ok(drift) if drift.is_empty() => {
                    println!("{}: up to date", out.display());
                    ExitCode::SUCCESS
                }
                Ok(drift) => {
                    let verb = if check { "out of date" } else { "updated" };
                    for d in &drift {
                        println!("{verb}: {d:?}");
                    }
                    if check {
                        eprintln!("{} is stale: run `cargo run -- gen`", out.display());
                        ExitCode::FAILURE
                    } else {
                        ExitCode::SUCCESS
                    }
                }
                Err(err) => {
                    eprintln!("error: {}: {err}", out.display());
                    ExitCode::FAILURE
                }
            }
        }
    }
}
