//! The x86 boot protocol side of a kernel: recognising a bzImage, reading its version
//! string, unpacking the ELF `vmlinux` from its compressed payload, and telling whether that
//! ELF has the PVH entry note (so QEMU can boot it directly on `microvm`).

use std::io::Read;

use crate::images::compress::{self, Compression, Extent};

/// ELF note type of the PVH 32-bit entry point (`XEN_ELFNOTE_PHYS32_ENTRY`), name "Xen".
pub const XEN_ELFNOTE_PHYS32_ENTRY: u32 = 18;

fn le32(b: &[u8], off: usize) -> Option<u32> {
    let s = b.get(off..off.checked_add(4)?)?;
    Some(u32::from_le_bytes(s.try_into().ok()?))
}

fn le16(b: &[u8], off: usize) -> Option<u16> {
    let s = b.get(off..off.checked_add(2)?)?;
    Some(u16::from_le_bytes(s.try_into().ok()?))
}

/// Whether the bytes carry the x86 boot protocol header (`HdrS` at 0x202).
pub fn is_bzimage(b: &[u8]) -> bool {
    b.get(0x202..0x206) == Some(b"HdrS")
}

/// The kernel version string of a bzImage header (first word: the release).
pub fn bzimage_release(b: &[u8]) -> Option<String> {
    if !is_bzimage(b) {
        return None;
    }
    let ptr = le16(b, 0x20e)? as usize;
    if ptr == 0 {
        return None;
    }
    let s = b.get(ptr + 0x200..)?;
    let end = s.iter().position(|&c| c == 0)?;
    let text = std::str::from_utf8(&s[..end]).ok()?;
    text.split_whitespace().next().map(str::to_string)
}

