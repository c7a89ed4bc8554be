//! `matrix.toml`: axes, scenarios with parameters, include/exclude rules,
//! expectations and nextest-style profiles. Unknown keys are errors, and
//! every error names the file, line and column.

use super::pattern::Pattern;
use super::{cell_id, PlannedCell};
use crate::report::Expect;
use crate::scenario::Scenario;
use crate::tomlfile::{self, line_col, TomlFileError};
use serde::Deserialize;
use serde_spanned::Spanned;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum MatrixError {
    #[error(transparent)]
    Toml(#[from] TomlFileError),
    #[error("{path}:{line}:{column}: {message}")]
    At {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{path}: {message}")]
    File { path: PathBuf, message: String },
}

/// The file as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MatrixFile {
    #[serde(default)]
    pub debian_mirror: Option<String>,
    #[serde(default)]
    pub profile: BTreeMap<String, ProfileFile>,
    pub axes: Axes,
    #[serde(default, rename = "scenario")]
    pub scenarios: Vec<ScenarioEntry>,
    #[serde(default)]
    pub include: Vec<Rule>,
    #[serde(default)]
    pub exclude: Vec<Rule>,
    #[serde(default)]
    pub expect: Vec<ExpectRule>,
}

/// `[profile.NAME]`: run settings; `inherits` names another profile
/// (default: `default`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProfileFile {
    pub inherits: Option<String>,
    /// Cells in parallel (0 or absent: what cores and memory allow).
    pub jobs: Option<usize>,
    /// Attempts per cell (all are kept; mixed outcomes make it flaky).
    pub repeat: Option<u32>,
    /// Extra attempts when an attempt ends in `error` (infrastructure).
    pub retries: Option<u32>,
    pub accel: Option<String>,
    pub boot_timeout_s: Option<u64>,
    /// Guest memory for every cell (default: each scenario's own).
    pub memory_mib: Option<u32>,
    pub vcpus: Option<u32>,
    /// Results folder.
    pub results: Option<String>,
}

/// `[axes]`: the product the cells come from. Absent kubelet/driver axes
/// leave those out of the cells; an absent cgroup axis uses each
/// scenario's default version.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Axes {
    pub kernels: Vec<Spanned<String>>,
    #[serde(default)]
    pub kubelets: Vec<Spanned<String>>,
    #[serde(default)]
    pub drivers: Vec<Spanned<String>>,
    #[serde(default)]
    pub cgroups: Vec<Spanned<String>>,
    /// Root filesystems (`images/rootfs/<name>.toml`); absent: the
    /// initramfs guest.
    #[serde(default)]
    pub rootfs: Vec<Spanned<String>>,
}

/// `[[scenario]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScenarioEntry {
    pub name: Spanned<String>,
    /// Name used in cell ids when one scenario appears with several
    /// parameter sets.
    pub label: Option<String>,
    #[serde(default)]
    pub params: BTreeMap<String, Spanned<toml::Value>>,
    pub timeout_s: Option<u64>,
    pub repeat: Option<u32>,
    pub memory_mib: Option<u32>,
    pub vcpus: Option<u32>,
    /// Override an axis for this scenario.
    pub kernels: Option<Vec<String>>,
    pub kubelets: Option<Vec<String>>,
    pub drivers: Option<Vec<String>>,
    pub cgroups: Option<Vec<String>>,
    pub rootfs: Option<Vec<String>>,
}

/// `[[include]]`/`[[exclude]]`: patterns over axis values; a rule matches
/// a cell when every field it names matches.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    pub scenario: Option<Spanned<String>>,
    pub kernel: Option<Spanned<String>>,
    pub kubelet: Option<Spanned<String>>,
    pub driver: Option<Spanned<String>>,
    pub cgroup: Option<Spanned<String>>,
    pub rootfs: Option<Spanned<String>>,
}

/// `[[expect]]`: like a rule, plus the expected outcome. The last
/// matching rule wins; cells no rule matches expect `not-reproduced`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpectRule {
    pub scenario: Option<Spanned<String>>,
    pub kernel: Option<Spanned<String>>,
    pub kubelet: Option<Spanned<String>>,
    pub driver: Option<Spanned<String>>,
    pub cgroup: Option<Spanned<String>>,
    pub rootfs: Option<Spanned<String>>,
    pub expect: Spanned<String>,
}

