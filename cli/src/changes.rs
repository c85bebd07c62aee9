//! `omnicast check --against`: the catalog compared with an older one (a file, or a git
//! revision of the same file), every difference printed with its class, and an exit code CI can
//! act on. The rules are `omnicast_codegen::compare`'s; this is reading the old catalog,
//! printing and the exit code.

use std::path::Path;
use std::process::{Command, ExitCode};

use omnicast_codegen::compare::{Change, Class, compare, tally};
use serde_json::json;

/// The exit status when nothing breaks or widens (narrowing and safe changes are reported).
pub const OK: u8 = 0;
/// The catalog (new or old) cannot be read or is invalid, or git failed.
pub const ERROR: u8 = 1;
/// Bit set when a change breaks receivers or publishers and is not allowed.
pub const BREAKING: u8 = 2;
/// Bit set when a change widens who receives an event and is not allowed.
pub const WIDENS: u8 = 4;

/// How to print the changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// One line per change, like `check`'s diagnostics.
    Human,
    /// One JSON document, for tools.
    Json,
}

/// Compares `catalog` with `against` and prints the changes; the exit status is [`OK`],
/// [`ERROR`], or [`BREAKING`] and [`WIDENS`] combined.
pub fn run(catalog: &Path, against: &str, format: Format, allow: &[String]) -> ExitCode {
    let source = match std::fs::read_to_string(catalog) {
        Ok(source) => source,
        Err(err) => return error(&format!("cannot read {}: {err}", catalog.display())),
    };
    let file = catalog.display().to_string();
    let new = match omnicast_codegen::load_str(&file, &source) {
        Ok(model) => model,
        Err(diagnostics) => return error(&diagnostics.to_string()),
    };
    let (old_name, old_source) = match older(catalog, against) {
        Ok(found) => found,
        Err(why) => return error(&why),
    };
    let old = match omnicast_codegen::load_str(&old_name, &old_source) {
        Ok(model) => model,
        Err(diagnostics) => {
            return error(&format!(
                "the catalog to compare with is not valid:\n{diagnostics}"
            ));
        }
    };
    let changes = compare(&old, &new);
    let allowed = |change: &Change| {
        allow
            .iter()
            .any(|a| *a == change.id() || a == change.rule.name())
    };
    let mut status = OK;
    for change in changes.iter().filter(|c| !allowed(c)) {
        if change.classes().iter().any(|c| c.breaks()) {
            status |= BREAKING;
        }
        if change.classes().contains(&Class::Widens) {
            status |= WIDENS;
        }
    }
    let place = |change: &Change| {
        let path: Vec<&str> = change.path.iter().map(String::as_str).collect();
        omnicast_codegen::locate(&source, &path)
    };
    match format {
        Format::Human => {
            for change in &changes {
                let classes: Vec<&str> = change.classes().iter().map(|c| c.words()).collect();
                let mut line = String::new();
                if allowed(change) {
                    line.push_str("allowed: ");
                }
                line.push_str(&format!("{}: {file}", classes.join(", ")));
                if let Some((row, column)) = place(change) {
                    line.push_str(&format!(":{row}:{column}"));
                }
                let subject: Vec<String> = match &change.event {
                    Some(event) => [
                        Some(format!("event `{event}`")),
                        change.field.as_ref().map(|f| format!("field `{f}`")),
                    ]
                    .into_iter()
                    .flatten()
                    .collect(),
                    None => vec![format!("`{}`", change.subject)],
                };
                line.push_str(": ");
                if !subject.is_empty() {
                    line.push_str(&format!("{}: ", subject.join(", ")));
                }
                line.push_str(&change.describe());
                println!("{line}\n  = id: {}", change.id());
            }
            let counted: Vec<&Change> = changes.iter().filter(|c| !allowed(c)).collect();
            let counts: Vec<String> = tally(&counted)
                .into_iter()
                .map(|(class, n)| format!("{n} {}", class.words()))
                .collect();
            let allowed_n = changes.len() - counted.len();
            println!(
                "{} change{} against {against}{}{}",
                changes.len(),
                if changes.len() == 1 { "" } else { "s" },
                if counts.is_empty() {
                    String::new()
                } else {
                    format!(": {}", counts.join(", "))
                },
                if allowed_n > 0 {
                    format!(" ({allowed_n} allowed)")
                } else {
                    String::new()
                },
            );
        }
        Format::Json => {
            let items: Vec<_> = changes
                .iter()
                .map(|change| {
                    let (line, column) = place(change).unzip();
                    json!({
                        "id": change.id(),
                        "rule": change.rule.name(),
                        "classes": change.classes().iter().map(|c| c.key()).collect::<Vec<_>>(),
                        "event": change.event,
                        "field": change.field,
                        "before": change.before,
                        "after": change.after,
                        "file": file,
                        "line": line,
                        "column": column,
                        "allowed": allowed(change),
                    })
                })
                .collect();
            let document = json!({ "against": against, "changes": items, "exit": status });
            println!(
                "{}",
                serde_json::to_string_pretty(&document).expect("JSON values serialize")
            );
        }
    }
    ExitCode::from(status)
}

fn error(message: &str) -> ExitCode {
    eprintln!("error: {message}");
    ExitCode::from(ERROR)
}

/// The older catalog: the file `against` if there is one, otherwise the same file as git has
/// it at revision `against`. Returns a name for diagnostics and the text.
fn older(catalog: &Path, against: &str) -> Result<(String, String), String> {
    if Path::new(against).is_file() {
        return std::fs::read_to_string(against)
            .map(|text| (against.to_owned(), text))
            .map_err(|err| format!("cannot read {against}: {err}"));
    }
    let dir = catalog
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = catalog
        .file_name()
        .ok_or_else(|| format!("{} is not a file", catalog.display()))?
        .to_string_lossy();
    let output = Command::new("git")
        .current_dir(dir)
        .args(["show", &format!("{against}:./{name}")])
        .output()
        .map_err(|err| format!("`--against {against}` is not a file, and git cannot run: {err}"))?;
    if !output.status.success() {
        return Err(format!(
            "`--against {against}` is neither a file nor a git revision holding {}: {}",
            catalog.display(),
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    let text = String::from_utf8(output.stdout)
        .map_err(|_| format!("{name} at {against} is not UTF-8"))?;
    Ok((format!("{name}@{against}"), text))
}
