//! Compressed data: xz, zstd and gzip told apart by their magic bytes, and the one place
//! that picks a decoder for them (.deb data members, RPM payloads, `Packages.xz`, kernel
//! modules, bzImage payloads).

use std::io::{self, Read};

/// A compression the harness reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    Xz,
    Zstd,
    Gzip,
}

impl Compression {
    /// Every compression, in the order a scan for magic bytes tries them.
    pub const ALL: [Compression; 3] = [Compression::Xz, Compression::Zstd, Compression::Gzip];

    /// The bytes a stream of this compression starts with (gzip: with the deflate method,
    /// the only one there is).
    pub fn magic(self) -> &'static [u8] {
        match self {
            Compression::Xz => &[0xFD, b'7', b'z', b'X', b'Z', 0x00],
            Compression::Zstd => &[0x28, 0xB5, 0x2F, 0xFD],
            Compression::Gzip => &[0x1F, 0x8B, 0x08],
        }
    }

    /// The compression `head` (the first bytes of a stream) starts with, if any.
    pub fn detect(head: &[u8]) -> Option<Compression> {
        Compression::ALL
            .into_iter()
            .find(|c| head.starts_with(c.magic()))
    }
}

/// The longest magic.
const MAGIC_LEN: usize = 6;

/// How much of the input a decoder reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Extent {
    /// Everything: every xz stream and zstd frame (a file: a .deb member, an RPM payload,
    /// an index, a module).
    All,
    /// The first stream or frame only, ignoring what follows it (a bzImage payload, which
    /// the uncompressed size follows).
    First,
}

/// A reader giving `input` decompressed as `c`. gzip reads one member in both extents.
pub fn decoder<'a>(
    c: Compression,
    input: impl Read + 'a,
    extent: Extent,
) -> io::Result<Box<dyn Read + 'a>> {
    Ok(match (c, extent) {
        (Compression::Xz, Extent::All) => Box::new(xz2::read::XzDecoder::new_multi_decoder(input)),
        (Compression::Xz, Extent::First) => Box::new(XzFirstStream::new(input)?),
        (Compression::Zstd, Extent::All) => Box::new(zstd::stream::read::Decoder::new(input)?),
        (Compression::Zstd, Extent::First) => {
            Box::new(zstd::stream::read::Decoder::new(input)?.single_frame())
        }
        (Compression::Gzip, _) => Box::new(flate2::read::GzDecoder::new(input)),
    })
}