/// The uncompressed ELF kernel inside a bzImage. The payload is found through the boot
/// protocol header (`payload_offset`, protocol 2.08+), else by scanning for an XZ, zstd or
/// gzip magic; it is decompressed up to the end of its first stream (the bzImage appends
/// the uncompressed size after it).
pub fn extract_vmlinux(bz: &[u8]) -> std::result::Result<Vec<u8>, String> {
    if !is_bzimage(bz) {
        return Err("not a bzImage (no HdrS header)".into());
    }
    let mut candidates = Vec::new();
    let setup_sects = match bz.get(0x1f1).copied() {
        Some(0) | None => 4,
        Some(n) => n as usize,
    };
    let protocol = le16(bz, 0x206).unwrap_or(0);
    if protocol >= 0x208 {
        if let (Some(off), Some(len)) = (le32(bz, 0x248), le32(bz, 0x24c)) {
            let start = (setup_sects + 1) * 512 + off as usize;
            let end = start.saturating_add(len as usize).min(bz.len());
            if start < end {
                candidates.push((start, end));
            }
        }
    }
    for c in Compression::ALL {
        let magic = c.magic();
        let mut from = 0;
        while let Some(p) = find(&bz[from..], magic) {
            candidates.push((from + p, bz.len()));
            from += p + 1;
            if candidates.len() > 16 {
                break;
            }
        }
    }
    let mut last = String::from("no compressed payload found");
    for (start, end) in candidates {
        let data = &bz[start..end];
        let Some(c) = Compression::detect(data) else {
            last = format!(
                "payload at {start:#x} uses a compression repro does not read (magic {:02x?}); build the kernel with XZ, zstd or gzip",
                &data[..data.len().min(4)]
            );
            continue;
        };
        let r = compress::decoder(c, data, Extent::First).and_then(|mut d| {
            let mut v = Vec::with_capacity(data.len() * 4);
            d.read_to_end(&mut v)?;
            Ok(v)
        });
        match r {
            Ok(v) if v.starts_with(b"\x7fELF") => return Ok(v),
            Ok(_) => last = format!("payload at {start:#x} does not decompress to an ELF file"),
            Err(e) => last = format!("payload at {start:#x}: {e}"),
        }
    }
    Err(last)
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Checks that `elf` is an x86-64 ELF and tells whether it has the PVH entry note
/// (`Xen` / `XEN_ELFNOTE_PHYS32_ENTRY`).
pub fn elf_pvh(elf: &[u8]) -> std::result::Result<bool, String> {
    let e = goblin::elf::Elf::parse(elf).map_err(|e| e.to_string())?;
    if !e.is_64 || e.header.e_machine != goblin::elf::header::EM_X86_64 {
        return Err(format!(
            "not an x86-64 ELF (machine {})",
            e.header.e_machine
        ));
    }
    let is_pvh =
        |n: &goblin::elf::note::Note| n.name == "Xen" && n.n_type == XEN_ELFNOTE_PHYS32_ENTRY;
    if let Some(it) = e.iter_note_headers(elf) {
        for n in it.flatten() {
            if is_pvh(&n) {
                return Ok(true);
            }
        }
    }
    if let Some(it) = e.iter_note_sections(elf, None) {
        for n in it.flatten() {
            if is_pvh(&n) {
                return Ok(true);
            }
        }
    }
    Ok(false)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use rstest::rstest;

    /// A fake bzImage: header fields, a payload that is an ELF-looking blob compressed with
    /// `compression`, and a 4-byte trailer.
    pub(crate) fn fake_bzimage(compression: &str, elf: &[u8]) -> Vec<u8> {
        let c = match compression {
            "xz" => Compression::Xz,
            "zst" => Compression::Zstd,
            "gz" => Compression::Gzip,
            other => panic!("unknown compression {other}"),
        };
        let payload = compress::tests::compress(c, elf);
        let mut b = vec![0u8; 5 * 512];
        b[0x1f1] = 4;
        b[0x202..0x206].copy_from_slice(b"HdrS");
        b[0x206..0x208].copy_from_slice(&0x20fu16.to_le_bytes());
        b[0x20e..0x210].copy_from_slice(&0x100u16.to_le_bytes());
        b[0x300..0x300 + 14].copy_from_slice(b"9.9.9-test #1\0");
        let pm = vec![0x90u8; 0x80]; // code before the payload
        b[0x248..0x24c].copy_from_slice(&(pm.len() as u32).to_le_bytes());
        b[0x24c..0x250].copy_from_slice(&(payload.len() as u32).to_le_bytes());
        b.extend_from_slice(&pm);
        b.extend_from_slice(&payload);
        b.extend_from_slice(&(elf.len() as u32).to_le_bytes());
        b
    }

    #[rstest]
    #[case("xz")]
    #[case("zst")]
    #[case("gz")]
    fn bzimage_payload(#[case] c: &str) {
        let elf = [b"\x7fELF".as_slice(), &[2u8; 200]].concat();
        let bz = fake_bzimage(c, &elf);
        assert_eq!(bzimage_release(&bz).as_deref(), Some("9.9.9-test"));
        assert_eq!(extract_vmlinux(&bz).unwrap(), elf);
        // Without the header's payload fields, the magic scan finds it.
        let mut old = bz.clone();
        old[0x206..0x208].copy_from_slice(&0x206u16.to_le_bytes());
        assert_eq!(extract_vmlinux(&old).unwrap(), elf);
        assert!(extract_vmlinux(b"nope").is_err());
    }

    /// An x86-64 ELF executable with one PT_NOTE segment holding `notes`.
    pub(crate) fn tiny_elf(notes: &[(&str, u32, &[u8])]) -> Vec<u8> {
        let mut note = Vec::new();
        for (name, ty, desc) in notes {
            let namez = [name.as_bytes(), b"\0"].concat();
            note.extend_from_slice(&(namez.len() as u32).to_le_bytes());
            note.extend_from_slice(&(desc.len() as u32).to_le_bytes());
            note.extend_from_slice(&ty.to_le_bytes());
            note.extend_from_slice(&namez);
            while note.len() % 4 != 0 {
                note.push(0);
            }
            note.extend_from_slice(desc);
            while note.len() % 4 != 0 {
                note.push(0);
            }
        }
        let mut b = vec![0u8; 64 + 56];
        b[..4].copy_from_slice(b"\x7fELF");
        b[4] = 2; // 64-bit
        b[5] = 1; // little endian
        b[6] = 1;
        b[16..18].copy_from_slice(&2u16.to_le_bytes()); // ET_EXEC
        b[18..20].copy_from_slice(&62u16.to_le_bytes()); // EM_X86_64
        b[20..24].copy_from_slice(&1u32.to_le_bytes());
        b[32..40].copy_from_slice(&64u64.to_le_bytes()); // e_phoff
        b[52..54].copy_from_slice(&64u16.to_le_bytes()); // e_ehsize
        b[54..56].copy_from_slice(&56u16.to_le_bytes()); // e_phentsize
        b[56..58].copy_from_slice(&1u16.to_le_bytes()); // e_phnum
        let ph = 64;
        b[ph..ph + 4].copy_from_slice(&4u32.to_le_bytes()); // PT_NOTE
        b[ph + 8..ph + 16].copy_from_slice(&120u64.to_le_bytes()); // p_offset
        b[ph + 32..ph + 40].copy_from_slice(&(note.len() as u64).to_le_bytes()); // p_filesz
        b[ph + 40..ph + 48].copy_from_slice(&(note.len() as u64).to_le_bytes());
        b[ph + 48..ph + 56].copy_from_slice(&4u64.to_le_bytes()); // p_align
        b.extend_from_slice(&note);
        b
    }

    #[test]
    fn pvh_note_detection() {
        let with = tiny_elf(&[
            ("GNU", 3, &[1, 2, 3, 4]),
            ("Xen", XEN_ELFNOTE_PHYS32_ENTRY, &[0, 0, 0, 1]),
        ]);
        assert_eq!(elf_pvh(&with), Ok(true));
        let without = tiny_elf(&[("Xen", 17, &[0, 0, 0, 1])]);
        assert_eq!(elf_pvh(&without), Ok(false));
        let mut arm = with.clone();
        arm[18..20].copy_from_slice(&183u16.to_le_bytes());
        assert!(elf_pvh(&arm).is_err());
    }
}
