//! deb822 paragraphs (`Key: value` fields, continuation lines, blank-line separated): the
//! format of `Packages` indexes, apt's `.sources` files and dpkg's `status` file.

/// One field of a deb822 paragraph. `value` is a slice of the input: the text after the
/// colon, continuation lines included (with their newlines and leading blanks).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Field<'a> {
    pub key: &'a str,
    pub value: &'a str,
}

/// Calls `f(first_line_number, fields)` for each paragraph of a deb822 text.
///
/// This small streaming parser exists because the typed parser of the `debian-control` crate
/// (`lossy::apt::Package`) was both slower and lossy on a real index: on bookworm's
/// main/binary-amd64 `Packages` (50 MB, 63 440 paragraphs) it took 0.62 s in release and
/// 3.7 s in a debug build, and rejected the 23 paragraphs with `Essential: yes` (bash,
/// base-files, ...). This parser borrows slices of the input and allocates only the fields
/// kept; it reads the same file in about a tenth of that time.
pub(crate) fn for_each_paragraph<'a, E>(
    text: &'a str,
    allow_comments: bool,
    mut f: impl FnMut(usize, &[Field<'a>]) -> std::result::Result<(), E>,
) -> std::result::Result<(), E> {
    let mut fields: Vec<Field<'a>> = Vec::with_capacity(32);
    let mut start_line = 0usize;
    // (key, value start offset, value end offset) of the field being read.
    let mut cur: Option<(&'a str, usize, usize)> = None;
    let mut offset = 0usize;
    for (i, line) in text.split_inclusive('\n').enumerate() {
        let line_start = offset;
        offset += line.len();
        let content = line.trim_end_matches(['\n', '\r']);
        if content.trim().is_empty() {
            if let Some((k, s, e)) = cur.take() {
                fields.push(Field {
                    key: k,
                    value: &text[s..e],
                });
            }
            if !fields.is_empty() {
                f(start_line, &fields)?;
                fields.clear();
            }
            continue;
        }
        if allow_comments && content.starts_with('#') {
            continue;
        }
        if content.starts_with([' ', '\t']) {
            if let Some((_, _, e)) = cur.as_mut() {
                *e = line_start + content.len();
            }
            continue;
        }
        if let Some((k, s, e)) = cur.take() {
            fields.push(Field {
                key: k,
                value: &text[s..e],
            });
        }
        if fields.is_empty() {
            start_line = i + 1;
        }
        match content.find(':') {
            Some(c) => {
                let key = &content[..c];
                let vstart = line_start + c + 1;
                cur = Some((key, vstart, line_start + content.len()));
            }
            None => cur = None, // not a field; ignore the line
        }
    }
    if let Some((k, s, e)) = cur.take() {
        fields.push(Field {
            key: k,
            value: &text[s..e],
        });
    }
    if !fields.is_empty() {
        f(start_line, &fields)?;
    }
    Ok(())
}
