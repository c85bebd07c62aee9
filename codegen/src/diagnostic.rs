//! Problems found in events.yaml, each naming what a person needs to fix it.

use std::fmt;

/// One problem in the catalog file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// The file, as given to `load`.
    pub file: String,
    /// 1-based line and column, where known.
    pub location: Option<(usize, usize)>,
    /// The event concerned, if any (`order:created`).
    pub event: Option<String>,
    /// The field concerned, if any (`total`).
    pub field: Option<String>,
    /// What is wrong: lowercase, offending value in backticks.
    pub message: String,
    /// A likely fix (`did you mean `admin`?`).
    pub help: Option<String>,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "error: {}", self.file)?;
        if let Some((line, column)) = self.location {
            write!(f, ":{line}:{column}")?;
        }
        let subject: Vec<String> = [
            self.event.as_ref().map(|e| format!("event `{e}`")),
            self.field.as_ref().map(|f| format!("field `{f}`")),
        ]
        .into_iter()
        .flatten()
        .collect();
        f.write_str(": ")?;
        if !subject.is_empty() {
            write!(f, "{}: ", subject.join(", "))?;
        }
        f.write_str(&self.message)?;
        if let Some(help) = &self.help {
            write!(f, "\n  = help: {help}")?;
        }
        Ok(())
    }
}

/// Every problem found in one load, sorted by position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl Diagnostics {
    /// The problems, in file order.
    pub fn iter(&self) -> impl Iterator<Item = &Diagnostic> {
        self.0.iter()
    }

    /// How many problems there are.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for diagnostic in &self.0 {
            writeln!(f, "{diagnostic}")?;
        }
        let n = self.0.len();
        write!(
            f,
            "{n} problem{} in the event catalog",
            if n == 1 { "" } else { "s" }
        )
    }
}

impl std::error::Error for Diagnostics {}

/// `did you mean `admin`?` for the candidate closest to `input`, when one is close enough to be
/// a likely typo (the rule is [`names::closest`](crate::names::closest)).
pub fn did_you_mean<'c>(
    input: &str,
    candidates: impl IntoIterator<Item = &'c str>,
) -> Option<String> {
    crate::names::closest(input, candidates).map(|c| format!("did you mean `{c}`?"))
}