/// Resolved run settings.
#[derive(Debug, Clone, PartialEq)]
pub struct Profile {
    pub name: String,
    pub jobs: Option<usize>,
    pub repeat: u32,
    pub retries: u32,
    pub accel: String,
    pub boot_timeout_s: u64,
    pub memory_mib: Option<u32>,
    pub vcpus: Option<u32>,
    pub results: Option<String>,
}

impl Default for Profile {
    fn default() -> Profile {
        Profile {
            name: "default".into(),
            jobs: None,
            repeat: 1,
            retries: 1,
            accel: "auto".into(),
            boot_timeout_s: 180,
            memory_mib: None,
            vcpus: None,
            results: None,
        }
    }
}

/// A checked matrix: the file plus where it came from.
#[derive(Debug, Clone)]
pub struct Matrix {
    pub path: PathBuf,
    text: String,
    pub file: MatrixFile,
}

/// Reads and parses a matrix file.
pub fn load_matrix(path: &Path) -> Result<Matrix, MatrixError> {
    let text = std::fs::read_to_string(path).map_err(|e| MatrixError::File {
        path: path.to_path_buf(),
        message: format!("cannot read: {e}"),
    })?;
    parse_matrix(path, &text)
}

/// Parses matrix text (`path` names it in errors).
pub fn parse_matrix(path: &Path, text: &str) -> Result<Matrix, MatrixError> {
    let file: MatrixFile = tomlfile::parse(path, text)?;
    let m = Matrix {
        path: path.to_path_buf(),
        text: text.to_string(),
        file,
    };
    m.check_patterns()?;
    Ok(m)
}

/// The pattern fields a rule names, in `CompiledRule` order: scenario,
/// kernel, kubelet, driver, cgroup, rootfs.
trait RuleFields {
    fn fields(&self) -> [&Option<Spanned<String>>; 6];
}

impl RuleFields for Rule {
    fn fields(&self) -> [&Option<Spanned<String>>; 6] {
        [
            &self.scenario,
            &self.kernel,
            &self.kubelet,
            &self.driver,
            &self.cgroup,
            &self.rootfs,
        ]
    }
}

impl RuleFields for ExpectRule {
    fn fields(&self) -> [&Option<Spanned<String>>; 6] {
        [
            &self.scenario,
            &self.kernel,
            &self.kubelet,
            &self.driver,
            &self.cgroup,
            &self.rootfs,
        ]
    }
}

struct CompiledRule {
    scenario: Option<Pattern>,
    kernel: Option<Pattern>,
    kubelet: Option<Pattern>,
    driver: Option<Pattern>,
    cgroup: Option<Pattern>,
    rootfs: Option<Pattern>,
}

impl CompiledRule {
    fn matches_scenario(&self, label: &str, name: &str) -> bool {
        let opt = |p: &Option<Pattern>, v: Option<&str>| match (p, v) {
            (None, _) => true,
            (Some(p), Some(v)) => p.matches(v),
            (Some(_), None) => false,
        };
        opt(&self.scenario, Some(label)) || opt(&self.scenario, Some(name))
    }
}

impl Matrix {
    fn at(&self, span: std::ops::Range<usize>, message: String) -> MatrixError {
        let (line, column) = line_col(&self.text, span.start);
        MatrixError::At {
            path: self.path.clone(),
            line,
            column,
            message,
        }
    }

    fn pattern(&self, s: &Option<Spanned<String>>) -> Result<Option<Pattern>, MatrixError> {
        match s {
            None => Ok(None),
            Some(sp) => Pattern::parse(sp.get_ref())
                .map(Some)
                .map_err(|e| self.at(sp.span(), e)),
        }
    }

    fn compile(&self, r: &impl RuleFields) -> Result<CompiledRule, MatrixError> {
        let [scenario, kernel, kubelet, driver, cgroup, rootfs] = r.fields();
        Ok(CompiledRule {
            scenario: self.pattern(scenario)?,
            kernel: self.pattern(kernel)?,
            kubelet: self.pattern(kubelet)?,
            driver: self.pattern(driver)?,
            cgroup: self.pattern(cgroup)?,
            rootfs: self.pattern(rootfs)?,
        })
    }

    fn check_patterns(&self) -> Result<(), MatrixError> {
        for r in self.file.include.iter().chain(&self.file.exclude) {
            self.compile(r)?;
        }
        for r in &self.file.expect {
            self.compile(r)?;
            parse_expect(r.expect.get_ref()).map_err(|e| self.at(r.expect.span(), e))?;
        }
        for c in &self.file.axes.cgroups {
            if !["v1", "v2"].contains(&c.get_ref().as_str()) {
                return Err(self.at(
                    c.span(),
                    format!("cgroup version `{}`: use v1 or v2", c.get_ref()),
                ));
            }
        }
        Ok(())
    }

