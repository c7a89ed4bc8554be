//! Reading TOML data files with errors that point at file, line and column.

use serde::de::DeserializeOwned;
use std::path::{Path, PathBuf};

/// A TOML file that could not be read or parsed.
#[derive(Debug, thiserror::Error)]
pub enum TomlFileError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}:{line}:{column}: {message}")]
    Parse {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
}

/// Reads and deserializes `path`.
pub fn load<T: DeserializeOwned>(path: &Path) -> Result<T, TomlFileError> {
    let text = std::fs::read_to_string(path).map_err(|source| TomlFileError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse(path, &text)
}

/// Deserializes `text`, naming `path` in errors.
pub fn parse<T: DeserializeOwned>(path: &Path, text: &str) -> Result<T, TomlFileError> {
    toml::from_str(text).map_err(|e| {
        let (line, column) = e.span().map(|s| line_col(text, s.start)).unwrap_or((1, 1));
        TomlFileError::Parse {
            path: path.to_path_buf(),
            line,
            column,
            message: e.message().trim().to_string(),
        }
    })
}

/// 1-based line and column of byte `offset` in `text`.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[derive(serde::Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct T {
        a: u32,
    }

    #[rstest]
    #[case("abc", 0, (1, 1))]
    #[case("abc\nde", 5, (2, 2))]
    #[case("a\n\nb", 3, (3, 1))]
    fn line_col_counts(#[case] text: &str, #[case] off: usize, #[case] want: (usize, usize)) {
        assert_eq!(line_col(text, off), want);
    }

    #[test]
    fn unknown_key_points_at_line_and_column() {
        let err = parse::<T>(Path::new("x.toml"), "a = 1\n  bogus = 2\n").unwrap_err();
        let msg = err.to_string();
        assert!(msg.starts_with("x.toml:2:3: "), "{msg}");
        assert!(msg.contains("bogus"), "{msg}");
    }

    #[test]
    fn syntax_error_points_at_line() {
        let err = parse::<T>(Path::new("y.toml"), "a = 1\nb = \n").unwrap_err();
        assert!(err.to_string().starts_with("y.toml:2:"), "{err}");
    }
}
