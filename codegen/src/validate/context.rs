//! Where diagnostics are collected, and what each one is about.

use crate::diagnostic::{Diagnostic, Diagnostics};
use crate::raw::OrderedMap;

use crate::locate::Locator;

/// Collects diagnostics while validating.
pub(super) struct Context<'s> {
    file: &'s str,
    locator: Locator<'s>,
    diagnostics: Vec<Diagnostic>,
}

/// What a diagnostic is about: the YAML key path that locates it (and, for a list, which item),
/// and its event and field.
#[derive(Debug, Clone, Default)]
pub(super) struct At<'a> {
    path: Vec<&'a str>,
    item: Option<usize>,
    pub(super) event: Option<&'a str>,
    pub(super) field: Option<&'a str>,
}

impl<'a> At<'a> {
    /// The key path from the top of the file.
    pub(super) fn path(path: &[&'a str]) -> Self {
        At {
            path: path.to_vec(),
            ..At::default()
        }
    }

    /// A key below this one.
    pub(super) fn key(&self, key: &'a str) -> Self {
        let mut at = self.clone();
        at.path.push(key);
        at.item = None;
        at
    }

    /// Item `index` of the list at this key.
    pub(super) fn item(&self, index: usize) -> Self {
        At {
            item: Some(index),
            ..self.clone()
        }
    }

    /// The same place, about `event`.
    pub(super) fn event(self, event: &'a str) -> Self {
        At {
            event: Some(event),
            ..self
        }
    }

    /// The same place, about `field`.
    pub(super) fn field(self, field: &'a str) -> Self {
        At {
            field: Some(field),
            ..self
        }
    }
}

impl<'s> Context<'s> {
    pub(super) fn new(file: &'s str, source: &'s str) -> Self {
        Context {
            file,
            locator: Locator::new(source),
            diagnostics: Vec::new(),
        }
    }

    /// How many problems were reported so far.
    pub(super) fn problems(&self) -> usize {
        self.diagnostics.len()
    }

    pub(super) fn error(&mut self, at: &At<'_>, message: impl Into<String>, help: Option<String>) {
        let location = match at.item {
            Some(item) => self.locator.find_item(&at.path, item),
            None => self.locator.find(&at.path),
        };
        self.push(at, location, message.into(), help);
    }

    /// Reports every key `map` saw twice, at its second occurrence under `parent`.
    pub(super) fn duplicates<V>(
        &mut self,
        map: &OrderedMap<V>,
        parent: &At<'_>,
        message: impl Fn(&str) -> String,
        help: Option<&str>,
        is_field: bool,
    ) {
        for key in &map.duplicates {
            let at = parent.key(key);
            let at = if is_field { at.field(key) } else { at };
            // The locator finds the first occurrence; the duplicate is the next one.
            let location = self.locator.find_nth(&at.path, 1);
            self.push(&at, location, message(key), help.map(str::to_owned));
        }
    }

    fn push(
        &mut self,
        at: &At<'_>,
        location: Option<(usize, usize)>,
        message: String,
        help: Option<String>,
    ) {
        self.diagnostics.push(Diagnostic {
            file: self.file.to_owned(),
            location,
            event: at.event.map(str::to_owned),
            field: at.field.map(str::to_owned),
            message,
            help,
        });
    }

    /// The catalog, or every problem sorted by position.
    pub(super) fn finish<T>(self, value: T) -> Result<T, Diagnostics> {
        if self.diagnostics.is_empty() {
            return Ok(value);
        }
        let mut diagnostics = self.diagnostics;
        // Stable sort: problems without a line keep their discovery order at the end.
        diagnostics.sort_by_key(|d| d.location.map_or((usize::MAX, 0), |l| l));
        Err(Diagnostics(diagnostics))
    }
}