    /// The profile `name` with its inheritance chain applied.
    pub fn profile(&self, name: &str) -> Result<Profile, MatrixError> {
        let mut chain: Vec<(&str, &ProfileFile)> = Vec::new();
        let mut cur = Some(name.to_string());
        let mut seen = BTreeSet::new();
        while let Some(n) = cur {
            if !seen.insert(n.clone()) {
                return Err(MatrixError::File {
                    path: self.path.clone(),
                    message: format!("profile `{n}` inherits from itself"),
                });
            }
            match self.file.profile.get_key_value(&n) {
                Some((k, p)) => {
                    chain.push((k.as_str(), p));
                    cur = p
                        .inherits
                        .clone()
                        .or_else(|| (n != "default").then(|| "default".to_string()));
                }
                None if n == "default" => cur = None,
                None => {
                    let known: Vec<&str> = self.file.profile.keys().map(String::as_str).collect();
                    return Err(MatrixError::File {
                        path: self.path.clone(),
                        message: format!(
                            "no profile `{n}`; profiles: default{}{}",
                            if known.is_empty() { "" } else { ", " },
                            known.join(", ")
                        ),
                    });
                }
            }
        }
        let mut p = Profile {
            name: name.to_string(),
            ..Profile::default()
        };
        for (_, f) in chain.iter().rev() {
            if let Some(v) = f.jobs {
                p.jobs = (v > 0).then_some(v);
            }
            if let Some(v) = f.repeat {
                p.repeat = v.max(1);
            }
            if let Some(v) = f.retries {
                p.retries = v;
            }
            if let Some(v) = &f.accel {
                p.accel = v.clone();
            }
            if let Some(v) = f.boot_timeout_s {
                p.boot_timeout_s = v;
            }
            if f.memory_mib.is_some() {
                p.memory_mib = f.memory_mib;
            }
            if f.vcpus.is_some() {
                p.vcpus = f.vcpus;
            }
            if f.results.is_some() {
                p.results = f.results.clone();
            }
        }
        Ok(p)
    }

