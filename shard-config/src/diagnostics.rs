//! Collects errors while a config is read, turning byte offsets into lines.

use std::ops::Range;

use crate::error::{ConfigError, ConfigErrors};

/// The error sink of one parse: knows the file name and where lines start.
pub(crate) struct Diagnostics {
    file: String,
    /// Byte offset at which each line starts; `line_starts[0] == 0`.
    line_starts: Vec<usize>,
    errors: Vec<ConfigError>,
}

impl Diagnostics {
    /// Prepares to report errors about `text`, read from `file`.
    pub(crate) fn new(text: &str, file: &str) -> Self {
        let line_starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        Diagnostics {
            file: file.to_string(),
            line_starts,
            errors: Vec::new(),
        }
    }

    /// The 1-based line holding byte `offset` (offsets past the end map to the last line).
    pub(crate) fn line_at(&self, offset: usize) -> usize {
        // The number of lines starting at or before `offset`; at least 1 since line 1 starts at 0.
        self.line_starts.partition_point(|&start| start <= offset)
    }

    /// The line a span starts on, if there is a span.
    pub(crate) fn line_of(&self, span: Option<Range<usize>>) -> Option<usize> {
        span.map(|span| self.line_at(span.start))
    }

    /// Records a problem at `line`.
    pub(crate) fn error(&mut self, line: usize, message: impl Into<String>) {
        self.errors.push(ConfigError {
            file: self.file.clone(),
            line,
            message: message.into(),
        });
    }

    /// A sink for the same text that starts with no errors (to read values again quietly).
    pub(crate) fn fresh(&self) -> Self {
        Diagnostics {
            file: self.file.clone(),
            line_starts: self.line_starts.clone(),
            errors: Vec::new(),
        }
    }

    /// How many problems have been recorded.
    pub(crate) fn error_count(&self) -> usize {
        self.errors.len()
    }

    /// Whether any problem has been recorded.
    pub(crate) fn has_errors(&self) -> bool {
        !self.errors.is_empty()
    }

    /// The recorded problems ordered by line (stable, so same-line errors keep their order).
    pub(crate) fn into_errors(mut self) -> ConfigErrors {
        self.errors.sort_by_key(|e| e.line);
        ConfigErrors(self.errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_map_to_lines() {
        let d = Diagnostics::new("ab\ncd\n\nef", "f");
        assert_eq!(d.line_at(0), 1);
        assert_eq!(d.line_at(2), 1); // the newline itself
        assert_eq!(d.line_at(3), 2);
        assert_eq!(d.line_at(6), 3);
        assert_eq!(d.line_at(7), 4);
        assert_eq!(d.line_at(1000), 4);
        assert_eq!(d.line_of(Some(4..5)), Some(2));
        assert_eq!(d.line_of(None), None);
    }

    #[test]
    fn empty_text_is_line_one() {
        let d = Diagnostics::new("", "f");
        assert_eq!(d.line_at(0), 1);
        assert_eq!(d.line_at(5), 1);
    }

    #[test]
    fn errors_are_sorted_by_line_stably() {
        let mut d = Diagnostics::new("a\nb\nc", "f.toml");
        assert!(!d.has_errors());
        d.error(3, "third");
        d.error(1, "first");
        d.error(3, "third again");
        assert!(d.has_errors());
        let lines: Vec<_> = d
            .into_errors()
            .0
            .into_iter()
            .map(|e| (e.line, e.message))
            .collect();
        assert_eq!(
            lines,
            vec![
                (1, "first".to_string()),
                (3, "third".to_string()),
                (3, "third again".to_string())
            ]
        );
    }
}
