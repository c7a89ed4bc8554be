//! Kernel modules: finding module files, reading `.modinfo` dependencies, the order in
//! which `/init` loads them (dependencies first; Debian ships no `modules.dep`), and whether
//! a wanted module without a file is built in, missing, or unknown ([`Builtins`]: the
//! kernel's `modules.builtin`, else its configuration, else the guest finds out).

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::config::{KernelConfig, Tristate};
use super::{io_err, KernelError, Result};
use crate::images::compress;

/// A module to load, in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModuleFile {
    /// Normalised name (`-` → `_`).
    pub name: String,
    /// The `.ko`, `.ko.xz`, `.ko.zst` or `.ko.gz` file.
    pub path: PathBuf,
}

/// What a module needs loaded first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ModuleDeps {
    /// `depends=`: required.
    pub depends: Vec<String>,
    /// `softdep=pre:`: loaded first when available, skipped otherwise.
    pub soft_pre: Vec<String>,
}

/// `virtio-net` → `virtio_net`; `kernel/fs/ext4/ext4.ko.xz` → `ext4`.
pub fn normalize_module_name(s: &str) -> String {
    let base = s.rsplit('/').next().unwrap_or(s);
    let base = [".ko.xz", ".ko.zst", ".ko.gz", ".ko"]
        .iter()
        .find_map(|suf| base.strip_suffix(suf))
        .unwrap_or(base);
    base.replace('-', "_")
}

fn is_module_file(name: &str) -> bool {
    [".ko", ".ko.xz", ".ko.zst", ".ko.gz"]
        .iter()
        .any(|s| name.ends_with(s))
}

/// Every module file under `root`, by normalised name (the first by sorted path wins when a
/// name appears twice).
pub fn index_modules(root: &Path) -> Result<BTreeMap<String, PathBuf>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    let mut files = Vec::new();
    while let Some(d) = stack.pop() {
        let rd = fs::read_dir(&d).map_err(io_err(&d))?;
        for e in rd {
            let e = e.map_err(io_err(&d))?;
            let ft = e.file_type().map_err(io_err(&d))?;
            let p = e.path();
            if ft.is_dir() {
                stack.push(p);
            } else if ft.is_file() && is_module_file(&e.file_name().to_string_lossy()) {
                files.push(p);
            }
        }
    }
    files.sort();
    for p in files {
        let n = normalize_module_name(&p.to_string_lossy());
        out.entry(n).or_insert(p);
    }
    Ok(out)
}

/// Names listed in `modules.builtin` (empty if the file is absent).
pub fn read_builtin(root: &Path) -> BTreeSet<String> {
    fs::read_to_string(root.join("modules.builtin"))
        .map(|t| parse_builtin(&t))
        .unwrap_or_default()
}

pub fn parse_builtin(text: &str) -> BTreeSet<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(normalize_module_name)
        .collect()
}

/// The built-in modules named in `modules.builtin.modinfo` (Linux 5.2+: the `.modinfo`
/// strings of every built-in module, `name.key=value`, NUL-separated).
pub fn parse_builtin_modinfo(data: &[u8]) -> BTreeSet<String> {
    data.split(|&b| b == 0)
        .filter_map(|s| {
            let t = String::from_utf8_lossy(s);
            let (name, rest) = t.split_once('.')?;
            (rest.contains('=') && !name.is_empty()).then(|| normalize_module_name(name))
        })
        .collect()
}

/// The Kconfig symbol(s) that build a module (`obj-$(CONFIG_VIRTIO_NET) += virtio_net.o`
/// in its Makefile); built in when any of them is `y`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Symbols {
    One(String),
    Any(Vec<String>),
}

impl Symbols {
    pub fn names(&self) -> &[String] {
        match self {
            Symbols::One(s) => std::slice::from_ref(s),
            Symbols::Any(v) => v,
        }
    }
}

/// Module name → the symbols that build it (`[kconfig]` in `images/userland.toml`).
pub type SymbolTable = BTreeMap<String, Symbols>;

/// What is known about a wanted module.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Presence {
    /// A module file to load.
    File,
    /// Built into the kernel; how that is known.
    BuiltIn(String),
    /// Neither a module file nor built in; how that is known.
    Missing(String),
    /// No module file, and nothing tells whether it is built in: the guest finds out.
    Unknown(String),
}

