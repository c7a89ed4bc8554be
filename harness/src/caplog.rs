//! Capped files: the one way the harness writes what a guest sends it
//! (console, stdout, stderr, the result file, artefacts), so that nothing a
//! guest does can fill the host's disk.
//!
//! A [`CappedFile`] keeps the first `head` bytes and the last `tail` bytes
//! of everything written to it (`head + tail` is the cap). Up to the cap
//! the bytes go straight to the file, so a live log can be read while it
//! grows; once the stream passes the cap the file is cut back to the head,
//! the tail is kept in memory, and [`CappedFile::finish`] appends a marker
//! saying how many bytes were dropped, then the tail. The file's size is at
//! most the cap plus the marker.

use serde::Serialize;
use std::fs::File;
use std::io::{self, Seek, SeekFrom, Write};

/// The default cap of each log (console, stdout, stderr, result file).
pub const DEFAULT_LOG_CAP: u64 = 16 << 20;
/// The default cap of all artefacts fetched from `$REPRO_OUT` together.
pub const DEFAULT_OUT_CAP: u64 = 64 << 20;

/// What separates the head from the tail once bytes were dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Marker {
    /// A text line, for logs people read.
    Text,
    /// A `{"log": ...}` result line, and both cuts moved to line
    /// boundaries: a capped result file stays valid JSON lines.
    JsonLines,
    /// Nothing: the file just ends after its head (artefacts, where the
    /// note goes elsewhere).
    Bare,
}

/// What a capped file kept: every byte offered, and how many of them did
/// not reach the file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Capture {
    /// Bytes offered (written or skipped).
    pub bytes: u64,
    /// Bytes not kept.
    pub dropped: u64,
}

/// The last `cap` bytes of a stream, plus the byte before them (whether
/// the tail starts a line).
struct Ring {
    buf: Vec<u8>,
    /// Capacity: the tail plus one byte.
    cap: usize,
    /// Index of the oldest byte once `buf` is full.
    start: usize,
}

impl Ring {
    fn new(tail: usize) -> Ring {
        Ring {
            buf: Vec::new(),
            cap: tail + 1,
            start: 0,
        }
    }

    fn push(&mut self, data: &[u8]) {
        let data = &data[data.len().saturating_sub(self.cap)..];
        let mut data = data;
        if self.buf.len() < self.cap {
            let n = (self.cap - self.buf.len()).min(data.len());
            self.buf.extend_from_slice(&data[..n]);
            data = &data[n..];
        }
        if data.is_empty() {
            return;
        }
        let first = (self.cap - self.start).min(data.len());
        self.buf[self.start..self.start + first].copy_from_slice(&data[..first]);
        let rest = &data[first..];
        self.buf[..rest.len()].copy_from_slice(rest);
        self.start = (self.start + data.len()) % self.cap;
    }

    fn clear(&mut self) {
        self.buf.clear();
        self.start = 0;
    }

    /// Everything held, oldest first.
    fn contents(&self) -> Vec<u8> {
        let mut all = Vec::with_capacity(self.buf.len());
        all.extend_from_slice(&self.buf[self.start..]);
        all.extend_from_slice(&self.buf[..self.start]);
        all
    }
}

/// A file that keeps the head and the tail of what is written to it.
pub struct CappedFile {
    file: File,
    /// What the marker calls the file (`stdout.log`).
    name: String,
    head: u64,
    tail: u64,
    marker: Marker,
    /// Bytes offered so far.
    total: u64,
    /// Bytes of the head on disk.
    head_written: u64,
    /// Offset just past the last newline in the head, if any.
    head_line_end: Option<u64>,
    /// The stream passed the cap: the file holds only the head.
    over: bool,
    /// The last bytes of the stream (since the last skip).
    ring: Ring,
    /// Bytes after the last skip (the tail can hold no older ones).
    since_skip: u64,
}

