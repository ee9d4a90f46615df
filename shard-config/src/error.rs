//! The errors [`crate::parse`] reports: each names the file, the line and the problem.

use std::fmt;

/// One problem in a config file, located at a 1-based line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}: {message}")]
pub struct ConfigError {
    /// The file name given to [`crate::parse`].
    pub file: String,
    /// The 1-based line the problem is on.
    pub line: usize,
    /// What is wrong, in words.
    pub message: String,
}

/// Every problem found in a config file, ordered by line.
///
/// Displays as one `file:line: message` per line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl ConfigErrors {
    /// The individual errors, ordered by line.
    pub fn errors(&self) -> &[ConfigError] {
        &self.0
    }
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, error) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(line: usize, message: &str) -> ConfigError {
        ConfigError {
            file: "gate.toml".into(),
            line,
            message: message.into(),
        }
    }

    #[test]
    fn one_error_displays_file_line_message() {
        assert_eq!(error(3, "boom").to_string(), "gate.toml:3: boom");
    }

    #[test]
    fn errors_display_one_per_line() {
        let errors = ConfigErrors(vec![error(1, "a"), error(7, "b")]);
        assert_eq!(errors.to_string(), "gate.toml:1: a\ngate.toml:7: b");
        assert_eq!(errors.errors().len(), 2);
        let as_error: &dyn std::error::Error = &errors;
        assert!(as_error.source().is_none());
    }
}
