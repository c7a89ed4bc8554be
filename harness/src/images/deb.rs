//! Unpacking Debian packages in Rust, with no `dpkg` on the host.
//!
//! A .deb is an `ar` archive holding `debian-binary`, `control.tar.*` and `data.tar.*`;
//! the data member is a tar, plain or compressed with xz, zstd or gzip (told by its magic
//! bytes, see [`super::compress`]). An RPM's payload is a cpio, compressed the same ways.

use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::{Component, Path, PathBuf};

use super::compress::{self, Compression, Extent};

/// What went wrong unpacking a .deb.
#[derive(Debug, thiserror::Error)]
pub enum DebError {
    #[error("cannot open {path}: {source}")]
    Open { path: PathBuf, source: io::Error },
    #[error("{path} is not a readable Debian package ({source}); delete it from the cache to download it again")]
    Ar { path: PathBuf, source: io::Error },
    #[error("{path} has no data.tar, data.tar.xz, data.tar.zst or data.tar.gz member (members: {members}); it is not a Debian binary package, or uses a compression repro does not read")]
    NoData { path: PathBuf, members: String },
    #[error("{path}: entry `{entry}` would land outside the destination folder; refusing to unpack a malicious or broken package")]
    Escape { path: PathBuf, entry: String },
    #[error("{path}: cannot unpack `{entry}` into {dest}: {source}")]
    Unpack {
        path: PathBuf,
        entry: String,
        dest: PathBuf,
        source: io::Error,
    },
    #[error("{path}: cannot read its {member} ({source}); the file may be truncated, delete it from the cache to download it again")]
    Data {
        path: PathBuf,
        member: String,
        source: io::Error,
    },
}

pub type Result<T, E = DebError> = std::result::Result<T, E>;

/// Normalises a tar entry path: strips a leading `./` (and `/`), and refuses `..`.
/// Returns `None` for a path that would escape the destination, `Some("")` for the root.
pub fn normalize_entry_path(p: &Path) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::CurDir | Component::RootDir | Component::Prefix(_) => {}
            Component::ParentDir => return None,
            Component::Normal(n) => out.push(n),
        }
    }
    Some(out)
}

/// Unpacks the entries of `deb`'s data archive accepted by `filter` into `dest`.
///
/// `filter` sees paths relative to the package root with no leading `./`
/// (`boot/vmlinuz-6.1.0-50-amd64`, `lib/modules/...`); folders are offered too, with no
/// trailing `/`. Regular files keep their permission bits (without set-uid/gid and sticky
/// bits) and modification times; symbolic links are recreated as they are (their targets may
/// point anywhere, but nothing is ever written through one); hard links become hard links
/// inside `dest`. An entry with `..` in its path is an error. Existing files are replaced.
///
/// Returns the paths written (under `dest`), in archive order.
pub fn extract(deb: &Path, dest: &Path, filter: &dyn Fn(&Path) -> bool) -> Result<Vec<PathBuf>> {
    let file = File::open(deb).map_err(|source| DebError::Open {
        path: deb.to_path_buf(),
        source,
    })?;
    std::fs::create_dir_all(dest).map_err(|source| DebError::Unpack {
        path: deb.to_path_buf(),
        entry: String::new(),
        dest: dest.to_path_buf(),
        source,
    })?;
    let mut ar = ar::Archive::new(BufReader::new(file));
    let mut members = Vec::new();
    while let Some(entry) = ar.next_entry() {
        let entry = entry.map_err(|source| DebError::Ar {
            path: deb.to_path_buf(),
            source,
        })?;
        let name = String::from_utf8_lossy(entry.header().identifier())
            .trim_end_matches('/')
            .to_string();
        if !matches!(
            name.as_str(),
            "data.tar" | "data.tar.xz" | "data.tar.zst" | "data.tar.gz"
        ) {
            members.push(name);
            continue;
        }
        let (_, reader) = compress::sniff(entry, Extent::All).map_err(|source| DebError::Data {
            path: deb.to_path_buf(),
            member: name.clone(),
            source,
        })?;
        return unpack_tar(reader, deb, &name, dest, filter);
    }
    Err(DebError::NoData {
        path: deb.to_path_buf(),
        members: members.join(", "),
    })
}