impl Presence {
    /// One word for `/etc/repro/required`: `module`, `builtin`, `missing`, `unknown`.
    pub fn state(&self) -> &'static str {
        match self {
            Presence::File => "module",
            Presence::BuiltIn(_) => "builtin",
            Presence::Missing(_) => "missing",
            Presence::Unknown(_) => "unknown",
        }
    }

    /// How that is known (empty for a module file).
    pub fn detail(&self) -> &str {
        match self {
            Presence::File => "",
            Presence::BuiltIn(d) | Presence::Missing(d) | Presence::Unknown(d) => d,
        }
    }
}

/// What tells whether a module without a file is built into the kernel, best first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Builtins {
    /// The kernel's own list; `file` names it (`modules.builtin`, `modules.builtin.modinfo`).
    List {
        file: &'static str,
        names: BTreeSet<String>,
    },
    /// The kernel's configuration, read through the module → symbol table.
    Config {
        config: KernelConfig,
        symbols: SymbolTable,
    },
    /// Neither: the guest finds out.
    Nothing,
}

impl Builtins {
    /// The kernel's list in `modules_dir` (`modules.builtin`, else `modules.builtin.modinfo`)
    /// if there is one.
    pub fn read_list(modules_dir: &Path) -> Result<Option<Builtins>> {
        let list = modules_dir.join("modules.builtin");
        if list.is_file() {
            let t = fs::read_to_string(&list).map_err(io_err(&list))?;
            return Ok(Some(Builtins::List {
                file: "modules.builtin",
                names: parse_builtin(&t),
            }));
        }
        let info = modules_dir.join("modules.builtin.modinfo");
        if info.is_file() {
            let b = fs::read(&info).map_err(io_err(&info))?;
            return Ok(Some(Builtins::List {
                file: "modules.builtin.modinfo",
                names: parse_builtin_modinfo(&b),
            }));
        }
        Ok(None)
    }

    /// The best there is for a kernel, in order: the kernel's list in `modules_dir`, then the
    /// configuration `config()` finds (called only without a list), then nothing.
    pub fn for_kernel(
        modules_dir: Option<&Path>,
        config: impl FnOnce() -> Result<Option<KernelConfig>>,
        symbols: &SymbolTable,
    ) -> Result<Builtins> {
        if let Some(d) = modules_dir {
            if let Some(b) = Builtins::read_list(d)? {
                return Ok(b);
            }
        }
        Ok(match config()? {
            Some(config) => Builtins::Config {
                config,
                symbols: symbols.clone(),
            },
            None => Builtins::Nothing,
        })
    }

    /// What is known about `module`, which has no module file.
    pub fn presence(&self, module: &str) -> Presence {
        match self {
            Builtins::List { file, names } => {
                if names.contains(module) {
                    Presence::BuiltIn(format!("listed in {file}"))
                } else {
                    Presence::Missing(format!("no module file, and not listed in {file}"))
                }
            }
            Builtins::Config { config, symbols } => {
                let Some(syms) = symbols.get(module) else {
                    return Presence::Unknown(format!(
                        "no modules.builtin, and no Kconfig symbol known for {module} to look up in {}",
                        config.source
                    ));
                };
                let values: Vec<(&String, Tristate)> = syms
                    .names()
                    .iter()
                    .map(|s| (s, config.tristate(s)))
                    .collect();
                if let Some((s, _)) = values.iter().find(|(_, v)| *v == Tristate::Yes) {
                    Presence::BuiltIn(format!("{s}=y in {}", config.source))
                } else if let Some((s, _)) = values.iter().find(|(_, v)| *v == Tristate::Module) {
                    Presence::Missing(format!(
                        "{s}=m in {}, but there is no {module} module file",
                        config.source
                    ))
                } else {
                    let names: Vec<&str> = syms.names().iter().map(String::as_str).collect();
                    Presence::Missing(format!(
                        "{} is not set in {}",
                        names.join(" nor "),
                        config.source
                    ))
                }
            }
            Builtins::Nothing => Presence::Unknown(
                "no modules.builtin and no kernel config to tell whether it is built in".into(),
            ),
        }
    }
}