impl CappedFile {
    /// Caps `file` (empty, positioned at its start) at `cap` bytes: half
    /// head, half tail (`Bare`: all head).
    pub fn new(file: File, name: &str, cap: u64, marker: Marker) -> CappedFile {
        let tail = if marker == Marker::Bare { 0 } else { cap / 2 };
        CappedFile::with_split(file, name, cap - tail, tail, marker)
    }

    /// Keeps the first `head` and the last `tail` bytes.
    pub fn with_split(file: File, name: &str, head: u64, tail: u64, marker: Marker) -> CappedFile {
        CappedFile {
            file,
            name: name.to_string(),
            head,
            tail,
            marker,
            total: 0,
            head_written: 0,
            head_line_end: None,
            over: false,
            ring: Ring::new(usize::try_from(tail).unwrap_or(usize::MAX - 1)),
            since_skip: 0,
        }
    }

    /// Creates (truncates) `path` and caps it.
    pub fn create(path: &std::path::Path, cap: u64, marker: Marker) -> io::Result<CappedFile> {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        Ok(CappedFile::new(File::create(path)?, &name, cap, marker))
    }

    /// The cap: head plus tail.
    pub fn cap(&self) -> u64 {
        self.head + self.tail
    }

    /// Bytes offered so far.
    pub fn offered(&self) -> u64 {
        self.total
    }

    fn note_head(&mut self, data: &[u8]) {
        if let Some(i) = data.iter().rposition(|b| *b == b'\n') {
            self.head_line_end = Some(self.head_written + i as u64 + 1);
        }
        self.head_written += data.len() as u64;
    }

    /// Writes `data`, keeping what fits the head and the tail.
    pub fn put(&mut self, data: &[u8]) -> io::Result<()> {
        let before = self.total;
        self.total += data.len() as u64;
        self.since_skip += data.len() as u64;
        self.ring.push(data);
        if !self.over && self.total <= self.cap() {
            self.file.write_all(data)?;
            self.note_head(&data[..data.len().min(self.head.saturating_sub(before) as usize)]);
            return Ok(());
        }
        if !self.over {
            self.overflow(Some((before, data)))?;
        }
        Ok(())
    }

    /// Counts `n` bytes of the stream that were never sent (the guest cut
    /// them out already): they are dropped, and the tail starts after them.
    pub fn skip(&mut self, n: u64) -> io::Result<()> {
        if n == 0 {
            return Ok(());
        }
        self.total += n;
        self.ring.clear();
        self.since_skip = 0;
        if !self.over {
            self.overflow(None)?;
        }
        Ok(())
    }

    /// The stream passed the cap: cut the file back to the head.
    /// `pending`: the write that crossed it, with the offset it started at
    /// (its first bytes may still belong to the head).
    fn overflow(&mut self, pending: Option<(u64, &[u8])>) -> io::Result<()> {
        self.over = true;
        if let Some((before, data)) = pending {
            if before < self.head {
                // The file holds `before` bytes, all head: complete it.
                let need = ((self.head - before) as usize).min(data.len());
                self.file.write_all(&data[..need])?;
                self.note_head(&data[..need]);
            }
        }
        self.file.set_len(self.head_written)?;
        self.file.seek(SeekFrom::Start(self.head_written))?;
        Ok(())
    }

