//! A kernel's build configuration (`CONFIG_...=y|m`): parsing it, finding it beside a
//! kernel (`/boot/config-<release>` of a package, a build tree's `.config`, or the
//! `IKCONFIG` blob the kernel embeds in itself or in `configs.ko`), and the built-in
//! or module state of a symbol. Parsing and the blob's extraction are pure.

use std::collections::BTreeMap;
use std::fmt;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use super::{io_err, Result};

/// What `CONFIG_SYMBOL` is set to, for a tristate symbol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tristate {
    /// `=y`: built into the kernel.
    Yes,
    /// `=m`: built as a module.
    Module,
    /// `# CONFIG_... is not set`, or absent.
    No,
}

/// Where a configuration was read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigSource {
    /// A config file: `boot/config-<release>`, a build tree's `.config`.
    File(PathBuf),
    /// The `IKCONFIG` blob in a kernel image or in `configs.ko`.
    Embedded(PathBuf),
}

impl fmt::Display for ConfigSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = |p: &Path| {
            p.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| p.display().to_string())
        };
        match self {
            ConfigSource::File(p) => f.write_str(&name(p)),
            ConfigSource::Embedded(p) => write!(f, "the IKCONFIG blob of {}", name(p)),
        }
    }
}

/// A parsed kernel configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelConfig {
    pub source: ConfigSource,
    /// `CONFIG_X` → its value as written (`y`, `m`, `"text"`, `0x10`...).
    values: BTreeMap<String, String>,
}

impl KernelConfig {
    /// Parses config text; `None` when it holds no `CONFIG_` line at all (not a config).
    pub fn parse(text: &str, source: ConfigSource) -> Option<KernelConfig> {
        let mut values = BTreeMap::new();
        let mut seen = false;
        for line in text.lines().map(str::trim) {
            if let Some(rest) = line.strip_prefix("# CONFIG_") {
                if let Some(sym) = rest.strip_suffix(" is not set") {
                    values.insert(format!("CONFIG_{sym}"), "n".to_string());
                    seen = true;
                }
            } else if line.starts_with("CONFIG_") {
                if let Some((k, v)) = line.split_once('=') {
                    values.insert(k.to_string(), v.to_string());
                    seen = true;
                }
            }
        }
        seen.then_some(KernelConfig { source, values })
    }

    /// The tristate value of `symbol` (with or without its `CONFIG_` prefix).
    pub fn tristate(&self, symbol: &str) -> Tristate {
        let key = if symbol.starts_with("CONFIG_") {
            symbol.to_string()
        } else {
            format!("CONFIG_{symbol}")
        };
        match self.values.get(&key).map(String::as_str) {
            Some("y") => Tristate::Yes,
            Some("m") => Tristate::Module,
            _ => Tristate::No,
        }
    }
}

/// What the kernel's `kernel/configs.c` puts around the gzipped config:
/// `IKCFG_ST`, the gzip stream, `IKCFG_ED`.
const IKCFG_START: &[u8] = b"IKCFG_ST";
/// The gzip magic with the deflate method, which must follow the start marker (as
/// `scripts/extract-ikconfig` checks): the marker alone also appears as a string.
const GZIP_MAGIC: &[u8] = &[0x1f, 0x8b, 0x08];
/// A config is a few hundred KiB; more means the stream is not one.
const MAX_CONFIG: u64 = 16 << 20;

/// The config text embedded by `CONFIG_IKCONFIG` in `image` (an uncompressed `vmlinux`,
/// or `configs.ko`), if there is one.
pub fn ikconfig(image: &[u8]) -> Option<String> {
    let mut from = 0;
    while let Some(p) = find(&image[from..], IKCFG_START) {
        let start = from + p + IKCFG_START.len();
        from = start;
        let data = &image[start..];
        if !data.starts_with(GZIP_MAGIC) {
            continue;
        }
        let mut text = Vec::new();
        let ok = flate2::read::GzDecoder::new(data)
            .take(MAX_CONFIG)
            .read_to_end(&mut text)
            .is_ok();
        if ok {
            if let Ok(t) = String::from_utf8(text) {
                return Some(t);
            }
        }
    }
    None
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Where to look for a kernel's configuration, in order.
#[derive(Debug, Clone, Default)]
pub struct ConfigPlaces<'a> {
    /// The package's `boot/config-<release>` (or one the kernel resolver found).
    pub packaged: Option<&'a Path>,
    /// The bootable kernel as given (a build tree's `.config` sits above
    /// `arch/x86/boot/bzImage`; `/boot/config-<release>` beside `/boot/vmlinuz-<release>`).
    pub vmlinuz: Option<&'a Path>,
    /// `uname -r`, for `config-<release>` beside the kernel.
    pub release: Option<&'a str>,
    /// The uncompressed ELF kernel, searched for the IKCONFIG blob.
    pub vmlinux: Option<&'a Path>,
    /// `lib/modules/<release>`: its `build/.config`, and `configs.ko` (IKCONFIG=m).
    pub modules_dir: Option<&'a Path>,
}

