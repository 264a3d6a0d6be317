//! Diagnostics: the problems found in a file, with their positions
//! (`<file>:<line>:<col>: <field path>: <problem>`), and the error that
//! carries them.

use super::*;

/// Every problem found in a configuration file, and in the rules file it
/// names. Displays one problem per line, each
/// `<file>:<line>:<col>: <field path>: <problem>`, or
/// `cannot read <file>: <io error>` when a file cannot be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}", .problems.join("\n"))]
pub struct ConfigError {
    /// The rendered problems, in file order (the rules file's after the pipeline file's).
    pub(super) problems: Vec<String>,
}

impl ConfigError {
    /// The problems, one message each, in file order.
    pub fn problems(&self) -> Vec<String> {
        self.problems.clone()
    }

    /// A file that cannot be read.
    pub(super) fn unreadable(path: &Path, error: &std::io::Error) -> Self {
        ConfigError {
            problems: vec![format!("cannot read {}: {error}", path.display())],
        }
    }
}

/// Collects the problems of one file, with their positions.
pub(crate) struct Diag<'t> {
    /// The file as messages name it.
    file: String,
    /// Its text, to turn byte offsets into lines and columns.
    pub(super) text: &'t str,
    /// Byte offset and rendered message of each problem.
    found: Vec<(usize, String)>,
    /// Problems of another file (a rules file), reported after this file's.
    pub(crate) other: Vec<String>,
    /// The window outputs of the pipeline the file belongs to, which window
    /// rules may name; `None` for a rules file read on its own.
    pub(crate) outputs: Option<OutputNames>,
    /// The options of `[storage]`, for the object-store locations of the
    /// file.
    pub(crate) storage: Vec<(String, String)>,
}

impl<'t> Diag<'t> {
    pub(crate) fn new(path: &Path, text: &'t str) -> Self {
        Diag {
            file: path.display().to_string(),
            text,
            found: Vec::new(),
            other: Vec::new(),
            outputs: None,
            storage: Vec::new(),
        }
    }

    /// Records a problem at byte `offset` of the file.
    pub(crate) fn at(&mut self, offset: usize, path: &str, problem: impl fmt::Display) {
        let message = format!("{}: {path}: {problem}", self.position(offset));
        self.found.push((offset, message));
    }

    /// Records a problem at the start of `span`.
    pub(crate) fn err(&mut self, span: Range<usize>, path: &str, problem: impl fmt::Display) {
        self.at(span.start, path, problem);
    }

    /// `file:line:col` of a byte offset.
    pub(crate) fn position(&self, offset: usize) -> String {
        let (line, col) = line_col(self.text, offset);
        format!("{}:{line}:{col}", self.file)
    }

    /// The value if no problem was found, else every problem in file order.
    pub(crate) fn finish<T>(mut self, value: Option<T>) -> Result<T, ConfigError> {
        match value {
            Some(value) if self.found.is_empty() && self.other.is_empty() => Ok(value),
            _ => {
                self.found.sort_by_key(|(offset, _)| *offset);
                let mut problems: Vec<String> = self.found.into_iter().map(|(_, p)| p).collect();
                problems.append(&mut self.other);
                if problems.is_empty() {
                    problems.push(format!("{}: could not be loaded", self.file));
                }
                Err(ConfigError { problems })
            }
        }
    }
}

/// Line and column (from 1; the column in characters) of a byte offset.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (
        before.matches('\n').count() + 1,
        before[line_start..].chars().count() + 1,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_col_counts_characters() {
        let text = "a = 1\nbé = \"x\"\n";
        assert_eq!(line_col(text, 0), (1, 1));
        assert_eq!(line_col(text, 6), (2, 1));
        // "bé = " is 6 bytes but 5 characters.
        assert_eq!(line_col(text, 12), (2, 6));
        assert_eq!(line_col(text, 1_000), (3, 1));
    }
}
