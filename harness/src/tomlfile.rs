//! Reading TOML data files with errors that point at file, line and column.

use serde::de::{DeserializeOwned, DeserializeSeed, Error as _, IgnoredAny, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_spanned::Spanned;
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

impl TomlFileError {
    /// An error about the value of the top-level `key` of `text`, at that
    /// value's place (1:1 when the key is absent).
    pub fn at_key(path: &Path, text: &str, key: &str, message: String) -> TomlFileError {
        let (line, column) = value_position(text, key).unwrap_or((1, 1));
        TomlFileError::Parse {
            path: path.to_path_buf(),
            line,
            column,
            message,
        }
    }
}

/// For `#[serde(deserialize_with = ...)]`: an integer from `MIN` to `MAX`,
/// refused at its place otherwise.
pub fn within<'de, D, T, const MIN: u64, const MAX: u64>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: TryFrom<u64>,
{
    let v = i64::deserialize(d)?;
    u64::try_from(v)
        .ok()
        .filter(|v| (MIN..=MAX).contains(v))
        .and_then(|v| T::try_from(v).ok())
        .ok_or_else(|| D::Error::custom(format!("{v} is out of range: use {MIN} to {MAX}")))
}

/// [`within`] for an optional key (with `#[serde(default)]`).
pub fn within_opt<'de, D, T, const MIN: u64, const MAX: u64>(d: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: TryFrom<u64>,
{
    within::<D, T, MIN, MAX>(d).map(Some)
}

/// Reads and deserializes `path`.
pub fn load<T: DeserializeOwned>(path: &Path) -> Result<T, TomlFileError> {
    parse(path, &read(path)?)
}

/// Reads `path` as text; bytes that are not UTF-8 are an error at their
/// line and column.
pub fn read(path: &Path) -> Result<String, TomlFileError> {
    let bytes = std::fs::read(path).map_err(|source| TomlFileError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    String::from_utf8(bytes).map_err(|e| {
        let good = e.utf8_error().valid_up_to();
        let bytes = e.as_bytes();
        // The valid prefix gives the place; the column counts characters.
        let prefix = String::from_utf8_lossy(&bytes[..good]);
        let (line, column) = line_col(&prefix, good);
        TomlFileError::Parse {
            path: path.to_path_buf(),
            line,
            column,
            message: format!(
                "not UTF-8 text (byte 0x{:02x}); save the file as UTF-8",
                bytes[good]
            ),
        }
    })
}

/// Deserializes `text`, naming `path` in errors.
pub fn parse<T: DeserializeOwned>(path: &Path, text: &str) -> Result<T, TomlFileError> {
    toml::from_str(text).map_err(|e| {
        let start = e.span().map_or(0, |s| s.start);
        let (line, column) = line_col(text, start);
        TomlFileError::Parse {
            path: path.to_path_buf(),
            line,
            column,
            message: message(&e, text, start),
        }
    })
}

/// The parser's message on one line; where it has none (a missing value, a
/// stray character), what is at the error's place.
fn message(e: &toml::de::Error, text: &str, start: usize) -> String {
    let lines: Vec<&str> = e
        .message()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    if !lines.is_empty() {
        let m = lines.join(": ");
        // What toml says when an enum (a kind, a cgroup version) is not a string.
        let m = m.replace(
            "wanted string or table",
            "expected a string (one of the names this key accepts)",
        );
        return shorten(&m);
    }
    match text.get(start..).and_then(|rest| rest.chars().next()) {
        None => "unexpected end of file (a value or a closing bracket or quote is missing)".into(),
        Some('\r') => "a carriage return without a line feed (lines end in \\n or \\r\\n)".into(),
        Some('\n') => "unexpected end of line (a value is missing after `=`)".into(),
        Some(c) if c.is_control() => format!("unexpected control character {c:?}"),
        Some(c) => format!("unexpected `{c}`"),
    }
}

/// At most 300 characters: a message quoting a huge value keeps its
/// start and its end (which says what was expected).
fn shorten(m: &str) -> String {
    const HEAD: usize = 160;
    const TAIL: usize = 120;
    let n = m.chars().count();
    if n <= HEAD + TAIL + 20 {
        return m.to_string();
    }
    let head: String = m.chars().take(HEAD).collect();
    let tail: String = m.chars().skip(n - TAIL).collect();
    format!("{head}… ({} characters left out) …{tail}", n - HEAD - TAIL)
}

/// 1-based line and column of the value of the top-level `key` in `text`,
/// if `text` is TOML and has that key with a value written after `key =`.
pub fn value_position(text: &str, key: &str) -> Option<(usize, usize)> {
    let span = KeySpan(key)
        .deserialize(toml::Deserializer::new(text))
        .ok()??;
    Some(line_col(text, span.start))
}

/// Reads a TOML document's top level, keeping only the span of one key's
/// value (spans of tables made by `[headers]` are not available).
struct KeySpan<'k>(&'k str);

impl<'de> DeserializeSeed<'de> for KeySpan<'_> {
    type Value = Option<std::ops::Range<usize>>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for KeySpan<'_> {
    type Value = Option<std::ops::Range<usize>>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a TOML document")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut found = None;
        while let Some(k) = map.next_key::<String>()? {
            if k == self.0 {
                found = Some(map.next_value::<Spanned<IgnoredAny>>()?.span());
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(found)
    }
}

/// 1-based line and column of byte `offset` in `text` (an offset inside a
/// character counts as that character).
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let mut end = offset.min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let before = &text[..end];
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

    #[rstest]
    #[case("a = ", (1, 5), "unexpected end of file")]
    #[case("a = 1\nb = \n", (2, 5), "invalid string: expected `\"`, `'`")]
    #[case("a = 1\rb = 2\n", (1, 6), "expected newline")]
    #[case("a = 1\n\rb = 2\n", (2, 1), "a carriage return without a line feed")]
    #[case("a = [1,\n", (2, 1), "invalid array: expected `]`")]
    fn every_syntax_error_has_a_message_on_one_line(
        #[case] text: &str,
        #[case] at: (usize, usize),
        #[case] says: &str,
    ) {
        let e = parse::<T>(Path::new("x.toml"), text)
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with(&format!("x.toml:{}:{}: {says}", at.0, at.1)),
            "{e}"
        );
        assert!(!e.contains('\n'), "{e}");
    }

    #[test]
    fn a_huge_value_is_not_quoted_whole() {
        let text = format!("a = \"{}\"\n", "x".repeat(100_000));
        let e = parse::<T>(Path::new("x.toml"), &text)
            .unwrap_err()
            .to_string();
        assert!(e.len() < 400, "{} bytes", e.len());
        assert!(
            e.contains("characters left out") && e.ends_with("expected u32"),
            "{e}"
        );
    }

    #[test]
    fn bytes_that_are_not_utf8_are_an_error_at_their_place() {
        let tmp = tempfile::tempdir().unwrap();
        let f = tmp.path().join("b.toml");
        std::fs::write(&f, b"a = 1\nb = \"\xc3\xa9\xff\"\n").unwrap();
        let e = load::<T>(&f).unwrap_err().to_string();
        assert_eq!(
            e,
            format!(
                "{}:2:7: not UTF-8 text (byte 0xff); save the file as UTF-8",
                f.display()
            )
        );
    }

    #[test]
    fn a_key_value_has_a_position() {
        let text = "# c\nname = \"x\"\n[t.u]\nname = 2\n";
        assert_eq!(value_position(text, "name"), Some((2, 8)));
        assert_eq!(value_position(text, "nope"), None);
        assert_eq!(value_position("not toml [", "name"), None);
        assert_eq!(line_col("é", 1), (1, 1), "inside a character");
    }

    #[derive(serde::Deserialize, Debug)]
    #[allow(dead_code)]
    struct Bounded {
        #[serde(deserialize_with = "within::<_, _, 1, 10>")]
        n: u8,
        #[serde(default, deserialize_with = "within_opt::<_, _, 1, 300>")]
        m: Option<u16>,
    }

    #[rstest]
    #[case("n = 0", "1:5: 0 is out of range: use 1 to 10")]
    #[case("n = -1", "1:5: -1 is out of range: use 1 to 10")]
    #[case("n = 11", "1:5: 11 is out of range: use 1 to 10")]
    #[case("n = 1\nm = 301", "2:5: 301 is out of range: use 1 to 300")]
    #[case("n = \"5\"", "1:5: invalid type: string \"5\", expected i64")]
    fn bounded_numbers_are_refused_at_their_place(#[case] text: &str, #[case] want: &str) {
        let e = parse::<Bounded>(Path::new("x.toml"), text)
            .unwrap_err()
            .to_string();
        assert_eq!(e, format!("x.toml:{want}"));
        let ok = parse::<Bounded>(Path::new("x.toml"), "n = 10\nm = 300").unwrap();
        assert_eq!((ok.n, ok.m), (10, Some(300)));
    }

    #[test]
    fn syntax_error_points_at_line() {
        let err = parse::<T>(Path::new("y.toml"), "a = 1\nb = \n").unwrap_err();
        assert!(err.to_string().starts_with("y.toml:2:"), "{err}");
    }
}
