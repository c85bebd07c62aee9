//! Source locations: the line and column of a key path, or of one item of a list, in the YAML
//! text. The validator points its diagnostics with it; the change check its changes ([`locate`]).

/// The 1-based line and column of the key at `path` in `source`, or of the deepest key of the
/// path that is there (a removed field points at its event); `None` when not even the first is.
pub fn locate(source: &str, path: &[&str]) -> Option<(usize, usize)> {
    Locator::new(source)
        .key_line(path, 0)
        .map(|(line, indent, _)| (line + 1, indent + 1))
}

/// Finds the line of a key path in the YAML text by indentation, without a second parser: good
/// enough to point a person at the right line.
pub(crate) struct Locator<'a> {
    lines: Vec<&'a str>,
}

impl<'a> Locator<'a> {
    pub(crate) fn new(source: &'a str) -> Self {
        Locator {
            lines: source.lines().collect(),
        }
    }

    pub(crate) fn find(&self, path: &[&str]) -> Option<(usize, usize)> {
        self.find_nth(path, 0)
    }

    /// The `nth` (0-based) occurrence of the last key within its parent's block.
    pub(crate) fn find_nth(&self, path: &[&str], nth: usize) -> Option<(usize, usize)> {
        self.key_line(path, nth)
            .map(|(line, indent, _)| (line + 1, indent + 1))
    }

    /// Item `index` of the list at `path`, written either inline (`roles: [admn, stuff]`, each
    /// item at its own column) or as a block of `- item` lines; the key's position when the item
    /// cannot be found, and `None` when the key cannot.
    pub(crate) fn find_item(&self, path: &[&str], index: usize) -> Option<(usize, usize)> {
        let (line, indent, deepest) = self.key_line(path, 0)?;
        if !deepest {
            return Some((line + 1, indent + 1));
        }
        let text = self.lines[line];
        let key = path.last().copied().unwrap_or_default();
        let after_key = text
            .find(&format!("{key}:"))
            .map(|at| at + key.len() + 1)
            .unwrap_or(text.len());
        let rest = &text[after_key..];
        let at = if rest.trim_start().starts_with('[') {
            flow_item(rest, index).map(|column| (line + 1, after_key + column + 1))
        } else {
            self.block_item(line, indent, index)
        };
        Some(at.unwrap_or((line + 1, indent + 1)))
    }

    /// The `- item` lines of the block below `line`, at the first indentation they use.
    fn block_item(&self, line: usize, indent: usize, index: usize) -> Option<(usize, usize)> {
        let mut items = Vec::new();
        let mut item_indent = None;
        for (i, text) in self.lines.iter().enumerate().skip(line + 1) {
            let body = text.trim_start();
            if body.is_empty() || body.starts_with('#') {
                continue;
            }
            let at = text.len() - body.len();
            if at <= indent && !body.starts_with("- ") || at < indent {
                break;
            }
            if body.starts_with("- ") && *item_indent.get_or_insert(at) == at {
                items.push((i + 1, at + 3));
            }
        }
        items.get(index).copied()
    }

    /// The line (0-based) and indentation of the `nth` occurrence of the path's last key, and
    /// whether the whole path was found (rather than only a prefix of it).
    fn key_line(&self, path: &[&str], nth: usize) -> Option<(usize, usize, bool)> {
        let (mut start, mut end, mut parent_indent) = (0, self.lines.len(), None::<usize>);
        let mut found = None;
        for (depth, key) in path.iter().enumerate() {
            let last = depth + 1 == path.len();
            let mut skip = if last { nth } else { 0 };
            let mut hit = None;
            for i in start..end {
                let line = self.lines[i];
                let indent = line.len() - line.trim_start().len();
                let body = line.trim_start();
                if body.is_empty() || body.starts_with('#') {
                    continue;
                }
                if parent_indent.is_some_and(|p| indent <= p) {
                    break;
                }
                if key_matches(body, key) {
                    if skip == 0 {
                        hit = Some((i, indent));
                        break;
                    }
                    skip -= 1;
                }
            }
            let Some((line, indent)) = hit else {
                return found.map(|(line, indent)| (line, indent, false));
            };
            found = Some((line, indent));
            // The block of this key runs until the next line at its indentation or less.
            start = line + 1;
            end = (start..self.lines.len())
                .find(|&i| {
                    let l = self.lines[i];
                    let t = l.trim_start();
                    !t.is_empty() && !t.starts_with('#') && l.len() - t.len() <= indent
                })
                .unwrap_or(self.lines.len());
            parent_indent = Some(indent);
        }
        found.map(|(line, indent)| (line, indent, true))
    }
}

fn key_matches(body: &str, key: &str) -> bool {
    let body = body.strip_prefix("- ").unwrap_or(body);
    [
        format!("{key}:"),
        format!("\"{key}\":"),
        format!("'{key}':"),
    ]
    .iter()
    .any(|k| {
        body.strip_prefix(k.as_str())
            .is_some_and(|rest| rest.is_empty() || rest.starts_with([' ', '\t']))
    })
}

/// The column (0-based, within `rest`) where item `index` of an inline list `[a, b, ...]`
/// starts; `None` if the list does not close on this line or is shorter.
fn flow_item(rest: &str, index: usize) -> Option<usize> {
    let open = rest.find('[')?;
    let mut starts = Vec::new();
    let mut start = None;
    let (mut depth, mut quote) = (0usize, None::<char>);
    for (i, c) in rest.char_indices().skip_while(|(i, _)| *i <= open) {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '"' | '\'') => {
                quote = Some(c);
                start.get_or_insert(i);
            }
            (None, '[' | '{') => {
                depth += 1;
                start.get_or_insert(i);
            }
            (None, ']' | '}') if depth > 0 => depth -= 1,
            (None, ']') => {
                starts.extend(start);
                return starts.get(index).copied();
            }
            (None, ',') if depth == 0 => starts.extend(start.take()),
            (None, c) if c.is_whitespace() => {}
            (None, _) => {
                start.get_or_insert(i);
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_of_inline_and_block_lists() {
        let source =
            "a:\n  roles: [admn, \"st, uff\", x]\n  block:\n    - one\n    - two\n  next: 1\n";
        let locator = Locator::new(source);
        assert_eq!(locator.find(&["a", "roles"]), Some((2, 3)));
        assert_eq!(locator.find_item(&["a", "roles"], 0), Some((2, 11)));
        assert_eq!(locator.find_item(&["a", "roles"], 1), Some((2, 17)));
        assert_eq!(locator.find_item(&["a", "roles"], 2), Some((2, 28)));
        // Past the end: the key.
        assert_eq!(locator.find_item(&["a", "roles"], 3), Some((2, 3)));
        assert_eq!(locator.find_item(&["a", "block"], 1), Some((5, 7)));
        assert_eq!(locator.find_item(&["a", "missing"], 0), Some((1, 1)));
    }
}