/// Looks at the first bytes of `input`: returns the compression found and a reader giving
/// the decompressed data, or `None` and the input unchanged when it starts with no known
/// magic (a plain tar, an uncompressed module).
pub fn sniff<'a>(
    mut input: impl Read + 'a,
    extent: Extent,
) -> io::Result<(Option<Compression>, Box<dyn Read + 'a>)> {
    // Read the head in a loop: one read may return fewer bytes than the magic's length.
    let mut head = [0u8; MAGIC_LEN];
    let mut n = 0;
    while n < head.len() {
        match input.read(&mut head[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    let whole = io::Cursor::new(head[..n].to_vec()).chain(input);
    match Compression::detect(&head[..n]) {
        Some(c) => Ok((Some(c), decoder(c, whole, extent)?)),
        None => Ok((None, Box::new(whole))),
    }
}

/// All of `data`, decompressed when it starts with a known magic, else as it is.
pub fn decompress_all(data: &[u8]) -> io::Result<Vec<u8>> {
    let (_, mut r) = sniff(data, Extent::All)?;
    let mut out = Vec::new();
    r.read_to_end(&mut out)?;
    Ok(out)
}

/// The first xz stream of a reader, ignoring what follows it (`xz2`'s own single-stream
/// decoder reports trailing bytes as a corrupt stream).
struct XzFirstStream<R> {
    input: R,
    stream: xz2::stream::Stream,
    buf: Vec<u8>,
    pos: usize,
    done: bool,
}

impl<R: Read> XzFirstStream<R> {
    fn new(input: R) -> io::Result<Self> {
        Ok(XzFirstStream {
            input,
            stream: xz2::stream::Stream::new_stream_decoder(u64::MAX, 0)
                .map_err(io::Error::other)?,
            buf: Vec::new(),
            pos: 0,
            done: false,
        })
    }
}

impl<R: Read> Read for XzFirstStream<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.done || out.is_empty() {
            return Ok(0);
        }
        loop {
            if self.pos == self.buf.len() {
                self.buf.resize(1 << 16, 0);
                let n = loop {
                    match self.input.read(&mut self.buf) {
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        r => break r?,
                    }
                };
                self.buf.truncate(n);
                self.pos = 0;
            }
            let eof = self.buf.is_empty();
            let (in_before, out_before) = (self.stream.total_in(), self.stream.total_out());
            let status = self
                .stream
                .process(&self.buf[self.pos..], out, xz2::stream::Action::Run)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
            let consumed = (self.stream.total_in() - in_before) as usize;
            let written = (self.stream.total_out() - out_before) as usize;
            self.pos += consumed;
            if status == xz2::stream::Status::StreamEnd {
                self.done = true;
                return Ok(written);
            }
            if written > 0 {
                return Ok(written);
            }
            if eof || consumed == 0 {
                // No input left, or the decoder can make no progress with what it has.
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "XZ stream is truncated",
                ));
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use rstest::rstest;
    use std::io::Write;

    /// `data` compressed as `c`.
    pub(crate) fn compress(c: Compression, data: &[u8]) -> Vec<u8> {
        match c {
            Compression::Xz => {
                let mut e = xz2::write::XzEncoder::new(Vec::new(), 1);
                e.write_all(data).unwrap();
                e.finish().unwrap()
            }
            Compression::Zstd => zstd::encode_all(data, 3).unwrap(),
            Compression::Gzip => {
                let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                e.write_all(data).unwrap();
                e.finish().unwrap()
            }
        }
    }

    fn read_all(mut r: impl Read) -> io::Result<Vec<u8>> {
        let mut v = Vec::new();
        r.read_to_end(&mut v)?;
        Ok(v)
    }

    /// Gives at most one byte per read, as a reader over a nearly drained buffer may.
    struct Trickle<'a>(&'a [u8]);
    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = self.0.len().min(buf.len()).min(1);
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    #[rstest]
    #[case(Compression::Xz)]
    #[case(Compression::Zstd)]
    #[case(Compression::Gzip)]
    fn sniffs_and_decodes_each_compression(#[case] c: Compression) {
        let plain = b"hello kernel ".repeat(1000);
        let packed = compress(c, &plain);
        assert_eq!(Compression::detect(&packed), Some(c));
        let (found, r) = sniff(Trickle(&packed), Extent::All).unwrap();
        assert_eq!(found, Some(c));
        assert_eq!(read_all(r).unwrap(), plain);
        assert_eq!(decompress_all(&packed).unwrap(), plain);
    }

    #[test]
    fn unknown_magic_passes_through() {
        for plain in [&b"\x7fELF and the rest"[..], b"ab", b""] {
            let (found, r) = sniff(Trickle(plain), Extent::All).unwrap();
            assert_eq!(found, None);
            assert_eq!(read_all(r).unwrap(), plain);
        }
    }

    #[rstest]
    #[case(Compression::Xz)]
    #[case(Compression::Zstd)]
    #[case(Compression::Gzip)]
    fn first_extent_ignores_a_trailer(#[case] c: Compression) {
        let plain = b"hello kernel ".repeat(1000);
        let mut data = compress(c, &plain);
        data.extend_from_slice(&[0x12, 0x34, 0x56, 0x78]);
        let r = decoder(c, data.as_slice(), Extent::First).unwrap();
        assert_eq!(read_all(r).unwrap(), plain);
    }

    #[test]
    fn xz_first_stream_fails_on_truncation() {
        let data = compress(Compression::Xz, &b"hello kernel ".repeat(1000));
        let r = decoder(Compression::Xz, &data[..data.len() / 2], Extent::First).unwrap();
        assert!(read_all(r).is_err());
    }

    #[test]
    fn all_extent_reads_concatenated_xz_streams() {
        let mut data = compress(Compression::Xz, b"one ");
        data.extend(compress(Compression::Xz, b"two"));
        assert_eq!(decompress_all(&data).unwrap(), b"one two");
    }
}