/// A module file's bytes, decompressed if it is compressed (`.ko.xz`, `.ko.zst`, `.ko.gz`:
/// told by the content's magic bytes).
pub fn decompress_module(path: &Path) -> Result<Vec<u8>> {
    let raw = fs::read(path).map_err(io_err(path))?;
    compress::decompress_all(&raw).map_err(|e| KernelError::Module {
        path: path.to_path_buf(),
        why: format!("cannot decompress: {e}"),
    })
}

/// The `key=value` strings of a module's `.modinfo` section.
pub fn modinfo(elf: &[u8]) -> std::result::Result<Vec<(String, String)>, String> {
    let e = goblin::elf::Elf::parse(elf).map_err(|e| e.to_string())?;
    let sh = e
        .section_headers
        .iter()
        .find(|s| e.shdr_strtab.get_at(s.sh_name) == Some(".modinfo"))
        .ok_or("no .modinfo section")?;
    let start = sh.sh_offset as usize;
    let data = elf
        .get(start..start + sh.sh_size as usize)
        .ok_or(".modinfo section lies outside the file")?;
    Ok(parse_modinfo(data))
}

pub fn parse_modinfo(data: &[u8]) -> Vec<(String, String)> {
    data.split(|&b| b == 0)
        .filter(|s| !s.is_empty())
        .filter_map(|s| {
            let t = String::from_utf8_lossy(s);
            t.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
        })
        .collect()
}

