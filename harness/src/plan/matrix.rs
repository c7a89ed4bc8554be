//! `matrix.toml`: axes, scenarios with parameters, include/exclude rules,
//! expectations and nextest-style profiles. Unknown keys are errors, and
//! every error names the file, line and column.

use super::expand::{expand, AxisValues, Entry, Expectation, Include, Rules, Selector};
use super::pattern::Pattern;
use super::profile::{Profile, ProfileFile};
use super::PlannedCell;
use crate::model::limits::{MAX_MEMORY_MIB, MAX_TIMEOUT_S, MAX_VCPUS, MIN_MEMORY_MIB};
use crate::model::{AccelChoice, CgroupVersion, Driver, Expect, Field, RateExpect, RuleSource};
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

/// What a matrix file sets for the whole run, outside its profiles; the
/// `settings` module ranks it below flags and the profile.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FileSettings {
    pub debian_mirror: Option<String>,
    pub log_cap: Option<u64>,
    pub out_cap: Option<u64>,
    pub stall_s: Option<u64>,
}

/// The file as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MatrixFile {
    #[serde(default)]
    pub debian_mirror: Option<String>,
    /// Run-wide bounds for every profile (a profile may override them).
    #[serde(default)]
    pub log_cap: Option<Spanned<String>>,
    #[serde(default)]
    pub out_cap: Option<Spanned<String>>,
    #[serde(
        default,
        deserialize_with = "tomlfile::within_opt::<_, _, 0, MAX_TIMEOUT_S>"
    )]
    pub stall_s: Option<u64>,
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
    #[serde(
        default,
        deserialize_with = "tomlfile::within_opt::<_, _, 1, MAX_TIMEOUT_S>"
    )]
    pub timeout_s: Option<u64>,
    pub repeat: Option<u32>,
    #[serde(
        default,
        deserialize_with = "tomlfile::within_opt::<_, _, MIN_MEMORY_MIB, MAX_MEMORY_MIB>"
    )]
    pub memory_mib: Option<u32>,
    #[serde(
        default,
        deserialize_with = "tomlfile::within_opt::<_, _, 1, MAX_VCPUS>"
    )]
    pub vcpus: Option<u32>,
    /// Override an axis for this scenario.
    pub kernels: Option<Vec<Spanned<String>>>,
    pub kubelets: Option<Vec<Spanned<String>>>,
    pub drivers: Option<Vec<Spanned<String>>>,
    pub cgroups: Option<Vec<Spanned<String>>>,
    pub rootfs: Option<Vec<Spanned<String>>>,
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

/// `[[expect]]`: like a rule, plus the expected outcome (`"reproduced"`)
/// or rate (`{ reproduced = ">= 0.8" }`), and its provenance: `reason`,
/// `url`, `fixed_by` (commit or package version) and `until` (a kernel
/// version range from which the rule no longer applies). The last
/// matching rule that applies wins; cells no rule matches expect
/// `not-reproduced`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpectRule {
    pub scenario: Option<Spanned<String>>,
    pub kernel: Option<Spanned<String>>,
    pub kubelet: Option<Spanned<String>>,
    pub driver: Option<Spanned<String>>,
    pub cgroup: Option<Spanned<String>>,
    pub rootfs: Option<Spanned<String>>,
    pub expect: Spanned<toml::Value>,
    pub reason: Option<String>,
    pub url: Option<String>,
    pub fixed_by: Option<String>,
    pub until: Option<Spanned<String>>,
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
    parse_matrix(path, &tomlfile::read(path)?)
}

/// Parses matrix text (`path` names it in errors).
pub fn parse_matrix(path: &Path, text: &str) -> Result<Matrix, MatrixError> {
    let file: MatrixFile = tomlfile::parse(path, text)?;
    let m = Matrix {
        path: path.to_path_buf(),
        text: text.to_string(),
        file,
    };
    m.check()?;
    Ok(m)
}

/// The pattern fields a rule names, in [`Field::ALL`] order.
trait RuleFields {
    fn fields(&self) -> [&Option<Spanned<String>>; 6];
}

impl RuleFields for Rule {
    fn fields(&self) -> [&Option<Spanned<String>>; 6] {
        [
            &self.scenario,
            &self.kernel,
            &self.rootfs,
            &self.kubelet,
            &self.driver,
            &self.cgroup,
        ]
    }
}

