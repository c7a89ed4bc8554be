//! The report escapers, one per output format: HTML text and attributes,
//! relative links in HTML, Markdown text. JUnit XML needs none: quick-junit
//! escapes (and strips what XML cannot hold) itself.

use std::fmt::Write as _;

/// Text safe in HTML element content and in quoted attribute values.
pub(crate) fn html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A relative path as an HTML-escaped `href`: every byte outside a small
/// safe set is percent-encoded (so `:` cannot start a scheme and `#`/`?`
/// stay in the path).
pub(crate) fn href(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for b in path.bytes() {
        match b {
            b'A'..=b'Z'
            | b'a'..=b'z'
            | b'0'..=b'9'
            | b'-'
            | b'.'
            | b'_'
            | b'~'
            | b'/'
            | b'='
            | b','
            | b'+'
            | b'@' => out.push(b as char),
            _ => {
                let _ = write!(out, "%{b:02X}");
            }
        }
    }
    html(&out)
}

/// Text safe in a Markdown table cell or list item: one line, no raw
/// HTML, no column breaks.
pub(crate) fn markdown(s: &str) -> String {
    let one_line = s.split_whitespace().collect::<Vec<_>>().join(" ");
    one_line
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('|', "\\|")
}

/// Text that cannot end a Markdown code span (`` `…` ``): backticks become
/// apostrophes. Code spans show everything else literally.
pub(crate) fn markdown_code(s: &str) -> String {
    s.replace('`', "'")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_escapes_text_and_attribute_quotes() {
        assert_eq!(
            html("<a href=\"x\">'&'</a>"),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
    }

    #[test]
    fn href_percent_encodes_outside_the_safe_set() {
        assert_eq!(
            href("we:ird #dir/con sole?.log"),
            "we%3Aird%20%23dir/con%20sole%3F.log"
        );
        assert_eq!(href("a/b=c,d+e@f~g_h.i-j"), "a/b=c,d+e@f~g_h.i-j");
    }

    #[test]
    fn markdown_keeps_one_line_without_html_or_column_breaks() {
        assert_eq!(
            markdown("<b>a</b> |\n  b & c"),
            "&lt;b&gt;a&lt;/b&gt; \\| b &amp; c"
        );
        assert_eq!(markdown_code("a`b"), "a'b");
    }
}