    /// Writes the marker and the tail if bytes were dropped, flushes, and
    /// says what was kept.
    pub fn finish(mut self) -> io::Result<Capture> {
        if !self.over {
            self.file.flush()?;
            return Ok(Capture {
                bytes: self.total,
                dropped: 0,
            });
        }
        // The ring holds up to the tail plus one byte; the tail proper is
        // what came after the head and after the last skip.
        let ring = self.ring.contents();
        let tail_len = self
            .tail
            .min(self.since_skip)
            .min(self.total - self.head_written) as usize;
        let tail_len = tail_len.min(ring.len());
        // The byte before the tail, when known (not skipped).
        let before = (ring.len() > tail_len).then(|| ring[ring.len() - tail_len - 1]);
        let mut tail = ring[ring.len() - tail_len..].to_vec();
        let mut head_len = self.head_written;
        if self.marker == Marker::JsonLines {
            head_len = self.head_line_end.unwrap_or(0);
            // A tail that does not start a line starts with a piece of one.
            if before != Some(b'\n') {
                let cut = tail
                    .iter()
                    .position(|b| *b == b'\n')
                    .map_or(tail.len(), |i| i + 1);
                tail.drain(..cut);
            }
            self.file.set_len(head_len)?;
            self.file.seek(SeekFrom::Start(head_len))?;
        }
        let dropped = self.total - head_len - tail.len() as u64;
        let marker = match self.marker {
            Marker::Bare => String::new(),
            Marker::Text => {
                let newline = if head_len > 0 && self.head_line_end != Some(head_len) {
                    "\n"
                } else {
                    ""
                };
                format!(
                    "{newline}[repro: {dropped} bytes dropped here: {} is capped at {} bytes, keeping the first {} and the last {}]\n",
                    self.name,
                    self.cap(),
                    head_len,
                    tail.len()
                )
            }
            Marker::JsonLines => {
                let log = format!(
                    "repro: {dropped} bytes of {} dropped here (capped at {} bytes)",
                    self.name,
                    self.cap()
                );
                format!("{}\n", serde_json::json!({ "log": log }))
            }
        };
        self.file.write_all(marker.as_bytes())?;
        self.file.write_all(&tail)?;
        self.file.flush()?;
        Ok(Capture {
            bytes: self.total,
            dropped,
        })
    }
}