/// Dependencies from `.modinfo` fields.
pub fn deps_from_modinfo(fields: &[(String, String)]) -> ModuleDeps {
    let mut d = ModuleDeps::default();
    for (k, v) in fields {
        match k.as_str() {
            "depends" => d.depends.extend(
                v.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(normalize_module_name),
            ),
            "softdep" => {
                // "pre: a b post: c"
                let mut in_pre = false;
                for w in v.split_whitespace() {
                    match w {
                        "pre:" => in_pre = true,
                        "post:" => in_pre = false,
                        w if in_pre => d.soft_pre.push(normalize_module_name(w)),
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    d
}

/// The load order of `wanted` and everything they depend on (dependencies first, each once),
/// and the wanted modules that are neither found nor built in. `lookup(name)` gives a
/// module's dependencies, or `None` when there is no such module file. Built-in modules are
/// skipped silently; a missing hard dependency is an error (`depends=` names only modules,
/// so the tree is incomplete), a missing soft one is not.
pub fn order_modules(
    wanted: &[&str],
    builtin: &dyn Fn(&str) -> bool,
    root: &Path,
    lookup: &mut dyn FnMut(&str) -> Result<Option<ModuleDeps>>,
) -> Result<(Vec<String>, Vec<String>)> {
    #[derive(PartialEq)]
    enum State {
        Visiting,
        Done,
    }
    struct Walk<'a> {
        builtin: &'a dyn Fn(&str) -> bool,
        root: &'a Path,
        lookup: &'a mut dyn FnMut(&str) -> Result<Option<ModuleDeps>>,
        state: BTreeMap<String, State>,
        stack: Vec<String>,
        order: Vec<String>,
    }
    impl Walk<'_> {
        /// Ok(false) when the module does not exist (and is not built in).
        fn visit(&mut self, name: &str) -> Result<bool> {
            if (self.builtin)(name) {
                return Ok(true);
            }
            match self.state.get(name) {
                Some(State::Done) => return Ok(true),
                Some(State::Visiting) => {
                    let mut cycle = self.stack.clone();
                    cycle.push(name.to_string());
                    return Err(KernelError::ModuleCycle {
                        cycle: cycle.join(" -> "),
                    });
                }
                None => {}
            }
            let Some(deps) = (self.lookup)(name)? else {
                return Ok(false);
            };
            self.state.insert(name.to_string(), State::Visiting);
            self.stack.push(name.to_string());
            for s in &deps.soft_pre {
                // Optional: a soft dependency that is absent is fine.
                if s != name && !self.stack.contains(s) {
                    self.visit(s)?;
                }
            }
            for d in &deps.depends {
                if !self.visit(d)? {
                    return Err(KernelError::ModuleDependency {
                        module: name.to_string(),
                        dependency: d.clone(),
                        root: self.root.to_path_buf(),
                    });
                }
            }
            self.stack.pop();
            self.state.insert(name.to_string(), State::Done);
            self.order.push(name.to_string());
            Ok(true)
        }
    }
    let mut w = Walk {
        builtin,
        root,
        lookup,
        state: BTreeMap::new(),
        stack: Vec::new(),
        order: Vec::new(),
    };
    let mut missing = Vec::new();
    for name in wanted {
        let n = normalize_module_name(name);
        if !w.visit(&n)? {
            missing.push(n);
        }
    }
    Ok((w.order, missing))
}

/// What to put into a guest for some wanted modules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModulePlan {
    /// The module files to load, dependencies first.
    pub load: Vec<ModuleFile>,
    /// Each wanted module (normalised), as asked, with what is known of it.
    pub wanted: Vec<(String, Presence)>,
}

/// The plan for `wanted` from a `lib/modules/<release>` folder (none for a kernel without
/// modules), using each module's `.modinfo` (`depends=`, `softdep=pre:`: Debian ships no
/// `modules.dep`) and `builtins` for the modules that have no file.
pub fn plan_modules(
    modules_root: Option<&Path>,
    wanted: &[&str],
    builtins: &Builtins,
) -> Result<ModulePlan> {
    let files = match modules_root {
        Some(r) => index_modules(r)?,
        None => BTreeMap::new(),
    };
    let root = modules_root.unwrap_or(Path::new("(no modules folder)"));
    let is_builtin = |n: &str| -> bool {
        !files.contains_key(n) && matches!(builtins.presence(n), Presence::BuiltIn(_))
    };
    let mut lookup = |name: &str| -> Result<Option<ModuleDeps>> {
        let Some(p) = files.get(name) else {
            return Ok(None);
        };
        let bytes = decompress_module(p)?;
        let info = modinfo(&bytes).map_err(|why| KernelError::Module {
            path: p.clone(),
            why,
        })?;
        Ok(Some(deps_from_modinfo(&info)))
    };
    let (order, _) = order_modules(wanted, &is_builtin, root, &mut lookup)?;
    let load = order
        .into_iter()
        .filter_map(|n| {
            files.get(&n).map(|p| ModuleFile {
                path: p.clone(),
                name: n,
            })
        })
        .collect();
    let wanted = wanted
        .iter()
        .map(|w| {
            let n = normalize_module_name(w);
            let p = if files.contains_key(&n) {
                Presence::File
            } else {
                builtins.presence(&n)
            };
            (n, p)
        })
        .collect();
    Ok(ModulePlan { load, wanted })
}

/// The modules to load (in order) for `wanted`, from a `lib/modules/<release>` folder;
/// every wanted module must be there or listed in its `modules.builtin`.
pub fn module_load_order(modules_root: &Path, wanted: &[&str]) -> Result<Vec<ModuleFile>> {
    let builtins = Builtins::read_list(modules_root)?.unwrap_or(Builtins::List {
        file: "modules.builtin",
        names: BTreeSet::new(),
    });
    let plan = plan_modules(Some(modules_root), wanted, &builtins)?;
    let missing: Vec<&str> = plan
        .wanted
        .iter()
        .filter(|(_, p)| !matches!(p, Presence::File | Presence::BuiltIn(_)))
        .map(|(n, _)| n.as_str())
        .collect();
    if !missing.is_empty() {
        return Err(KernelError::ModulesMissing {
            root: modules_root.to_path_buf(),
            names: missing.join(", "),
        });
    }
    Ok(plan.load)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use rstest::rstest;

    fn graph(edges: &[(&str, &[&str], &[&str])]) -> BTreeMap<String, ModuleDeps> {
        edges
            .iter()
            .map(|(n, d, s)| {
                (
                    n.to_string(),
                    ModuleDeps {
                        depends: d.iter().map(|x| x.to_string()).collect(),
                        soft_pre: s.iter().map(|x| x.to_string()).collect(),
                    },
                )
            })
            .collect()
    }

    fn order(
        g: &BTreeMap<String, ModuleDeps>,
        builtin: &[&str],
        wanted: &[&str],
    ) -> Result<Vec<String>> {
        let b: BTreeSet<String> = builtin.iter().map(|s| s.to_string()).collect();
        let (order, missing) = order_modules(
            wanted,
            &|n: &str| b.contains(n),
            Path::new("/m"),
            &mut |n| Ok(g.get(n).cloned()),
        )?;
        if missing.is_empty() {
            Ok(order)
        } else {
            Err(KernelError::ModulesMissing {
                root: "/m".into(),
                names: missing.join(", "),
            })
        }
    }

    #[test]
    fn module_order_dependencies_first_once() {
        let g = graph(&[
            (
                "virtio_net",
                &["net_failover", "virtio", "virtio_ring"],
                &[],
            ),
            ("net_failover", &["failover"], &[]),
            ("failover", &[], &[]),
            ("virtio", &["virtio_ring"], &[]),
            ("virtio_ring", &[], &[]),
            ("virtio_blk", &["virtio", "virtio_ring"], &[]),
            ("ext4", &["jbd2", "mbcache", "crc16"], &["crc32c"]),
            ("jbd2", &[], &[]),
            ("mbcache", &[], &[]),
            ("crc16", &[], &[]),
        ]);
        let o = order(
            &g,
            &["virtio_pci"],
            &["virtio-net", "virtio_pci", "virtio_blk", "ext4"],
        )
        .unwrap();
        assert_eq!(
            o,
            [
                "failover",
                "net_failover",
                "virtio_ring",
                "virtio",
                "virtio_net",
                "virtio_blk",
                "jbd2",
                "mbcache",
                "crc16",
                "ext4"
            ]
        );
        let pos = |n: &str| o.iter().position(|x| x == n).unwrap();
        assert!(pos("virtio_ring") < pos("virtio"));
    }

    #[test]
    fn module_order_soft_deps_load_first_when_present() {
        let g = graph(&[("ext4", &[], &["crc32c"]), ("crc32c", &[], &[])]);
        assert_eq!(order(&g, &[], &["ext4"]).unwrap(), ["crc32c", "ext4"]);
    }

    #[test]
    fn module_order_errors() {
        let g = graph(&[
            ("a", &["b"], &[]),
            ("b", &["a"], &[]),
            ("c", &["gone"], &[]),
        ]);
        assert!(matches!(
            order(&g, &[], &["a"]),
            Err(KernelError::ModuleCycle { .. })
        ));
        let e = order(&g, &[], &["c"]).unwrap_err();
        assert!(
            matches!(&e, KernelError::ModuleDependency { dependency, .. } if dependency == "gone"),
            "{e}"
        );
        let e = order(&g, &["x"], &["x", "y", "z"]).unwrap_err().to_string();
        assert!(e.contains("y, z"), "{e}");
    }

    #[rstest]
    #[case("virtio-net", "virtio_net")]
    #[case("kernel/fs/ext4/ext4.ko.xz", "ext4")]
    #[case("kernel/drivers/virtio/virtio_pci.ko", "virtio_pci")]
    #[case("x/nf_conntrack.ko.zst", "nf_conntrack")]
    fn module_names(#[case] s: &str, #[case] want: &str) {
        assert_eq!(normalize_module_name(s), want);
    }

    /// A relocatable ELF holding only a `.modinfo` section, as a `.ko` does.
    pub(crate) fn module_elf(modinfo: &[u8]) -> Vec<u8> {
        let strtab = b"\0.modinfo\0.shstrtab\0";
        let mut b = vec![0u8; 64];
        b[..4].copy_from_slice(b"\x7fELF");
        b[4] = 2; // 64-bit
        b[5] = 1; // little endian
        b[6] = 1;
        b[16..18].copy_from_slice(&1u16.to_le_bytes()); // ET_REL
        b[18..20].copy_from_slice(&62u16.to_le_bytes()); // EM_X86_64
        b[20..24].copy_from_slice(&1u32.to_le_bytes());
        b[52..54].copy_from_slice(&64u16.to_le_bytes()); // e_ehsize
        b[58..60].copy_from_slice(&64u16.to_le_bytes()); // e_shentsize
        b[60..62].copy_from_slice(&3u16.to_le_bytes()); // e_shnum
        b[62..64].copy_from_slice(&2u16.to_le_bytes()); // e_shstrndx
        let info_off = b.len();
        b.extend_from_slice(modinfo);
        let str_off = b.len();
        b.extend_from_slice(strtab);
        while !b.len().is_multiple_of(8) {
            b.push(0);
        }
        let shoff = b.len();
        b[40..48].copy_from_slice(&(shoff as u64).to_le_bytes());
        let sh = |name: u32, ty: u32, flags: u64, off: usize, size: usize| {
            let mut h = vec![0u8; 64];
            h[0..4].copy_from_slice(&name.to_le_bytes());
            h[4..8].copy_from_slice(&ty.to_le_bytes());
            h[8..16].copy_from_slice(&flags.to_le_bytes());
            h[24..32].copy_from_slice(&(off as u64).to_le_bytes());
            h[32..40].copy_from_slice(&(size as u64).to_le_bytes());
            h[48..56].copy_from_slice(&1u64.to_le_bytes());
            h
        };
        b.extend_from_slice(&[0u8; 64]);
        b.extend_from_slice(&sh(1, 1, 2, info_off, modinfo.len()));
        b.extend_from_slice(&sh(10, 3, 0, str_off, strtab.len()));
        b
    }

    fn symbols() -> SymbolTable {
        [
            ("virtio_net", Symbols::One("CONFIG_VIRTIO_NET".into())),
            ("virtio_pci", Symbols::One("CONFIG_VIRTIO_PCI".into())),
            ("unix", Symbols::One("CONFIG_UNIX".into())),
            ("ext4", Symbols::One("CONFIG_EXT4_FS".into())),
            (
                "autofs4",
                Symbols::Any(vec!["CONFIG_AUTOFS_FS".into(), "CONFIG_AUTOFS4_FS".into()]),
            ),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }

    fn config(text: &str) -> KernelConfig {
        KernelConfig::parse(
            text,
            super::super::config::ConfigSource::File("/k/boot/config-6.1.0-test".into()),
        )
        .unwrap()
    }

    #[test]
    fn presence_from_the_kernels_list_then_its_config_then_nothing() {
        let list = Builtins::List {
            file: "modules.builtin",
            names: parse_builtin("kernel/drivers/virtio/virtio_pci.ko\n"),
        };
        assert_eq!(
            list.presence("virtio_pci"),
            Presence::BuiltIn("listed in modules.builtin".into())
        );
        assert!(matches!(list.presence("virtio_net"), Presence::Missing(_)));

        let cfg = Builtins::Config {
            config: config(super::super::config::tests::DEBIAN_61),
            symbols: symbols(),
        };
        assert_eq!(
            cfg.presence("unix"),
            Presence::BuiltIn("CONFIG_UNIX=y in config-6.1.0-test".into())
        );
        assert_eq!(
            cfg.presence("virtio_net"),
            Presence::Missing(
                "CONFIG_VIRTIO_NET=m in config-6.1.0-test, but there is no virtio_net module file"
                    .into()
            )
        );
        // Any of several symbols: AUTOFS4_FS is only the old name of AUTOFS_FS.
        assert!(
            matches!(cfg.presence("autofs4"), Presence::Missing(d) if d.contains("CONFIG_AUTOFS_FS=m"))
        );
        let cfg_y = Builtins::Config {
            config: config("CONFIG_AUTOFS4_FS=y\n# CONFIG_EXT4_FS is not set\n"),
            symbols: symbols(),
        };
        assert!(
            matches!(cfg_y.presence("autofs4"), Presence::BuiltIn(d) if d == "CONFIG_AUTOFS4_FS=y in config-6.1.0-test")
        );
        assert_eq!(
            cfg_y.presence("ext4"),
            Presence::Missing("CONFIG_EXT4_FS is not set in config-6.1.0-test".into())
        );
        // A module the table does not know: the guest finds out.
        assert!(matches!(cfg.presence("sch_netem"), Presence::Unknown(_)));
        assert!(matches!(
            Builtins::Nothing.presence("virtio_net"),
            Presence::Unknown(_)
        ));
    }

    #[test]
    fn builtin_modinfo_names_the_built_in_modules() {
        let data = b"virtio_pci.file=drivers/virtio/virtio_pci\0virtio_pci.license=GPL\0\
ext4.file=fs/ext4/ext4\0ext4.alias=fs-ext4\0crc32c-generic.license=GPL\0junk\0";
        let names = parse_builtin_modinfo(data);
        assert_eq!(
            names.into_iter().collect::<Vec<_>>(),
            ["crc32c_generic", "ext4", "virtio_pci"]
        );
    }

    /// The order of knowledge on a real folder: `modules.builtin` wins over the config (it
    /// is not even read), `modules.builtin.modinfo` stands in for it, the config comes next.
    #[test]
    fn builtins_for_a_kernel_prefer_its_own_list() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        let never = || -> Result<Option<KernelConfig>> { panic!("config read despite a list") };
        fs::write(
            d.join("modules.builtin.modinfo"),
            b"virtio_net.file=drivers/net/virtio_net\0",
        )
        .unwrap();
        let b = Builtins::for_kernel(Some(d), never, &symbols()).unwrap();
        assert!(
            matches!(b.presence("virtio_net"), Presence::BuiltIn(w) if w == "listed in modules.builtin.modinfo")
        );
        fs::write(d.join("modules.builtin"), "kernel/fs/ext4/ext4.ko\n").unwrap();
        let b = Builtins::for_kernel(Some(d), never, &symbols()).unwrap();
        assert!(matches!(b.presence("ext4"), Presence::BuiltIn(_)));
        assert!(matches!(b.presence("virtio_net"), Presence::Missing(_)));
        let b = Builtins::for_kernel(None, || Ok(Some(config("CONFIG_EXT4_FS=y\n"))), &symbols())
            .unwrap();
        assert!(matches!(b.presence("ext4"), Presence::BuiltIn(_)));
        assert_eq!(
            Builtins::for_kernel(None, || Ok(None), &symbols()).unwrap(),
            Builtins::Nothing
        );
    }

    /// A modules folder without `virtio_net` and without `modules.builtin`: the plan loads
    /// what is there, in order, and leaves virtio_net to the guest.
    #[test]
    fn plan_loads_files_and_reports_the_rest() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("lib/modules/6.1.0-test");
        let k = root.join("kernel/drivers");
        fs::create_dir_all(&k).unwrap();
        fs::write(
            k.join("virtio_blk.ko"),
            module_elf(b"license=GPL\0depends=virtio_ring\0"),
        )
        .unwrap();
        let ring = {
            use std::io::Write;
            let mut e = xz2::write::XzEncoder::new(Vec::new(), 1);
            e.write_all(&module_elf(b"depends=\0")).unwrap();
            e.finish().unwrap()
        };
        fs::write(k.join("virtio_ring.ko.xz"), ring).unwrap();
        let plan = plan_modules(
            Some(&root),
            &["virtio-blk", "virtio_net", "virtio_pci"],
            &Builtins::Nothing,
        )
        .unwrap();
        let names: Vec<&str> = plan.load.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, ["virtio_ring", "virtio_blk"]);
        assert_eq!(plan.wanted[0], ("virtio_blk".to_string(), Presence::File));
        assert_eq!(plan.wanted[1].0, "virtio_net");
        assert!(matches!(plan.wanted[1].1, Presence::Unknown(_)));
        // With the config: unix is built in, virtio_net a module that is not here.
        let cfg = Builtins::Config {
            config: config(super::super::config::tests::DEBIAN_61),
            symbols: symbols(),
        };
        let plan = plan_modules(Some(&root), &["virtio_net", "unix"], &cfg).unwrap();
        assert!(matches!(plan.wanted[0].1, Presence::Missing(_)));
        assert!(matches!(plan.wanted[1].1, Presence::BuiltIn(_)));
        assert!(plan.load.is_empty());
        // No modules folder at all (a bzImage with everything built in).
        let plan = plan_modules(None, &["unix"], &cfg).unwrap();
        assert!(matches!(plan.wanted[0].1, Presence::BuiltIn(_)));
        // The strict form used where every module must be there.
        let e = module_load_order(&root, &["virtio_blk", "virtio_net"]).unwrap_err();
        assert!(
            matches!(&e, KernelError::ModulesMissing { names, .. } if names == "virtio_net"),
            "{e}"
        );
    }

    #[test]
    fn modinfo_fields() {
        let f = parse_modinfo(b"license=GPL\0depends=virtio,virtio_ring,net-failover\0softdep=pre: crc32c post: x\0\0vermagic=6.1\0");
        let d = deps_from_modinfo(&f);
        assert_eq!(d.depends, ["virtio", "virtio_ring", "net_failover"]);
        assert_eq!(d.soft_pre, ["crc32c"]);
        assert!(deps_from_modinfo(&parse_modinfo(b"depends=\0"))
            .depends
            .is_empty());
    }
}