/// The first configuration found in `places`, in this order: the packaged config file,
/// `config-<release>` beside the kernel, a `.config` in the kernel's folder or in a kbuild
/// tree up to three folders above it (one with a `Makefile`), `build/.config` in the
/// modules folder, the IKCONFIG blob in `vmlinux`, then in `configs.ko`. `None` when there
/// is none.
pub fn find_config(places: &ConfigPlaces) -> Result<Option<KernelConfig>> {
    let mut files: Vec<PathBuf> = Vec::new();
    files.extend(places.packaged.map(Path::to_path_buf));
    if let Some(v) = places.vmlinuz {
        if let (Some(dir), Some(rel)) = (v.parent(), places.release) {
            files.push(dir.join(format!("config-{rel}")));
        }
        // The kernel's own folder, then a kbuild tree above it (recognised by its
        // Makefile: a stray `.config` elsewhere is not this kernel's).
        for (i, d) in v.ancestors().skip(1).take(4).enumerate() {
            if i == 0 || d.join("Makefile").is_file() {
                files.push(d.join(".config"));
            }
        }
    }
    if let Some(m) = places.modules_dir {
        files.push(m.join("build/.config"));
    }
    for f in files {
        if !f.is_file() {
            continue;
        }
        let text = fs::read(&f).map_err(io_err(&f))?;
        if let Some(c) = KernelConfig::parse(
            &String::from_utf8_lossy(&text),
            ConfigSource::File(f.clone()),
        ) {
            return Ok(Some(c));
        }
    }
    let mut images: Vec<(PathBuf, bool)> = Vec::new();
    images.extend(places.vmlinux.map(|v| (v.to_path_buf(), false)));
    if let Some(m) = places.modules_dir {
        for ext in ["ko", "ko.xz", "ko.zst", "ko.gz"] {
            images.push((m.join(format!("kernel/kernel/configs.{ext}")), true));
        }
    }
    for (path, module) in images {
        if !path.is_file() {
            continue;
        }
        let bytes = if module {
            super::modules::decompress_module(&path)?
        } else {
            fs::read(&path).map_err(io_err(&path))?
        };
        if let Some(c) = ikconfig(&bytes)
            .and_then(|t| KernelConfig::parse(&t, ConfigSource::Embedded(path.clone())))
        {
            return Ok(Some(c));
        }
    }
    Ok(None)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::io::Write;

    /// Lines of Debian's `boot/config-6.1.0-57-amd64` (bookworm, 6.1.192-3), in their order
    /// there (the numbers are its line numbers).
    pub(crate) const DEBIAN_61: &str = "\
#
# Automatically generated file; DO NOT EDIT.
# Linux/x86 6.1.192 Kernel Configuration
#
CONFIG_CC_VERSION_TEXT=\"gcc-12 (Debian 12.2.0-14+deb12u1) 12.2.0\"
CONFIG_LOCALVERSION=\"\"
# CONFIG_IKCONFIG is not set
CONFIG_MEMCG=y
CONFIG_NR_CPUS=8192
CONFIG_UNIX=y
CONFIG_VIRTIO_BLK=m
CONFIG_VIRTIO_NET=m
CONFIG_VIRTIO=m
CONFIG_VIRTIO_PCI=m
CONFIG_VIRTIO_MMIO=m
CONFIG_EXT4_FS=m
# CONFIG_AUTOFS4_FS is not set
CONFIG_AUTOFS_FS=m
";

    /// The same blob layout as `kernel/configs.c`: marker, gzip, end marker.
    pub(crate) fn ikconfig_blob(text: &str) -> Vec<u8> {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        gz.write_all(text.as_bytes()).unwrap();
        let mut b = b"\x7fELF junk IKCFG_ST is also a string here; ".to_vec();
        b.extend_from_slice(IKCFG_START);
        b.extend_from_slice(&gz.finish().unwrap());
        b.extend_from_slice(b"IKCFG_ED");
        b.extend_from_slice(&[0u8; 64]);
        b
    }

    #[test]
    fn parses_tristates_and_ignores_other_lines() {
        let c = KernelConfig::parse(DEBIAN_61, ConfigSource::File("/b/config-6.1".into())).unwrap();
        assert_eq!(c.tristate("CONFIG_UNIX"), Tristate::Yes);
        assert_eq!(c.tristate("VIRTIO_NET"), Tristate::Module);
        assert_eq!(c.tristate("CONFIG_AUTOFS4_FS"), Tristate::No);
        assert_eq!(c.tristate("CONFIG_IKCONFIG"), Tristate::No);
        assert_eq!(c.tristate("CONFIG_NOT_THERE"), Tristate::No);
        // Not tristates: neither built in nor a module.
        assert_eq!(c.tristate("CONFIG_NR_CPUS"), Tristate::No);
        assert_eq!(c.tristate("CONFIG_LOCALVERSION"), Tristate::No);
        assert_eq!(c.source.to_string(), "config-6.1");
        assert!(KernelConfig::parse("just text\n", ConfigSource::File("x".into())).is_none());
    }

    #[test]
    fn ikconfig_blob_is_found_after_its_marker() {
        let blob = ikconfig_blob(DEBIAN_61);
        assert_eq!(ikconfig(&blob).as_deref(), Some(DEBIAN_61));
        // The marker without gzip data after it (a string in .rodata) is not a blob.
        assert_eq!(ikconfig(b"IKCFG_ST but no data IKCFG_ED"), None);
        assert_eq!(ikconfig(b""), None);
        // Corrupt gzip: no config rather than garbage.
        let mut bad = blob.clone();
        let at = find(&bad, &[0x1f, 0x8b, 0x08]).unwrap();
        for b in &mut bad[at + 12..at + 40] {
            *b ^= 0x5a;
        }
        assert!(ikconfig(&bad).is_none_or(|t| t != DEBIAN_61));
    }

    #[test]
    fn finds_the_config_in_order() {
        let tmp = tempfile::tempdir().unwrap();
        let r = tmp.path();
        // A kbuild tree: .config three levels above arch/x86/boot/bzImage.
        fs::create_dir_all(r.join("linux/arch/x86/boot")).unwrap();
        let bz = r.join("linux/arch/x86/boot/bzImage");
        fs::write(&bz, b"bz").unwrap();
        let places = ConfigPlaces {
            vmlinuz: Some(&bz),
            release: Some("6.1.0-test"),
            ..Default::default()
        };
        assert_eq!(find_config(&places).unwrap(), None);
        fs::write(r.join("linux/.config"), "CONFIG_VIRTIO_NET=y\n").unwrap();
        assert_eq!(find_config(&places).unwrap(), None, "not a kbuild tree yet");
        fs::write(r.join("linux/Makefile"), "# kbuild\n").unwrap();
        let c = find_config(&places).unwrap().unwrap();
        assert_eq!(c.source, ConfigSource::File(r.join("linux/.config")));
        assert_eq!(c.tristate("CONFIG_VIRTIO_NET"), Tristate::Yes);

        // /boot/vmlinuz-<release> with /boot/config-<release> beside it.
        fs::create_dir_all(r.join("boot")).unwrap();
        let vmlinuz = r.join("boot/vmlinuz-6.1.0-test");
        fs::write(&vmlinuz, b"bz").unwrap();
        fs::write(r.join("boot/config-6.1.0-test"), DEBIAN_61).unwrap();
        let places = ConfigPlaces {
            vmlinuz: Some(&vmlinuz),
            release: Some("6.1.0-test"),
            ..Default::default()
        };
        let c = find_config(&places).unwrap().unwrap();
        assert_eq!(c.tristate("CONFIG_VIRTIO_NET"), Tristate::Module);

        // Only the kernel itself: the IKCONFIG blob in vmlinux, then in configs.ko.
        let vmlinux = r.join("vmlinux");
        fs::write(&vmlinux, b"\x7fELF no blob").unwrap();
        let mods = r.join("lib/modules/6.1.0-test");
        fs::create_dir_all(mods.join("kernel/kernel")).unwrap();
        let places = ConfigPlaces {
            vmlinux: Some(&vmlinux),
            modules_dir: Some(&mods),
            ..Default::default()
        };
        assert_eq!(find_config(&places).unwrap(), None);
        let xz = {
            let mut e = xz2::write::XzEncoder::new(Vec::new(), 1);
            e.write_all(&ikconfig_blob("CONFIG_EXT4_FS=y\n")).unwrap();
            e.finish().unwrap()
        };
        fs::write(mods.join("kernel/kernel/configs.ko.xz"), xz).unwrap();
        let c = find_config(&places).unwrap().unwrap();
        assert_eq!(c.source.to_string(), "the IKCONFIG blob of configs.ko.xz");
        assert_eq!(c.tristate("EXT4_FS"), Tristate::Yes);
        fs::write(&vmlinux, ikconfig_blob("CONFIG_EXT4_FS=m\n")).unwrap();
        let c = find_config(&places).unwrap().unwrap();
        assert_eq!(c.source, ConfigSource::Embedded(vmlinux.clone()));
        assert_eq!(c.tristate("EXT4_FS"), Tristate::Module);
    }
}