impl Write for CappedFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.put(buf)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    fn run(head: u64, tail: u64, marker: Marker, writes: &[&[u8]]) -> (Vec<u8>, Capture) {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("x.log");
        let mut c =
            CappedFile::with_split(File::create(&path).unwrap(), "x.log", head, tail, marker);
        for w in writes {
            c.write_all(w).unwrap();
        }
        let cap = c.finish().unwrap();
        (std::fs::read(&path).unwrap(), cap)
    }

    fn marker(dropped: u64, head: u64, tail: u64) -> String {
        format!(
            "[repro: {dropped} bytes dropped here: x.log is capped at {} bytes, keeping the first {head} and the last {tail}]\n",
            head + tail
        )
    }

    #[rstest]
    #[case::empty(b"" as &[u8])]
    #[case::under(b"0123456")]
    #[case::exactly_the_cap(b"0123456789")]
    fn up_to_the_cap_everything_is_kept(#[case] data: &[u8]) {
        let (file, cap) = run(4, 6, Marker::Text, &[data]);
        assert_eq!(file, data);
        assert_eq!(
            cap,
            Capture {
                bytes: data.len() as u64,
                dropped: 0
            }
        );
    }

    #[test]
    fn one_byte_over_the_cap_drops_one_byte() {
        let (file, cap) = run(4, 6, Marker::Text, &[b"0123456789X"]);
        let want = format!("0123\n{}56789X", marker(1, 4, 6));
        assert_eq!(String::from_utf8(file).unwrap(), want);
        assert_eq!(
            cap,
            Capture {
                bytes: 11,
                dropped: 1
            }
        );
    }

    #[rstest]
    #[case::one_write(&["abcdefghijklmnopqrstuvwxyz"])]
    #[case::byte_by_byte(&["a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k", "l", "m", "n", "o", "p", "q", "r", "s", "t", "u", "v", "w", "x", "y", "z"])]
    #[case::chunks_across_both_cuts(&["abc", "defghijklmnopq", "rstuvwxy", "z"])]
    #[case::one_write_after_a_short_one(&["ab", "cdefghijklmnopqrstuvwxyz"])]
    fn head_and_tail_are_kept_whatever_the_writes(#[case] writes: &[&str]) {
        let writes: Vec<&[u8]> = writes.iter().map(|w| w.as_bytes()).collect();
        let writes = &writes[..];
        let (file, cap) = run(4, 6, Marker::Text, writes);
        let want = format!("abcd\n{}uvwxyz", marker(16, 4, 6));
        assert_eq!(String::from_utf8(file).unwrap(), want);
        assert_eq!(
            cap,
            Capture {
                bytes: 26,
                dropped: 16
            }
        );
    }

    #[test]
    fn a_head_ending_a_line_needs_no_extra_newline() {
        let (file, _) = run(4, 3, Marker::Text, &[b"abc\nlong line\nxyz"]);
        assert_eq!(
            String::from_utf8(file).unwrap(),
            format!("abc\n{}xyz", marker(10, 4, 3))
        );
    }

    #[test]
    fn the_file_is_never_larger_than_the_cap_and_the_marker() {
        let big = vec![b'y'; 1 << 20];
        let (file, cap) = run(1000, 1000, Marker::Text, &[&big, &big, &big]);
        let m = marker(3 * (1 << 20) - 2000, 1000, 1000);
        assert_eq!(file.len(), 2000 + 1 + m.len());
        assert_eq!(cap.dropped, 3 * (1 << 20) - 2000);
    }

    #[test]
    fn live_bytes_reach_the_file_before_finish() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("live.log");
        let mut c = CappedFile::create(&path, 100, Marker::Text).unwrap();
        c.write_all(b"hello ").unwrap();
        c.write_all(b"world").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"hello world");
        c.finish().unwrap();
    }

    #[test]
    fn bare_files_keep_only_their_head() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("a.bin");
        let mut c = CappedFile::create(&path, 5, Marker::Bare).unwrap();
        c.write_all(b"0123456789").unwrap();
        assert_eq!(
            c.finish().unwrap(),
            Capture {
                bytes: 10,
                dropped: 5
            }
        );
        assert_eq!(std::fs::read(&path).unwrap(), b"01234");
    }

    #[test]
    fn skipped_bytes_count_as_dropped_and_the_tail_follows_them() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("x.log");
        let mut c =
            CappedFile::with_split(File::create(&path).unwrap(), "x.log", 4, 6, Marker::Text);
        c.write_all(b"abcd").unwrap();
        c.skip(100).unwrap();
        c.write_all(b"uvwxyz").unwrap();
        let cap = c.finish().unwrap();
        assert_eq!(
            cap,
            Capture {
                bytes: 110,
                dropped: 100
            }
        );
        assert_eq!(
            String::from_utf8(std::fs::read(&path).unwrap()).unwrap(),
            format!("abcd\n{}uvwxyz", marker(100, 4, 6))
        );
    }

    #[test]
    fn json_lines_are_cut_at_line_boundaries_with_a_log_record() {
        let lines = b"{\"a\":1}\n{\"b\":2}\n{\"c\":3}\n{\"d\":4}\n{\"e\":5}\n";
        // head 12 ends inside line 2, tail 12 starts inside line 4.
        let (file, cap) = run(12, 12, Marker::JsonLines, &[lines]);
        let text = String::from_utf8(file).unwrap();
        let kept: Vec<&str> = text.lines().collect();
        assert_eq!(kept.len(), 3, "{text}");
        assert_eq!(kept[0], "{\"a\":1}");
        assert_eq!(kept[2], "{\"e\":5}");
        let log: serde_json::Value = serde_json::from_str(kept[1]).unwrap();
        assert_eq!(
            log["log"],
            "repro: 24 bytes of x.log dropped here (capped at 24 bytes)"
        );
        assert_eq!(
            cap,
            Capture {
                bytes: 40,
                dropped: 24
            }
        );
    }

    #[test]
    fn a_json_tail_that_starts_a_line_keeps_it() {
        // head 8 = exactly line 1, tail 16 = exactly lines 4 and 5.
        let lines = b"{\"a\":1}\n{\"b\":2}\n{\"c\":3}\n{\"d\":4}\n{\"e\":5}\n";
        let (file, cap) = run(8, 16, Marker::JsonLines, &[lines]);
        let text = String::from_utf8(file).unwrap();
        let kept: Vec<&str> = text.lines().collect();
        assert_eq!(kept[0], "{\"a\":1}");
        assert_eq!(&kept[2..], ["{\"d\":4}", "{\"e\":5}"], "{text}");
        assert_eq!(cap.dropped, 16);
    }
}