/// Unpacks a tar stream (see `extract` for the rules). `origin` and `member` name it in errors.
pub fn unpack_tar(
    reader: impl Read,
    origin: &Path,
    member: &str,
    dest: &Path,
    filter: &dyn Fn(&Path) -> bool,
) -> Result<Vec<PathBuf>> {
    let data_err = |source: io::Error| DebError::Data {
        path: origin.to_path_buf(),
        member: member.to_string(),
        source,
    };
    let mut tar = tar::Archive::new(reader);
    tar.set_overwrite(true);
    tar.set_preserve_permissions(false); // mode & 0o777: no set-uid files in a user's cache
    tar.set_preserve_mtime(true);
    tar.set_unpack_xattrs(false);
    let mut out = Vec::new();
    for entry in tar.entries().map_err(data_err)? {
        let mut entry = entry.map_err(data_err)?;
        let raw = entry.path().map_err(data_err)?.into_owned();
        let Some(rel) = normalize_entry_path(&raw) else {
            return Err(DebError::Escape {
                path: origin.to_path_buf(),
                entry: raw.display().to_string(),
            });
        };
        if rel.as_os_str().is_empty() || !filter(&rel) {
            continue;
        }
        if entry.header().entry_type().is_hard_link() {
            if let Ok(Some(target)) = entry.link_name() {
                if normalize_entry_path(&target).is_none() {
                    return Err(DebError::Escape {
                        path: origin.to_path_buf(),
                        entry: format!("{} (hard link to {})", raw.display(), target.display()),
                    });
                }
            }
        }
        // `unpack_in` also refuses to write through symbolic links that leave `dest`.
        let unpacked = entry.unpack_in(dest).map_err(|source| DebError::Unpack {
            path: origin.to_path_buf(),
            entry: rel.display().to_string(),
            dest: dest.to_path_buf(),
            source,
        })?;
        if !unpacked {
            return Err(DebError::Escape {
                path: origin.to_path_buf(),
                entry: raw.display().to_string(),
            });
        }
        out.push(dest.join(&rel));
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// RPM (for CentOS kernels)
// ---------------------------------------------------------------------------------------------

const RPM_LEAD_MAGIC: &[u8] = &[0xED, 0xAB, 0xEE, 0xDB];
const RPM_HEADER_MAGIC: &[u8] = &[0x8E, 0xAD, 0xE8, 0x01];

/// Byte length of an RPM header structure starting at `off` (magic, 4 reserved bytes,
/// index count, data size, the index, the data).
fn rpm_header_len(b: &[u8], off: usize) -> Option<usize> {
    if b.get(off..off + 4)? != RPM_HEADER_MAGIC {
        return None;
    }
    let be = |o: usize| -> Option<usize> {
        let s = b.get(o..o.checked_add(4)?)?;
        Some(u32::from_be_bytes(s.try_into().ok()?) as usize)
    };
    let nindex = be(off + 8)?;
    let hsize = be(off + 12)?;
    Some(16 + nindex.checked_mul(16)? + hsize)
}

/// Unpacks the files of an RPM accepted by `filter` into `dest`, with the same rules as
/// `extract` (relative paths without `./`, modes without set-uid, symbolic links as they are,
/// nothing outside `dest`). The payload is a newc cpio compressed with xz, zstd or gzip
/// (older bzip2/lzma payloads are refused with an error).
pub fn extract_rpm(
    rpm: &Path,
    dest: &Path,
    filter: &dyn Fn(&Path) -> bool,
) -> Result<Vec<PathBuf>> {
    let bytes = std::fs::read(rpm).map_err(|source| DebError::Open {
        path: rpm.to_path_buf(),
        source,
    })?;
    let bad = |why: &str| DebError::Data {
        path: rpm.to_path_buf(),
        member: "RPM headers".into(),
        source: io::Error::new(io::ErrorKind::InvalidData, why.to_string()),
    };
    if !bytes.starts_with(RPM_LEAD_MAGIC) || bytes.len() < 96 {
        return Err(bad("no RPM lead (not an RPM file)"));
    }
    let sig_len =
        rpm_header_len(&bytes, 96).ok_or_else(|| bad("no signature header after the lead"))?;
    let main = 96 + sig_len.div_ceil(8) * 8;
    let main_len =
        rpm_header_len(&bytes, main).ok_or_else(|| bad("no main header after the signature"))?;
    let payload = bytes
        .get(main + main_len..)
        .ok_or_else(|| bad("truncated before the payload"))?;
    let reader: Box<dyn Read + '_> = match Compression::detect(payload) {
        Some(c) => {
            compress::decoder(c, payload, Extent::All).map_err(|source| DebError::Data {
                path: rpm.to_path_buf(),
                member: "payload".into(),
                source,
            })?
        }
        None if payload.starts_with(b"070701") || payload.starts_with(b"070702") => {
            Box::new(payload)
        }
        None => {
            return Err(bad(&format!(
                "payload compression not supported (magic {:02x?}); only xz, zstd and gzip payloads are read",
                &payload[..payload.len().min(4)]
            )))
        }
    };
    unpack_cpio(reader, rpm, dest, filter)
}

/// Where `rel` lands under `dest`, refusing any existing symbolic link on the way (so
/// nothing is written outside `dest`). Creates the parent folders.
fn safe_target(origin: &Path, dest: &Path, rel: &Path) -> Result<PathBuf> {
    let mut cur = dest.to_path_buf();
    let comps: Vec<_> = rel.components().collect();
    for (i, c) in comps.iter().enumerate() {
        cur.push(c);
        let last = i + 1 == comps.len();
        match std::fs::symlink_metadata(&cur) {
            Ok(m) if m.file_type().is_symlink() && !last => {
                return Err(DebError::Escape {
                    path: origin.to_path_buf(),
                    entry: format!(
                        "{} (through the symbolic link {})",
                        rel.display(),
                        cur.display()
                    ),
                })
            }
            Ok(m) if !last && !m.is_dir() => {
                return Err(DebError::Unpack {
                    path: origin.to_path_buf(),
                    entry: rel.display().to_string(),
                    dest: dest.to_path_buf(),
                    source: io::Error::other(format!("{} is not a folder", cur.display())),
                })
            }
            Ok(_) => {}
            Err(_) if !last => std::fs::create_dir(&cur).map_err(|source| DebError::Unpack {
                path: origin.to_path_buf(),
                entry: rel.display().to_string(),
                dest: dest.to_path_buf(),
                source,
            })?,
            Err(_) => {}
        }
    }
    Ok(cur)
}

/// Unpacks a newc cpio stream (see `extract_rpm`).
pub fn unpack_cpio(
    mut reader: impl Read,
    origin: &Path,
    dest: &Path,
    filter: &dyn Fn(&Path) -> bool,
) -> Result<Vec<PathBuf>> {
    use std::os::unix::fs::PermissionsExt;
    let unpack_err = |rel: &Path, source: io::Error| DebError::Unpack {
        path: origin.to_path_buf(),
        entry: rel.display().to_string(),
        dest: dest.to_path_buf(),
        source,
    };
    std::fs::create_dir_all(dest).map_err(|e| unpack_err(Path::new(""), e))?;
    let mut out = Vec::new();
    // Hard links in newc: all names share an inode number; only the last carries the data.
    let mut pending_links: std::collections::HashMap<u32, Vec<PathBuf>> = Default::default();
    loop {
        let mut e = cpio::newc::Reader::new(reader).map_err(|source| DebError::Data {
            path: origin.to_path_buf(),
            member: "cpio payload".into(),
            source,
        })?;
        if e.entry().is_trailer() {
            break;
        }
        let raw = PathBuf::from(e.entry().name());
        let mode = e.entry().mode();
        let ino = e.entry().ino();
        let nlink = e.entry().nlink();
        let size = e.entry().file_size();
        let Some(rel) = normalize_entry_path(&raw) else {
            return Err(DebError::Escape {
                path: origin.to_path_buf(),
                entry: raw.display().to_string(),
            });
        };
        if rel.as_os_str().is_empty() || !filter(&rel) {
            reader = e.finish().map_err(|source| DebError::Data {
                path: origin.to_path_buf(),
                member: "cpio payload".into(),
                source,
            })?;
            continue;
        }
        let target = safe_target(origin, dest, &rel)?;
        match mode & 0o170000 {
            0o040000 => {
                if !target.is_dir() {
                    std::fs::create_dir(&target).map_err(|x| unpack_err(&rel, x))?;
                }
                std::fs::set_permissions(&target, std::fs::Permissions::from_mode(mode & 0o777))
                    .map_err(|x| unpack_err(&rel, x))?;
            }
            0o120000 => {
                let mut link = String::new();
                e.read_to_string(&mut link)
                    .map_err(|x| unpack_err(&rel, x))?;
                let _ = std::fs::remove_file(&target);
                std::os::unix::fs::symlink(&link, &target).map_err(|x| unpack_err(&rel, x))?;
            }
            0o100000 => {
                if std::fs::symlink_metadata(&target).is_ok() {
                    std::fs::remove_file(&target).map_err(|x| unpack_err(&rel, x))?;
                }
                if size == 0 && nlink > 1 {
                    pending_links.entry(ino).or_default().push(target.clone());
                }
                let mut f = std::fs::File::create(&target).map_err(|x| unpack_err(&rel, x))?;
                io::copy(&mut e, &mut f).map_err(|x| unpack_err(&rel, x))?;
                f.set_permissions(std::fs::Permissions::from_mode(mode & 0o777))
                    .map_err(|x| unpack_err(&rel, x))?;
                if size > 0 {
                    for other in pending_links.remove(&ino).unwrap_or_default() {
                        std::fs::remove_file(&other).map_err(|x| unpack_err(&rel, x))?;
                        std::fs::hard_link(&target, &other).map_err(|x| unpack_err(&rel, x))?;
                    }
                }
            }
            _ => {} // devices, fifos, sockets: a kernel package has none, and a cache needs none
        }
        out.push(target);
        reader = e.finish().map_err(|source| DebError::Data {
            path: origin.to_path_buf(),
            member: "cpio payload".into(),
            source,
        })?;
    }
    Ok(out)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use rstest::rstest;
    use std::fs;
    use std::io::Write;
    use std::os::unix::fs::PermissionsExt;

    /// Builds a tar with `./`-prefixed paths: a folder, an executable, a plain file,
    /// a relative and an absolute symbolic link, and a hard link.
    pub(crate) fn sample_tar(files: &[(&str, &[u8], u32)], links: &[(&str, &str)]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        let mut dirs = std::collections::BTreeSet::new();
        for (p, _, _) in files {
            let mut acc = PathBuf::new();
            let parent = Path::new(p).parent().unwrap().to_path_buf();
            for c in parent.components() {
                acc.push(c);
                dirs.insert(acc.clone());
            }
        }
        for d in dirs {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(tar::EntryType::Directory);
            h.set_mode(0o755);
            h.set_size(0);
            b.append_data(&mut h, format!("./{}/", d.display()), io::empty())
                .unwrap();
        }
        for (p, data, mode) in files {
            let mut h = tar::Header::new_gnu();
            h.set_mode(*mode);
            h.set_size(data.len() as u64);
            h.set_mtime(1_700_000_000);
            b.append_data(&mut h, format!("./{p}"), *data).unwrap();
        }
        for (p, target) in links {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(tar::EntryType::Symlink);
            h.set_size(0);
            h.set_mode(0o777);
            b.append_link(&mut h, format!("./{p}"), target).unwrap();
        }
        b.into_inner().unwrap()
    }

    /// Wraps a data tar into a .deb (`ar`), compressing it as `compression` says.
    pub(crate) fn make_deb(data_tar: &[u8], compression: &str) -> Vec<u8> {
        let (name, body): (&str, Vec<u8>) = match compression {
            "xz" => {
                let mut e = xz2::write::XzEncoder::new(Vec::new(), 1);
                e.write_all(data_tar).unwrap();
                ("data.tar.xz", e.finish().unwrap())
            }
            "zst" => ("data.tar.zst", zstd::encode_all(data_tar, 3).unwrap()),
            "gz" => {
                let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                e.write_all(data_tar).unwrap();
                ("data.tar.gz", e.finish().unwrap())
            }
            "none" => ("data.tar", data_tar.to_vec()),
            other => panic!("unknown compression {other}"),
        };
        let control = sample_tar(&[("control", b"Package: t\n", 0o644)], &[]);
        let mut ar = ar::Builder::new(Vec::new());
        for (n, d) in [
            ("debian-binary", b"2.0\n".to_vec()),
            ("control.tar", control),
            (name, body),
        ] {
            let mut h = ar::Header::new(n.as_bytes().to_vec(), d.len() as u64);
            h.set_mode(0o644);
            ar.append(&h, d.as_slice()).unwrap();
        }
        ar.into_inner().unwrap()
    }

    #[rstest]
    #[case("xz")]
    #[case("zst")]
    #[case("gz")]
    #[case("none")]
    fn extracts_with_filter_modes_and_links(#[case] compression: &str) {
        let tar = sample_tar(
            &[
                ("boot/vmlinuz-1.0", b"kernel", 0o644),
                ("usr/bin/tool", b"#!/bin/sh\n", 0o4755),
                ("usr/share/doc/x", b"doc", 0o644),
            ],
            &[("usr/bin/alias", "tool"), ("boot/abs", "/boot/vmlinuz-1.0")],
        );
        let tmp = tempfile::tempdir().unwrap();
        let deb = tmp.path().join("t.deb");
        fs::write(&deb, make_deb(&tar, compression)).unwrap();
        let dest = tmp.path().join("out");
        let got = extract(&deb, &dest, &|p| !p.starts_with("usr/share")).unwrap();
        let rel: Vec<_> = got
            .iter()
            .map(|p| p.strip_prefix(&dest).unwrap().to_path_buf())
            .collect();
        assert!(rel.contains(&PathBuf::from("boot/vmlinuz-1.0")), "{rel:?}");
        assert!(!rel.iter().any(|p| p.starts_with("usr/share")), "{rel:?}");
        assert_eq!(fs::read(dest.join("boot/vmlinuz-1.0")).unwrap(), b"kernel");
        assert!(!dest.join("usr/share/doc/x").exists());
        let mode = fs::metadata(dest.join("usr/bin/tool"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o7777, 0o755, "set-uid dropped, rest kept");
        assert_eq!(
            fs::read_link(dest.join("usr/bin/alias")).unwrap(),
            PathBuf::from("tool")
        );
        assert_eq!(
            fs::read_link(dest.join("boot/abs")).unwrap(),
            PathBuf::from("/boot/vmlinuz-1.0")
        );
        // Extracting again over the first result works (replaces files and links).
        extract(&deb, &dest, &|_| true).unwrap();
        assert!(dest.join("usr/share/doc/x").is_file());
    }

    fn raw_tar_entry(name: &[u8], data: &[u8]) -> Vec<u8> {
        let mut h = tar::Header::new_old();
        h.as_old_mut().name[..name.len()].copy_from_slice(name);
        h.set_mode(0o644);
        h.set_size(data.len() as u64);
        h.set_cksum();
        let mut b = tar::Builder::new(Vec::new());
        b.append(&h, data).unwrap();
        b.into_inner().unwrap()
    }

    #[test]
    fn refuses_escaping_paths() {
        let tmp = tempfile::tempdir().unwrap();
        let deb = tmp.path().join("evil.deb");
        fs::write(&deb, make_deb(&raw_tar_entry(b"./../escaped", b"x"), "xz")).unwrap();
        let e = extract(&deb, &tmp.path().join("out"), &|_| true).unwrap_err();
        assert!(matches!(e, DebError::Escape { .. }), "{e}");
        assert!(!tmp.path().join("escaped").exists());
    }

    #[test]
    fn refuses_writing_through_symlink() {
        let tmp = tempfile::tempdir().unwrap();
        let outside = tmp.path().join("outside");
        fs::create_dir(&outside).unwrap();
        // First a link `lib -> <outside>`, then a file `lib/x`.
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_size(0);
        b.append_link(&mut h, "lib", &outside).unwrap();
        let mut h = tar::Header::new_gnu();
        h.set_size(1);
        h.set_mode(0o644);
        b.append_data(&mut h, "lib/x", &b"x"[..]).unwrap();
        let deb = tmp.path().join("evil.deb");
        fs::write(&deb, make_deb(&b.into_inner().unwrap(), "zst")).unwrap();
        assert!(extract(&deb, &tmp.path().join("out"), &|_| true).is_err());
        assert!(!outside.join("x").exists());
    }

    #[test]
    fn not_a_deb() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("x.deb");
        let mut ar = ar::Builder::new(Vec::new());
        ar.append(
            &ar::Header::new(b"debian-binary".to_vec(), 4),
            &b"2.0\n"[..],
        )
        .unwrap();
        fs::write(&p, ar.into_inner().unwrap()).unwrap();
        let e = extract(&p, tmp.path(), &|_| true).unwrap_err();
        assert!(matches!(e, DebError::NoData { .. }), "{e}");
        assert!(e.to_string().contains("debian-binary"));
        fs::write(&p, b"garbage").unwrap();
        assert!(matches!(
            extract(&p, tmp.path(), &|_| true),
            Err(DebError::Ar { .. })
        ));
    }

    #[rstest]
    #[case("./lib/modules/x.ko", Some("lib/modules/x.ko"))]
    #[case("/boot/vmlinuz", Some("boot/vmlinuz"))]
    #[case("./", Some(""))]
    #[case("a/../b", None)]
    fn normalize(#[case] p: &str, #[case] want: Option<&str>) {
        assert_eq!(normalize_entry_path(Path::new(p)), want.map(PathBuf::from));
    }

    /// A minimal RPM: lead, an empty signature header (padded), an empty main header, and
    /// an xz-compressed newc cpio payload.
    pub(crate) fn make_rpm(files: &[(&str, &[u8], u32)], links: &[(&str, &str)]) -> Vec<u8> {
        let mut cpio_bytes = Vec::new();
        let mut ino = 1;
        for (name, data, mode) in files {
            let w = cpio::newc::Builder::new(&format!("./{name}"))
                .mode(0o100000 | mode)
                .ino(ino)
                .nlink(1)
                .write(&mut cpio_bytes, data.len() as u32);
            let mut w = w;
            w.write_all(data).unwrap();
            w.finish().unwrap();
            ino += 1;
        }
        for (name, target) in links {
            let mut w = cpio::newc::Builder::new(&format!("./{name}"))
                .mode(0o120777)
                .ino(ino)
                .nlink(1)
                .write(&mut cpio_bytes, target.len() as u32);
            w.write_all(target.as_bytes()).unwrap();
            w.finish().unwrap();
            ino += 1;
        }
        cpio::newc::trailer(&mut cpio_bytes).unwrap();
        let mut rpm = vec![0u8; 96];
        rpm[..4].copy_from_slice(RPM_LEAD_MAGIC);
        let header = |data_len: u32| {
            let mut h = RPM_HEADER_MAGIC.to_vec();
            h.extend_from_slice(&[0; 4]);
            h.extend_from_slice(&0u32.to_be_bytes());
            h.extend_from_slice(&data_len.to_be_bytes());
            h.resize(h.len() + data_len as usize, 0);
            h
        };
        rpm.extend(header(3)); // 19 bytes: padded to 24
        rpm.extend_from_slice(&[0; 5]);
        rpm.extend(header(0));
        let mut e = xz2::write::XzEncoder::new(Vec::new(), 1);
        e.write_all(&cpio_bytes).unwrap();
        rpm.extend(e.finish().unwrap());
        rpm
    }

    #[test]
    fn rpm_extracts_filtered_files_and_links() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("k.rpm");
        fs::write(
            &p,
            make_rpm(
                &[
                    ("boot/vmlinuz-3.10", b"bz", 0o755),
                    ("lib/modules/3.10/kernel/a.ko.xz", b"ko", 0o644),
                    ("usr/share/doc/x", b"d", 0o644),
                ],
                &[("lib/modules/3.10/build", "/usr/src/kernels/3.10")],
            ),
        )
        .unwrap();
        let dest = tmp.path().join("out");
        let got = extract_rpm(&p, &dest, &|r| !r.starts_with("usr")).unwrap();
        assert_eq!(got.len(), 3, "{got:?}");
        assert_eq!(fs::read(dest.join("boot/vmlinuz-3.10")).unwrap(), b"bz");
        assert_eq!(
            fs::metadata(dest.join("boot/vmlinuz-3.10"))
                .unwrap()
                .permissions()
                .mode()
                & 0o777,
            0o755
        );
        assert_eq!(
            fs::read_link(dest.join("lib/modules/3.10/build")).unwrap(),
            PathBuf::from("/usr/src/kernels/3.10")
        );
        assert!(!dest.join("usr").exists());
        // Writing through a symbolic link is refused.
        let evil = tmp.path().join("e.rpm");
        fs::write(
            &evil,
            make_rpm(&[("lib/modules/3.10/build/x", b"x", 0o644)], &[]),
        )
        .unwrap();
        let e = extract_rpm(&evil, &dest, &|_| true).unwrap_err();
        assert!(matches!(e, DebError::Escape { .. }), "{e}");
        fs::write(&evil, b"not an rpm").unwrap();
        assert!(extract_rpm(&evil, &dest, &|_| true).is_err());
    }
}
