//! Kernel modules: finding module files, reading `.modinfo` dependencies, and the order in
//! which `/init` loads them (dependencies first; Debian ships no `modules.dep`).

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

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

/// The load order of `wanted` and everything they depend on (dependencies first, each once).
/// `lookup(name)` gives a module's dependencies, or `None` when there is no such module file.
/// Built-in modules are skipped silently; wanted modules that are neither found nor built in
/// are reported together; a missing hard dependency is an error, a missing soft one is not.
pub fn order_modules(
    wanted: &[&str],
    builtin: &BTreeSet<String>,
    root: &Path,
    lookup: &mut dyn FnMut(&str) -> Result<Option<ModuleDeps>>,
) -> Result<Vec<String>> {
    #[derive(PartialEq)]
    enum State {
        Visiting,
        Done,
    }
    struct Walk<'a> {
        builtin: &'a BTreeSet<String>,
        root: &'a Path,
        lookup: &'a mut dyn FnMut(&str) -> Result<Option<ModuleDeps>>,
        state: BTreeMap<String, State>,
        stack: Vec<String>,
        order: Vec<String>,
    }
    impl Walk<'_> {
        /// Ok(false) when the module does not exist (and is not built in).
        fn visit(&mut self, name: &str) -> Result<bool> {
            if self.builtin.contains(name) {
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
    if !missing.is_empty() {
        return Err(KernelError::ModulesMissing {
            root: root.to_path_buf(),
            names: missing.join(", "),
        });
    }
    Ok(w.order)
}

/// The modules to load (in order) for `wanted`, from a `lib/modules/<release>` folder,
/// using each module's `.modinfo` (`depends=`, `softdep=pre:`): Debian ships no
/// `modules.dep`.
pub fn module_load_order(modules_root: &Path, wanted: &[&str]) -> Result<Vec<ModuleFile>> {
    let files = index_modules(modules_root)?;
    let builtin = read_builtin(modules_root);
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
    let order = order_modules(wanted, &builtin, modules_root, &mut lookup)?;
    Ok(order
        .into_iter()
        .map(|n| ModuleFile {
            path: files[&n].clone(),
            name: n,
        })
        .collect())
}

#[cfg(test)]
mod tests {
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
        order_modules(wanted, &b, Path::new("/m"), &mut |n| Ok(g.get(n).cloned()))
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