    /// Expands the matrix into cells. `scenarios` maps names to loaded
    /// scenario folders (for defaults and parameter checks).
    pub fn cells(
        &self,
        scenarios: &BTreeMap<String, Scenario>,
    ) -> Result<Vec<PlannedCell>, MatrixError> {
        let axes = &self.file.axes;
        let plain = |v: &[Spanned<String>]| -> Vec<String> {
            v.iter().map(|s| s.get_ref().clone()).collect()
        };
        let excludes: Vec<CompiledRule> = self
            .file
            .exclude
            .iter()
            .map(|r| self.compile(r))
            .collect::<Result<_, _>>()?;
        let includes: Vec<(&Rule, CompiledRule)> = self
            .file
            .include
            .iter()
            .map(|r| Ok((r, self.compile(r)?)))
            .collect::<Result<_, MatrixError>>()?;
        let expects: Vec<(CompiledRule, Expect)> = self
            .file
            .expect
            .iter()
            .map(|r| {
                Ok((
                    self.compile(r)?,
                    parse_expect(r.expect.get_ref()).map_err(|e| self.at(r.expect.span(), e))?,
                ))
            })
            .collect::<Result<_, MatrixError>>()?;

        let mut out: Vec<PlannedCell> = Vec::new();
        let mut ids = BTreeSet::new();
        for entry in &self.file.scenarios {
            let name = entry.name.get_ref();
            let sc = scenarios.get(name).ok_or_else(|| {
                let known: Vec<&str> = scenarios.keys().map(String::as_str).collect();
                self.at(
                    entry.name.span(),
                    format!("unknown scenario `{name}`; known: {}", known.join(", ")),
                )
            })?;
            let label = entry.label.clone().unwrap_or_else(|| name.clone());
            let mut params = BTreeMap::new();
            for (k, v) in &entry.params {
                if !sc.manifest.params.contains_key(k) {
                    let known: Vec<&str> = sc.manifest.params.keys().map(String::as_str).collect();
                    return Err(self.at(
                        v.span(),
                        format!(
                            "scenario `{name}` has no parameter `{k}`; its parameters: {}",
                            known.join(", ")
                        ),
                    ));
                }
                let s = match v.get_ref() {
                    toml::Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                params.insert(k.clone(), s);
            }
            let params = crate::scenario::resolve_params(
                &sc.manifest,
                &params.into_iter().collect::<Vec<_>>(),
            )
            .map_err(|e| self.at(entry.name.span(), e.to_string()))?;
            let kernels = entry
                .kernels
                .clone()
                .unwrap_or_else(|| plain(&axes.kernels));
            let kubelets = opt_axis(
                entry
                    .kubelets
                    .clone()
                    .unwrap_or_else(|| plain(&axes.kubelets)),
            );
            let drivers = opt_axis(
                entry
                    .drivers
                    .clone()
                    .unwrap_or_else(|| plain(&axes.drivers)),
            );
            let rootfses = opt_axis(entry.rootfs.clone().unwrap_or_else(|| plain(&axes.rootfs)));
            let cgroups = entry
                .cgroups
                .clone()
                .unwrap_or_else(|| plain(&axes.cgroups));
            let cgroups = if cgroups.is_empty() {
                vec![sc.cgroup(None)]
            } else {
                cgroups
            };
            let mut candidates = Vec::new();
            for k in &kernels {
                for r in &rootfses {
                    for kl in &kubelets {
                        for d in &drivers {
                            for c in &cgroups {
                                candidates.push((
                                    k.clone(),
                                    r.clone(),
                                    kl.clone(),
                                    d.clone(),
                                    c.clone(),
                                    false,
                                ));
                            }
                        }
                    }
                }
            }
            // Includes add cells with the given values (absent fields: the
            // first value of the axis).
            for (r, _) in &includes {
                let scen_ok = r.scenario.as_ref().is_none_or(|p| {
                    Pattern::parse(p.get_ref()).is_ok_and(|p| p.matches(&label) || p.matches(name))
                });
                if !scen_ok {
                    continue;
                }
                let val =
                    |f: &Option<Spanned<String>>, axis: &[Option<String>]| -> Option<String> {
                        f.as_ref()
                            .map(|s| s.get_ref().clone())
                            .or_else(|| axis.first().cloned().flatten())
                    };
                let kernel = r
                    .kernel
                    .as_ref()
                    .map(|s| s.get_ref().clone())
                    .or_else(|| kernels.first().cloned())
                    .unwrap_or_default();
                let cgroup = r
                    .cgroup
                    .as_ref()
                    .map(|s| s.get_ref().clone())
                    .or_else(|| cgroups.first().cloned())
                    .unwrap_or_else(|| "v1".into());
                candidates.push((
                    kernel,
                    val(&r.rootfs, &rootfses),
                    val(&r.kubelet, &kubelets),
                    val(&r.driver, &drivers),
                    cgroup,
                    true,
                ));
            }
            for (kernel, rootfs, kubelet, driver, cgroup, included) in candidates {
                let mut cell = PlannedCell {
                    id: cell_id(
                        &label,
                        &kernel,
                        rootfs.as_deref(),
                        kubelet.as_deref(),
                        driver.as_deref(),
                        &cgroup,
                    ),
                    scenario: name.clone(),
                    kernel,
                    rootfs,
                    kubelet,
                    driver,
                    cgroup,
                    params: params.clone(),
                    expect: Expect::NotReproduced,
                    repeat: entry.repeat.unwrap_or(1).max(1),
                    timeout_s: entry.timeout_s,
                    memory_mib: entry.memory_mib,
                    vcpus: entry.vcpus,
                };
                if !included
                    && excludes
                        .iter()
                        .any(|r| rule_matches(r, &label, name, &cell))
                {
                    continue;
                }
                if !ids.insert(cell.id.clone()) {
                    continue;
                }
                for (r, e) in &expects {
                    if rule_matches(r, &label, name, &cell) {
                        cell.expect = *e;
                    }
                }
                out.push(cell);
            }
        }
        Ok(out)
    }
}

fn opt_axis(v: Vec<String>) -> Vec<Option<String>> {
    if v.is_empty() {
        vec![None]
    } else {
        v.into_iter().map(Some).collect()
    }
}

fn rule_matches(r: &CompiledRule, label: &str, name: &str, c: &PlannedCell) -> bool {
    let opt = |p: &Option<Pattern>, v: Option<&str>| match (p, v) {
        (None, _) => true,
        (Some(p), Some(v)) => p.matches(v),
        (Some(_), None) => false,
    };
    r.matches_scenario(label, name)
        && opt(&r.kernel, Some(&c.kernel))
        && opt(&r.kubelet, c.kubelet.as_deref())
        && opt(&r.driver, c.driver.as_deref())
        && opt(&r.cgroup, Some(&c.cgroup))
        && opt(&r.rootfs, c.rootfs.as_deref())
}

/// An expectation value.
pub fn parse_expect(s: &str) -> Result<Expect, String> {
    Ok(match s {
        "reproduced" => Expect::Reproduced,
        "not-reproduced" => Expect::NotReproduced,
        "skipped" => Expect::Skipped,
        "crashed" => Expect::Crashed,
        "timeout" => Expect::Timeout,
        "any" => Expect::Any,
        other => {
            return Err(format!(
                "unknown expectation `{other}`; use reproduced, not-reproduced, skipped, crashed, timeout or any"
            ))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    const SCEN: &str = r#"
name = "NAME"
summary = "s"
entry = "run.sh"
timeout_s = 60
memory_mib = 512
cgroup = ["v1", "v2"]
[seed]
file = "004"
section = "2"
[params.limit]
default = ""
description = "d"
"#;

    fn scenarios(names: &[&str]) -> (tempfile::TempDir, BTreeMap<String, Scenario>) {
        let tmp = tempfile::tempdir().unwrap();
        let mut map = BTreeMap::new();
        for n in names {
            let d = tmp.path().join(n);
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(d.join("scenario.toml"), SCEN.replace("NAME", n)).unwrap();
            std::fs::write(d.join("run.sh"), "").unwrap();
            map.insert(n.to_string(), Scenario::load(&d).unwrap());
        }
        (tmp, map)
    }

    const MATRIX: &str = r#"
[profile.default]
jobs = 2
retries = 2

[profile.ci]
repeat = 3

[profile.nightly]
inherits = "ci"
jobs = 0

[axes]
kernels = ["3.10", "5.10", "6.1"]
kubelets = ["1.6", "1.9", "1.27"]
cgroups = ["v1"]

[[scenario]]
name = "kmem-leak"
params = { limit = 100 }

[[scenario]]
name = "memcg-fill"
kubelets = []
cgroups = ["v1", "v2"]

[[exclude]]
scenario = "memcg-fill"
kernel = "3.10"
cgroup = "v2"

[[include]]
scenario = "memcg-fill"
kernel = "6.12"
cgroup = "v2"

[[expect]]
scenario = "kmem-leak"
kernel = "3.10*"
kubelet = ">=1.8,<1.22"
expect = "reproduced"

[[expect]]
scenario = "memcg-fill"
expect = "reproduced"

[[expect]]
scenario = "memcg-fill"
kernel = "6.12"
expect = "any"
"#;

    fn matrix(text: &str) -> Result<Matrix, MatrixError> {
        parse_matrix(Path::new("matrix.toml"), text)
    }

    #[test]
    fn expands_axes_with_include_exclude_and_expectations() {
        let (_t, sc) = scenarios(&["kmem-leak", "memcg-fill"]);
        let cells = matrix(MATRIX).unwrap().cells(&sc).unwrap();
        let ids: Vec<&str> = cells.iter().map(|c| c.id.as_str()).collect();
        // 3 kernels × 3 kubelets for kmem-leak; memcg-fill: 3 kernels × 2 cgroups − 1 excluded + 1 included.
        assert_eq!(cells.len(), 9 + 6 - 1 + 1, "{ids:#?}");
        assert!(ids.contains(&"kmem-leak/kernel=3.10/kubelet=1.9/cgroup=v1"));
        assert!(!ids.contains(&"memcg-fill/kernel=3.10/cgroup=v2"));
        assert!(ids.contains(&"memcg-fill/kernel=6.12/cgroup=v2"));
        let get = |id: &str| cells.iter().find(|c| c.id == id).unwrap();
        assert_eq!(
            get("kmem-leak/kernel=3.10/kubelet=1.9/cgroup=v1").expect,
            Expect::Reproduced
        );
        assert_eq!(
            get("kmem-leak/kernel=3.10/kubelet=1.6/cgroup=v1").expect,
            Expect::NotReproduced
        );
        assert_eq!(
            get("kmem-leak/kernel=6.1/kubelet=1.9/cgroup=v1").expect,
            Expect::NotReproduced
        );
        assert_eq!(
            get("memcg-fill/kernel=6.1/cgroup=v1").expect,
            Expect::Reproduced
        );
        assert_eq!(
            get("memcg-fill/kernel=6.12/cgroup=v2").expect,
            Expect::Any,
            "last rule wins"
        );
        assert_eq!(
            get("kmem-leak/kernel=6.1/kubelet=1.9/cgroup=v1").params["limit"],
            "100"
        );
    }

    #[test]
    fn a_rootfs_axis_multiplies_only_its_scenario_and_rules_can_name_it() {
        let (_t, sc) = scenarios(&["kmem-leak", "memcg-fill"]);
        let text = r#"
[axes]
kernels = ["6.1"]

[[scenario]]
name = "memcg-fill"

[[scenario]]
name = "kmem-leak"
rootfs = ["bullseye", "bookworm"]
drivers = ["systemd", "cgroupfs"]

[[exclude]]
scenario = "kmem-leak"
rootfs = "bookworm"
driver = "cgroupfs"

[[expect]]
scenario = "kmem-leak"
rootfs = "bullseye"
driver = "systemd"
expect = "reproduced"
"#;
        let cells = matrix(text).unwrap().cells(&sc).unwrap();
        let ids: Vec<&str> = cells.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "memcg-fill/kernel=6.1/cgroup=v1",
                "kmem-leak/kernel=6.1/rootfs=bullseye/driver=systemd/cgroup=v1",
                "kmem-leak/kernel=6.1/rootfs=bullseye/driver=cgroupfs/cgroup=v1",
                "kmem-leak/kernel=6.1/rootfs=bookworm/driver=systemd/cgroup=v1",
            ]
        );
        assert_eq!(cells[0].rootfs, None);
        assert_eq!(cells[1].rootfs.as_deref(), Some("bullseye"));
        assert_eq!(cells[1].expect, Expect::Reproduced);
        assert_eq!(cells[2].expect, Expect::NotReproduced);
        let f: crate::plan::Filter = "rootfs=bull*".parse().unwrap();
        assert_eq!(cells.iter().filter(|c| f.matches(c)).count(), 2);
    }

    #[test]
    fn profiles_inherit() {
        let m = matrix(MATRIX).unwrap();
        let d = m.profile("default").unwrap();
        assert_eq!((d.jobs, d.repeat, d.retries), (Some(2), 1, 2));
        let n = m.profile("nightly").unwrap();
        assert_eq!((n.jobs, n.repeat, n.retries), (None, 3, 2));
        let e = m.profile("nope").unwrap_err().to_string();
        assert!(
            e.contains("no profile `nope`") && e.contains("nightly"),
            "{e}"
        );
    }

    #[rstest]
    #[case("[axes]\nkernels = [\"6.1\"]\nbogus = 1\n", "matrix.toml:3:1", "bogus")]
    #[case(
        "[axes]\nkernels = [\"6.1\"]\n[[expect]]\nexpect = \"reprodued\"\n",
        "matrix.toml:4:10",
        "reprodued"
    )]
    #[case(
        "[axes]\nkernels = [\"6.1\"]\n[[exclude]]\nkubelet = \">=x\"\n",
        "matrix.toml:4:11",
        ">=x"
    )]
    #[case(
        "[axes]\nkernels = [\"6.1\"]\ncgroups = [\"v3\"]\n",
        "matrix.toml:3:12",
        "v3"
    )]
    fn errors_point_at_line_and_column(#[case] text: &str, #[case] at: &str, #[case] names: &str) {
        let e = matrix(text).unwrap_err().to_string();
        assert!(e.starts_with(at), "{e}");
        assert!(e.contains(names), "{e}");
    }

    #[test]
    fn unknown_scenario_and_param_point_at_their_place() {
        let (_t, sc) = scenarios(&["memcg-fill"]);
        let m =
            matrix("[axes]\nkernels = [\"6.1\"]\n[[scenario]]\nname = \"memcg-fil\"\n").unwrap();
        let e = m.cells(&sc).unwrap_err().to_string();
        assert!(
            e.starts_with("matrix.toml:4:8") && e.contains("memcg-fill"),
            "{e}"
        );
        let m = matrix("[axes]\nkernels = [\"6.1\"]\n[[scenario]]\nname = \"memcg-fill\"\nparams = { limt = 1 }\n").unwrap();
        let e = m.cells(&sc).unwrap_err().to_string();
        assert!(e.starts_with("matrix.toml:5:") && e.contains("limt"), "{e}");
    }
}