impl RuleFields for ExpectRule {
    fn fields(&self) -> [&Option<Spanned<String>>; 6] {
        [
            &self.scenario,
            &self.kernel,
            &self.rootfs,
            &self.kubelet,
            &self.driver,
            &self.cgroup,
        ]
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

    /// A typed value (axis, accelerator) or an error at its place.
    fn typed<T: std::str::FromStr>(&self, s: &Spanned<String>) -> Result<T, MatrixError>
    where
        T::Err: std::fmt::Display,
    {
        s.get_ref()
            .parse()
            .map_err(|e: T::Err| self.at(s.span(), e.to_string()))
    }

    fn typed_all<T: std::str::FromStr>(&self, v: &[Spanned<String>]) -> Result<Vec<T>, MatrixError>
    where
        T::Err: std::fmt::Display,
    {
        v.iter().map(|s| self.typed(s)).collect()
    }

    fn selector(&self, r: &impl RuleFields) -> Result<Selector, MatrixError> {
        let mut fields = Vec::new();
        for (field, value) in Field::ALL.into_iter().zip(r.fields()) {
            if let Some(sp) = value {
                fields.push((field, self.typed::<Pattern>(sp)?));
            }
        }
        Ok(Selector { fields })
    }

    fn include(&self, r: &Rule) -> Result<Include, MatrixError> {
        let plain = |v: &Option<Spanned<String>>| v.as_ref().map(|s| s.get_ref().clone());
        Ok(Include {
            scenario: r.scenario.as_ref().map(|p| self.typed(p)).transpose()?,
            kernel: plain(&r.kernel),
            rootfs: plain(&r.rootfs),
            kubelet: plain(&r.kubelet),
            driver: r.driver.as_ref().map(|d| self.typed(d)).transpose()?,
            cgroup: r.cgroup.as_ref().map(|c| self.typed(c)).transpose()?,
        })
    }

    /// An `[[expect]]` rule compiled, its source named by the line of its
    /// `expect` value.
    fn expectation(&self, r: &ExpectRule) -> Result<Expectation, MatrixError> {
        let span = r.expect.span();
        let expect = match r.expect.get_ref() {
            toml::Value::String(s) => parse_expect(s),
            toml::Value::Table(t) if t.len() == 1 => {
                let (k, v) = t.iter().next().map(|(k, v)| (k.as_str(), v)).unzip();
                match v {
                    Some(toml::Value::String(c)) => {
                        RateExpect::parse(k.unwrap_or_default(), c).map(Expect::Rate)
                    }
                    _ => Err(format!(
                        "a rate is a string such as \">= 0.8\": write expect = {{ {} = \">= 0.8\" }}",
                        k.unwrap_or_default()
                    )),
                }
            }
            _ => Err(
                "expect is an outcome (\"reproduced\") or one rate ({ reproduced = \">= 0.8\" })"
                    .into(),
            ),
        }
        .map_err(|e| self.at(span.clone(), e))?;
        let until = r
            .until
            .as_ref()
            .map(|u| match self.typed::<Pattern>(u)? {
                p @ Pattern::Range(_) => Ok(p),
                Pattern::Glob(_) => Err(self.at(
                    u.span(),
                    format!(
                        "until `{}` is not a version range: write one such as \">=6.7\"",
                        u.get_ref()
                    ),
                )),
            })
            .transpose()?;
        let (line, _) = line_col(&self.text, span.start);
        Ok(Expectation {
            selector: self.selector(r)?,
            expect,
            until,
            source: RuleSource {
                at: format!("{}:{line}", self.path.display()),
                reason: r.reason.clone(),
                url: r.url.clone(),
                fixed_by: r.fixed_by.clone(),
                until: r.until.as_ref().map(|u| u.get_ref().clone()),
            },
        })
    }

    /// The include/exclude/expect rules, compiled and checked.
    fn rules(&self) -> Result<Rules, MatrixError> {
        Ok(Rules {
            include: self
                .file
                .include
                .iter()
                .map(|r| self.include(r))
                .collect::<Result<_, _>>()?,
            exclude: self
                .file
                .exclude
                .iter()
                .map(|r| self.selector(r))
                .collect::<Result<_, _>>()?,
            expect: self
                .file
                .expect
                .iter()
                .map(|r| self.expectation(r))
                .collect::<Result<_, MatrixError>>()?,
            default_expect: Expect::NotReproduced,
        })
    }

    fn check(&self) -> Result<(), MatrixError> {
        self.rules()?;
        let axes = &self.file.axes;
        self.typed_all::<CgroupVersion>(&axes.cgroups)?;
        self.typed_all::<Driver>(&axes.drivers)?;
        for e in &self.file.scenarios {
            self.typed_all::<CgroupVersion>(e.cgroups.as_deref().unwrap_or_default())?;
            self.typed_all::<Driver>(e.drivers.as_deref().unwrap_or_default())?;
        }
        for p in self.file.profile.values() {
            if let Some(a) = &p.accel {
                self.typed::<AccelChoice>(a)?;
            }
            self.size(&p.log_cap)?;
            self.size(&p.out_cap)?;
        }
        self.size(&self.file.log_cap)?;
        self.size(&self.file.out_cap)?;
        Ok(())
    }

    /// A cap such as `16M` (at least 1k), or an error at its place.
    fn size(&self, v: &Option<Spanned<String>>) -> Result<Option<u64>, MatrixError> {
        let Some(s) = v else { return Ok(None) };
        match crate::scenario::parse_size(s.get_ref()) {
            Some(n) if n >= 1024 => Ok(Some(n)),
            _ => Err(self.at(
                s.span(),
                format!(
                    "cap `{}`: use a size of at least 1k, such as `16M` (k, M, G: binary units)",
                    s.get_ref()
                ),
            )),
        }
    }

    /// The profile `name` with its inheritance chain applied.
    /// Errors about a name that came from an `inherits` point at it.
    pub fn profile(&self, name: &str) -> Result<Profile, MatrixError> {
        let mut chain: Vec<&ProfileFile> = Vec::new();
        let mut cur = Some(name.to_string());
        // The `inherits` value that named `cur`, if a file did.
        let mut named_at: Option<std::ops::Range<usize>> = None;
        let mut seen = BTreeSet::new();
        let err = |at: &Option<std::ops::Range<usize>>, message: String| match at {
            Some(span) => self.at(span.clone(), message),
            None => MatrixError::File {
                path: self.path.clone(),
                message,
            },
        };
        while let Some(n) = cur {
            if !seen.insert(n.clone()) {
                return Err(err(
                    &named_at,
                    format!("profile `{n}` inherits from itself"),
                ));
            }
            match self.file.profile.get(&n) {
                Some(p) => {
                    chain.push(p);
                    named_at = p.inherits.as_ref().map(Spanned::span);
                    cur = p
                        .inherits
                        .as_ref()
                        .map(|i| i.get_ref().clone())
                        .or_else(|| (n != "default").then(|| "default".to_string()));
                }
                None if n == "default" => cur = None,
                None => {
                    let known: Vec<&str> = self.file.profile.keys().map(String::as_str).collect();
                    return Err(err(
                        &named_at,
                        format!(
                            "no profile `{n}`; profiles: default{}{}",
                            if known.is_empty() { "" } else { ", " },
                            known.join(", ")
                        ),
                    ));
                }
            }
        }
        Ok(Profile::resolve(name, &chain))
    }

    /// The scenario entries with their parameters and axis values.
    fn entries(&self, scenarios: &BTreeMap<String, Scenario>) -> Result<Vec<Entry>, MatrixError> {
        let axes = &self.file.axes;
        let plain = |v: &[Spanned<String>]| -> Vec<String> {
            v.iter().map(|s| s.get_ref().clone()).collect()
        };
        let mut out = Vec::new();
        for entry in &self.file.scenarios {
            let name = entry.name.get_ref();
            let sc = scenarios.get(name).ok_or_else(|| {
                let known: Vec<&str> = scenarios.keys().map(String::as_str).collect();
                self.at(
                    entry.name.span(),
                    format!("unknown scenario `{name}`; known: {}", known.join(", ")),
                )
            })?;
            let mut params = Vec::new();
            for (k, v) in &entry.params {
                let Some(spec) = sc.manifest.params.get(k) else {
                    let known: Vec<&str> = sc.manifest.params.keys().map(String::as_str).collect();
                    return Err(self.at(
                        v.span(),
                        format!(
                            "scenario `{name}` has no parameter `{k}`; its parameters: {}",
                            known.join(", ")
                        ),
                    ));
                };
                let s = match v.get_ref() {
                    toml::Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                // Checked here too, so the error points at the value.
                spec.check(k, &s).map_err(|e| {
                    self.at(v.span(), format!("{e} ({})", sc.manifest_path().display()))
                })?;
                params.push((k.clone(), s));
            }
            let params = sc
                .params(&params)
                .map_err(|e| self.at(entry.name.span(), e.to_string()))?;
            let or_axis = |own: &Option<Vec<Spanned<String>>>, axis: &[Spanned<String>]| {
                own.clone().unwrap_or_else(|| axis.to_vec())
            };
            out.push(Entry {
                scenario: sc.clone(),
                label: entry.label.clone().unwrap_or_else(|| name.clone()),
                params,
                axes: AxisValues {
                    kernels: plain(&or_axis(&entry.kernels, &axes.kernels)),
                    rootfs: AxisValues::optional(&plain(&or_axis(&entry.rootfs, &axes.rootfs))),
                    kubelets: AxisValues::optional(&plain(&or_axis(
                        &entry.kubelets,
                        &axes.kubelets,
                    ))),
                    drivers: AxisValues::optional(
                        &self.typed_all::<Driver>(&or_axis(&entry.drivers, &axes.drivers))?,
                    ),
                    cgroups: self.typed_all(&or_axis(&entry.cgroups, &axes.cgroups))?,
                },
                repeat: entry.repeat.unwrap_or(1),
                timeout_s: entry.timeout_s,
                memory_mib: entry.memory_mib,
                vcpus: entry.vcpus,
            });
        }
        Ok(out)
    }

    /// Expands the matrix into cells. `scenarios` maps names to loaded
    /// scenario folders (for defaults and parameter checks).
    pub fn cells(
        &self,
        scenarios: &BTreeMap<String, Scenario>,
    ) -> Result<Vec<PlannedCell>, MatrixError> {
        Ok(expand(&self.entries(scenarios)?, &self.rules()?))
    }

    /// The `debian_mirror` this file sets, if any.
    pub fn debian_mirror(&self) -> Option<&str> {
        self.file.debian_mirror.as_deref()
    }

    /// The run settings the file sets outside its profiles (checked at
    /// load).
    pub fn settings(&self) -> FileSettings {
        let size = |v: &Option<Spanned<String>>| {
            v.as_ref()
                .and_then(|s| crate::scenario::parse_size(s.get_ref()))
        };
        FileSettings {
            debian_mirror: self.file.debian_mirror.clone(),
            log_cap: size(&self.file.log_cap),
            out_cap: size(&self.file.out_cap),
            stall_s: self.file.stall_s,
        }
    }
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

    fn s(x: &str) -> String {
        x.to_string()
    }

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
[params.count]
type = "int"
min = 1
default = "5"
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
        let ids: Vec<String> = cells.iter().map(|c| c.id()).collect();
        // 3 kernels × 3 kubelets for kmem-leak; memcg-fill: 3 kernels × 2 cgroups − 1 excluded + 1 included.
        assert_eq!(cells.len(), 9 + 6 - 1 + 1, "{ids:#?}");
        assert!(ids.contains(&s("kmem-leak/kernel=3.10/kubelet=1.9/cgroup=v1")));
        assert!(!ids.contains(&s("memcg-fill/kernel=3.10/cgroup=v2")));
        assert!(ids.contains(&s("memcg-fill/kernel=6.12/cgroup=v2")));
        let get = |id: &str| cells.iter().find(|c| c.id() == id).unwrap();
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
        let ids: Vec<String> = cells.iter().map(|c| c.id()).collect();
        assert_eq!(
            ids,
            [
                "memcg-fill/kernel=6.1/cgroup=v1",
                "kmem-leak/kernel=6.1/rootfs=bullseye/driver=systemd/cgroup=v1",
                "kmem-leak/kernel=6.1/rootfs=bullseye/driver=cgroupfs/cgroup=v1",
                "kmem-leak/kernel=6.1/rootfs=bookworm/driver=systemd/cgroup=v1",
            ]
        );
        assert_eq!(cells[0].key.rootfs, None);
        assert_eq!(cells[1].key.rootfs.as_deref(), Some("bullseye"));
        assert_eq!(cells[1].expect, Expect::Reproduced);
        assert_eq!(cells[2].expect, Expect::NotReproduced);
        let f: crate::plan::Filter = "rootfs=bull*".parse().unwrap();
        assert_eq!(cells.iter().filter(|c| f.matches(&c.key)).count(), 2);
    }

    const RULES: &str = r#"
[axes]
kernels = ["5.10", "6.1", "6.12", "bookworm"]

[[scenario]]
name = "kmem-leak"

[[expect]]
scenario = "kmem-leak"
expect = { reproduced = ">= 0.8" }
reason = "kmem accounting leaks the memcg"
url = "https://example.org/bug/1"
fixed_by = "6.7"
until = ">=6.7"

[[expect]]
scenario = "kmem-leak"
kernel = "5.*"
expect = "crashed"
"#;

    #[rstest]
    #[case(
        "kmem-leak/kernel=5.10/cgroup=v1",
        "crashed",
        Some("matrix.toml:19"),
        0
    )]
    #[case(
        "kmem-leak/kernel=6.1/cgroup=v1",
        "reproduced >= 0.8",
        Some("matrix.toml:10"),
        0
    )]
    #[case("kmem-leak/kernel=6.12/cgroup=v1", "not-reproduced", None, 1)]
    #[case(
        "kmem-leak/kernel=bookworm/cgroup=v1",
        "reproduced >= 0.8",
        Some("matrix.toml:10"),
        0
    )]
    fn rules_carry_rates_provenance_and_until(
        #[case] id: &str,
        #[case] expect: &str,
        #[case] at: Option<&str>,
        #[case] stale: usize,
    ) {
        let (_t, sc) = scenarios(&["kmem-leak"]);
        let cells = matrix(RULES).unwrap().cells(&sc).unwrap();
        let c = cells.iter().find(|c| c.id() == id).unwrap();
        assert_eq!(c.expect.to_string(), expect);
        assert_eq!(c.rule.as_ref().map(|r| r.at.as_str()), at);
        assert_eq!(c.stale_rules.len(), stale);
        if let Some(r) = c.rule.as_ref().filter(|r| r.at.ends_with(":10")) {
            assert_eq!(r.reason.as_deref(), Some("kmem accounting leaks the memcg"));
            assert_eq!(r.url.as_deref(), Some("https://example.org/bug/1"));
            assert_eq!(r.fixed_by.as_deref(), Some("6.7"));
            assert_eq!(r.until.as_deref(), Some(">=6.7"));
        }
        if stale > 0 {
            assert_eq!(c.stale_rules[0].at, "matrix.toml:10");
        }
    }

    #[rstest]
    #[case(
        "expect = { reproduced = \">= 2\" }",
        "matrix.toml:4:10",
        "not a fraction"
    )]
    #[case(
        "expect = { reproduced = 0.8 }",
        "matrix.toml:4:10",
        "a rate is a string"
    )]
    #[case(
        "expect = { reproduced = \">= 0.8\", crashed = \"< 0.1\" }",
        "matrix.toml:4:10",
        "one rate"
    )]
    #[case("expect = { error = \">= 0.8\" }", "matrix.toml:4:10", "not `error`")]
    #[case("expect = 3", "matrix.toml:4:10", "an outcome")]
    #[case(
        "expect = \"reproduced\"\nuntil = \"6.*\"",
        "matrix.toml:5:9",
        "not a version range"
    )]
    #[case(
        "expect = \"reproduced\"\nuntil = \">=x\"",
        "matrix.toml:5:9",
        "not a version"
    )]
    #[case("expect = \"reproduced\"\nfixed = \"x\"", "matrix.toml:5:1", "fixed")]
    fn bad_expect_rules_point_at_their_value(
        #[case] rule: &str,
        #[case] at: &str,
        #[case] names: &str,
    ) {
        let e = matrix(&format!(
            "[axes]\nkernels = [\"6.1\"]\n[[expect]]\n{rule}\n"
        ))
        .unwrap_err()
        .to_string();
        assert!(e.starts_with(at), "{e}");
        assert!(e.contains(names), "{e}");
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
    #[case(
        "[profile.ci]\nlog_cap = \"16MB\"\n[axes]\nkernels = [\"6.1\"]\n",
        "matrix.toml:2:11",
        "cap `16MB`: use a size of at least 1k"
    )]
    #[case(
        "stall_s = -5\n[axes]\nkernels = [\"6.1\"]\n",
        "matrix.toml:1:11",
        "-5 is out of range: use 0 to 604800"
    )]
    #[case(
        "out_cap = \"12\"\n[axes]\nkernels = [\"6.1\"]\n",
        "matrix.toml:1:11",
        "cap `12`"
    )]
    #[case(
        "[profile.ci]\naccel = \"hvf\"\n[axes]\nkernels = [\"6.1\"]\n",
        "matrix.toml:2:9",
        "accelerator `hvf`: use auto, kvm or tcg"
    )]
    #[case(
        "[axes]\nkernels = [\"6.1\"]\ndrivers = [\"podman\"]\n",
        "matrix.toml:3:12",
        "cgroup driver `podman`"
    )]
    #[case(
        "[axes]\nkernels = [\"6.1\"]\n[[include]]\ncgroup = \"v9\"\n",
        "matrix.toml:4:10",
        "v9"
    )]
    #[case(
        "[profile.ci]\nboot_timeout_s = 9223372036854775807\n[axes]\nkernels = [\"6.1\"]\n",
        "matrix.toml:2:18",
        "9223372036854775807 is out of range: use 1 to 604800"
    )]
    #[case(
        "[axes]\nkernels = [\"6.1\"]\n[[scenario]]\nname = \"x\"\ntimeout_s = 0\n",
        "matrix.toml:5:13",
        "0 is out of range: use 1 to 604800"
    )]
    #[case(
        "[axes]\nkernels = [\"6.1\"]\n[[scenario]]\nname = \"x\"\nmemory_mib = 0\n",
        "matrix.toml:5:14",
        "use 64 to 1048576"
    )]
    #[case(
        "[profile.ci]\nvcpus = 1000\n[axes]\nkernels = [\"6.1\"]\n",
        "matrix.toml:2:9",
        "use 1 to 256"
    )]
    fn errors_point_at_line_and_column(#[case] text: &str, #[case] at: &str, #[case] names: &str) {
        let e = matrix(text).unwrap_err().to_string();
        assert!(e.starts_with(at), "{e}");
        assert!(e.contains(names), "{e}");
    }

    #[rstest]
    #[case(
        "[profile.a]\ninherits = \"a\"\n",
        "a",
        "matrix.toml:2:12: profile `a` inherits from itself"
    )]
    #[case(
        "[profile.a]\ninherits = \"b\"\n[profile.b]\ninherits = \"a\"\n",
        "a",
        "matrix.toml:4:12: profile `a` inherits from itself"
    )]
    #[case(
        "[profile.a]\ninherits = \"nobody\"\n",
        "a",
        "matrix.toml:2:12: no profile `nobody`; profiles: default, a"
    )]
    #[case("", "nope", "matrix.toml: no profile `nope`; profiles: default")]
    fn profile_errors_point_at_the_inherits_that_caused_them(
        #[case] profiles: &str,
        #[case] name: &str,
        #[case] want: &str,
    ) {
        let m = matrix(&format!("{profiles}[axes]\nkernels = [\"6.1\"]\n")).unwrap();
        assert_eq!(m.profile(name).unwrap_err().to_string(), want);
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

    #[rstest]
    #[case("count = 0", "0", "0")]
    #[case("limit = \"\", count = \"many\"", "\"many\"", "many")]
    fn a_param_of_the_wrong_type_points_at_its_value(
        #[case] params: &str,
        #[case] literal: &str,
        #[case] got: &str,
    ) {
        let (_t, sc) = scenarios(&["memcg-fill"]);
        let line = format!("params = {{ {params} }}");
        let col = line.rfind(literal).unwrap() + 1;
        let text =
            format!("[axes]\nkernels = [\"6.1\"]\n[[scenario]]\nname = \"memcg-fill\"\n{line}\n");
        let e = matrix(&text).unwrap().cells(&sc).unwrap_err().to_string();
        assert!(e.starts_with(&format!("matrix.toml:5:{col}: ")), "{e}");
        assert!(
            e.contains(&format!("parameter `count` is an int >= 1; got `{got}`")),
            "{e}"
        );
        assert!(e.contains("memcg-fill/scenario.toml"), "{e}");
    }

    #[test]
    fn matrix_params_are_normalized_like_command_line_ones() {
        let (_t, sc) = scenarios(&["memcg-fill"]);
        let m = matrix("[axes]\nkernels = [\"6.1\"]\n[[scenario]]\nname = \"memcg-fill\"\nparams = { count = \"007\" }\n").unwrap();
        let cells = m.cells(&sc).unwrap();
        assert_eq!(cells[0].params["count"], "7");
    }
}
