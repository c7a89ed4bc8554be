//! Scenario folders: `scenarios/<name>/scenario.toml` plus scripts.
//!
//! The contract is documented in `scenarios/README.md`. This module parses
//! the manifest, resolves parameters and builds the script's environment;
//! it never runs anything.

use crate::model::limits::{MAX_MEMORY_MIB, MAX_TIMEOUT_S, MAX_VCPUS, MIN_MEMORY_MIB};
use crate::model::CgroupVersion;
use crate::tomlfile::{self, TomlFileError};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

/// `scenario.toml`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub name: String,
    pub summary: String,
    pub entry: String,
    #[serde(deserialize_with = "tomlfile::within::<_, _, 1, MAX_TIMEOUT_S>")]
    pub timeout_s: u64,
    /// Seconds without any output from the guest (console, stdout, stderr,
    /// result file) after which the scenario is ended as stalled; 0: off;
    /// absent: the run's default (600 s unless matrix.toml or a flag says).
    #[serde(
        default,
        deserialize_with = "tomlfile::within_opt::<_, _, 0, MAX_TIMEOUT_S>"
    )]
    pub stall_s: Option<u64>,
    #[serde(deserialize_with = "tomlfile::within::<_, _, MIN_MEMORY_MIB, MAX_MEMORY_MIB>")]
    pub memory_mib: u32,
    #[serde(
        default = "one",
        deserialize_with = "tomlfile::within::<_, _, 1, MAX_VCPUS>"
    )]
    pub vcpus: u32,
    /// Supported cgroup versions; the first is the default.
    #[serde(default = "default_cgroup")]
    pub cgroup: Vec<CgroupVersion>,
    #[serde(default)]
    pub requires: Vec<String>,
    #[serde(default)]
    pub key_metric: Option<String>,
    /// `[metrics.NAME]`: which way a metric gets worse and its noise
    /// floor, for `repro compare`.
    #[serde(default)]
    pub metrics: BTreeMap<String, MetricSpec>,
    /// The scenario needs a root-filesystem guest (systemd as PID 1, the
    /// release's runc and containerd): on the initramfs guest it is
    /// `skipped`.
    #[serde(default)]
    pub needs_rootfs: bool,
    pub seed: Seed,
    #[serde(default)]
    pub params: BTreeMap<String, ParamSpec>,
}

/// Which way a metric gets worse.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum MetricDirection {
    HigherIsWorse,
    LowerIsWorse,
}

/// `[metrics.NAME]` in `scenario.toml`: `direction` and `noise`, the
/// relative change (0.05: 5%) below which a difference is noise.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct MetricSpec {
    pub direction: MetricDirection,
    #[serde(default = "default_noise")]
    pub noise: f64,
}

fn default_noise() -> f64 {
    0.05
}

fn one() -> u32 {
    1
}

fn default_cgroup() -> Vec<CgroupVersion> {
    vec![CgroupVersion::V1]
}

/// The incident report a scenario reproduces.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Seed {
    pub file: String,
    pub section: String,
}

/// One parameter: its default, description and type. Every value the
/// script receives (default or override) fits the type; see
/// [`ParamSpec::check`].
#[derive(Debug, Clone, PartialEq)]
pub struct ParamSpec {
    /// Always a string in the file, checked at load and kept normalized
    /// (see [`ParamSpec::check`]); empty = unset (allowed by `string` and
    /// by any type with `optional = true`).
    pub default: String,
    pub description: String,
    pub ty: ParamType,
    /// The empty string is accepted (the script reads it as "unset" or
    /// "auto").
    pub optional: bool,
    /// Words accepted besides numbers (`values` on `int`, `number` and
    /// `size`, e.g. `none`); passed as written.
    pub words: Vec<String>,
}

/// The `type` of a parameter as written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ParamKind {
    String,
    Int,
    Number,
    Bool,
    Enum,
    Size,
}

/// What values a parameter takes, with its bounds.
#[derive(Debug, Clone, PartialEq)]
pub enum ParamType {
    /// Any text; the type when `type` is absent.
    String,
    /// A decimal integer (`-3`, `0`, `20000`), passed in canonical form
    /// (`+5` and `007` become `5` and `7`).
    Int { min: Option<i64>, max: Option<i64> },
    /// A decimal number (`50`, `0.5`), passed as written.
    Number { min: Option<f64>, max: Option<f64> },
    /// `1`/`0`, `true`/`false`, `yes`/`no`, `on`/`off` (any case); the
    /// script always receives `1` or `0`.
    Bool,
    /// One of `values`, passed as written.
    Enum { values: Vec<String> },
    /// Bytes, with an optional binary unit (`512`, `64k`, `16M`, `2G`,
    /// `1T`; k = 1024); the script receives the number of bytes.
    Size { min: Option<u64>, max: Option<u64> },
}

/// A parameter as written in `scenario.toml`, before its type is checked.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct ParamSpecFile {
    #[serde(default)]
    default: String,
    description: String,
    #[serde(default, rename = "type")]
    kind: Option<ParamKind>,
    #[serde(default)]
    min: Option<toml::Value>,
    #[serde(default)]
    max: Option<toml::Value>,
    #[serde(default)]
    values: Option<Vec<String>>,
    #[serde(default)]
    optional: bool,
}

impl<'de> Deserialize<'de> for ParamSpec {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<ParamSpec, D::Error> {
        ParamSpec::from_file(ParamSpecFile::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

/// A value that does not fit its parameter: the message names what the
/// parameter accepts.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("parameter `{name}` is {allowed}; got `{value}`")]
pub struct ParamValueError {
    pub name: String,
    pub allowed: String,
    pub value: String,
}

impl ParamSpec {
    fn from_file(f: ParamSpecFile) -> Result<ParamSpec, String> {
        let kind = f.kind.unwrap_or(ParamKind::String);
        let kind_name = kind.name();
        let no_bounds = |what: &str| -> Result<(), String> {
            match (&f.min, &f.max) {
                (None, None) => Ok(()),
                _ => Err(format!("`min`/`max` do not apply to a {what} parameter")),
            }
        };
        let (ty, words) = match kind {
            ParamKind::String | ParamKind::Bool => {
                no_bounds(kind_name)?;
                if f.values.is_some() {
                    return Err(format!(
                        "`values` does not apply to a {kind_name} parameter (use type = \"enum\")"
                    ));
                }
                let ty = if kind == ParamKind::Bool {
                    ParamType::Bool
                } else {
                    ParamType::String
                };
                (ty, Vec::new())
            }
            ParamKind::Enum => {
                no_bounds("enum")?;
                let values = f.values.clone().unwrap_or_default();
                if values.is_empty() {
                    return Err("an enum parameter needs `values`, the allowed values".into());
                }
                (ParamType::Enum { values }, Vec::new())
            }
            ParamKind::Int => {
                let bound = |v: &Option<toml::Value>, which: &str| match v {
                    None => Ok(None),
                    Some(toml::Value::Integer(i)) => Ok(Some(*i)),
                    Some(other) => Err(format!(
                        "`{which}` of an int parameter must be an integer, not {}",
                        describe(other)
                    )),
                };
                let (min, max) = (bound(&f.min, "min")?, bound(&f.max, "max")?);
                check_order(min, max)?;
                (
                    ParamType::Int { min, max },
                    f.values.clone().unwrap_or_default(),
                )
            }
            ParamKind::Number => {
                let bound = |v: &Option<toml::Value>, which: &str| match v {
                    None => Ok(None),
                    Some(toml::Value::Integer(i)) => Ok(Some(*i as f64)),
                    Some(toml::Value::Float(x)) if x.is_finite() => Ok(Some(*x)),
                    Some(other) => Err(format!(
                        "`{which}` of a number parameter must be a number, not {}",
                        describe(other)
                    )),
                };
                let (min, max) = (bound(&f.min, "min")?, bound(&f.max, "max")?);
                check_order(min, max)?;
                (
                    ParamType::Number { min, max },
                    f.values.clone().unwrap_or_default(),
                )
            }
            ParamKind::Size => {
                let bound = |v: &Option<toml::Value>, which: &str| {
                    match v {
                    None => Ok(None),
                    Some(toml::Value::Integer(i)) if *i >= 0 => Ok(Some(*i as u64)),
                    Some(toml::Value::String(s)) => parse_size(s).map(Some).ok_or_else(|| {
                        format!("`{which}` of a size parameter must be a size like 64k, not `{s}`")
                    }),
                    Some(other) => Err(format!(
                        "`{which}` of a size parameter must be bytes or a size like \"64k\", not {}",
                        describe(other)
                    )),
                }
                };
                let (min, max) = (bound(&f.min, "min")?, bound(&f.max, "max")?);
                check_order(min, max)?;
                (
                    ParamType::Size { min, max },
                    f.values.clone().unwrap_or_default(),
                )
            }
        };
        if let Some(w) = words.iter().find(|w| w.is_empty()) {
            return Err(format!(
                "`values` of a {kind_name} parameter lists `{w}`: use optional = true for the empty value"
            ));
        }
        let mut spec = ParamSpec {
            default: f.default,
            description: f.description,
            ty,
            optional: f.optional,
            words,
        };
        // The default is stored normalized, like an override.
        spec.default = spec.check("", &spec.default).map_err(|e| {
            format!(
                "default `{}` does not fit the parameter's type: {}{}",
                e.value,
                e.allowed,
                if e.value.is_empty() && !spec.optional {
                    " (add optional = true if empty means unset)"
                } else {
                    ""
                }
            )
        })?;
        Ok(spec)
    }

    /// `value` normalized for the script (bools as `1`/`0`, sizes in
    /// bytes, ints canonical), or why it does not fit; `name` is the
    /// parameter's, for the message.
    pub fn check(&self, name: &str, value: &str) -> Result<String, ParamValueError> {
        let ok = match &self.ty {
            ParamType::String => return Ok(value.to_string()),
            _ if value.is_empty() && self.optional => return Ok(String::new()),
            _ if self.words.iter().any(|w| w == value) => return Ok(value.to_string()),
            ParamType::Int { min, max } => value
                .parse::<i64>()
                .ok()
                .filter(|n| in_bounds(*n, *min, *max))
                .map(|n| n.to_string()),
            ParamType::Number { min, max } => parse_number(value)
                .filter(|x| in_bounds(*x, *min, *max))
                .map(|_| value.to_string()),
            ParamType::Bool => parse_bool(value).map(|b| if b { "1" } else { "0" }.to_string()),
            ParamType::Enum { values } => {
                values.iter().any(|v| v == value).then(|| value.to_string())
            }
            ParamType::Size { min, max } => parse_size(value)
                .filter(|n| in_bounds(*n, *min, *max))
                .map(|n| n.to_string()),
        };
        ok.ok_or_else(|| ParamValueError {
            name: name.to_string(),
            allowed: self.allowed(),
            value: value.to_string(),
        })
    }

    /// What the parameter accepts, as a phrase: `an int >= 1 or empty`.
    pub fn allowed(&self) -> String {
        let mut s = match &self.ty {
            ParamType::String => "any text".to_string(),
            ParamType::Int { min, max } => {
                format!("an int{}", bounds_text(*min, *max, |n| n.to_string()))
            }
            ParamType::Number { min, max } => {
                format!("a number{}", bounds_text(*min, *max, |x| x.to_string()))
            }
            ParamType::Bool => "a bool (1/0, true/false, yes/no, on/off)".to_string(),
            ParamType::Enum { values } => {
                let v: Vec<String> = values.iter().map(|v| format!("`{v}`")).collect();
                format!("one of {}", v.join(", "))
            }
            ParamType::Size { min, max } => format!(
                "a size (bytes, or with a binary unit k, M, G, T: 512, 64k, 16M, 2G){}",
                bounds_text(*min, *max, size_text)
            ),
        };
        for w in &self.words {
            s.push_str(&format!(" or `{w}`"));
        }
        if self.optional && self.ty != ParamType::String {
            s.push_str(" or empty");
        }
        s
    }
}

impl ParamKind {
    fn name(self) -> &'static str {
        match self {
            ParamKind::String => "string",
            ParamKind::Int => "int",
            ParamKind::Number => "number",
            ParamKind::Bool => "bool",
            ParamKind::Enum => "enum",
            ParamKind::Size => "size",
        }
    }
}

/// A bound's value as the message shows it: its type, and its text for
/// scalars.
fn describe(v: &toml::Value) -> String {
    let kind = match v {
        toml::Value::String(_) => "a string",
        toml::Value::Integer(_) => "an integer",
        toml::Value::Float(_) => "a float",
        toml::Value::Boolean(_) => "a bool",
        toml::Value::Datetime(_) => "a datetime",
        toml::Value::Array(_) => "an array",
        toml::Value::Table(_) => "a table",
    };
    match v {
        toml::Value::Array(_) | toml::Value::Table(_) | toml::Value::Datetime(_) => {
            kind.to_string()
        }
        other => format!("{kind} ({other})"),
    }
}

fn check_order<T: PartialOrd + std::fmt::Debug>(
    min: Option<T>,
    max: Option<T>,
) -> Result<(), String> {
    match (min, max) {
        (Some(lo), Some(hi)) if lo > hi => Err(format!("`min` ({lo:?}) is above `max` ({hi:?})")),
        _ => Ok(()),
    }
}

fn in_bounds<T: PartialOrd>(v: T, min: Option<T>, max: Option<T>) -> bool {
    min.is_none_or(|m| v >= m) && max.is_none_or(|m| v <= m)
}

/// ` >= 1`, ` <= 9`, ` from 1 to 9`, or nothing.
fn bounds_text<T: Copy>(min: Option<T>, max: Option<T>, show: impl Fn(T) -> String) -> String {
    match (min, max) {
        (Some(lo), Some(hi)) => format!(" from {} to {}", show(lo), show(hi)),
        (Some(lo), None) => format!(" >= {}", show(lo)),
        (None, Some(hi)) => format!(" <= {}", show(hi)),
        (None, None) => String::new(),
    }
}

/// `[-]digits[.digits]`.
fn parse_number(s: &str) -> Option<f64> {
    let digits = s.strip_prefix('-').unwrap_or(s);
    let (int, frac) = digits.split_once('.').unwrap_or((digits, "0"));
    let all_digits = |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit());
    if !(all_digits(int) && all_digits(frac)) {
        return None;
    }
    s.parse().ok()
}

fn parse_bool(s: &str) -> Option<bool> {
    match s.to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Some(true),
        "0" | "false" | "no" | "off" => Some(false),
        _ => None,
    }
}

/// Binary units as shown, and their shift; parsing ignores case.
const SIZE_UNITS: [(&str, u32); 4] = [("k", 10), ("M", 20), ("G", 30), ("T", 40)];

/// Bytes from `512`, `64k`, `16M`, `2G`, `1T` (binary units, any case).
pub fn parse_size(s: &str) -> Option<u64> {
    let (digits, shift) = match s.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => {
            let (_, shift) = SIZE_UNITS
                .iter()
                .find(|(u, _)| u.eq_ignore_ascii_case(&s[i..]))?;
            (&s[..i], *shift)
        }
        _ => (s, 0),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse::<u64>().ok()?.checked_mul(1u64 << shift)
}

/// A byte count in the largest binary unit that divides it: `64k`, `512`.
pub fn size_text(bytes: u64) -> String {
    for (unit, shift) in SIZE_UNITS.iter().rev() {
        let div = 1u64 << shift;
        if bytes != 0 && bytes.is_multiple_of(div) {
            return format!("{}{unit}", bytes / div);
        }
    }
    bytes.to_string()
}

/// A loaded scenario folder.
#[derive(Debug, Clone)]
pub struct Scenario {
    pub manifest: Manifest,
    pub dir: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    #[error("unknown scenario `{name}`; known scenarios: {known} (folders under {root})")]
    Unknown {
        name: String,
        known: String,
        root: PathBuf,
    },
    #[error(transparent)]
    Manifest(#[from] TomlFileError),
    #[error("{path}:{line}:{column}: name `{found}` does not match its folder `{folder}`")]
    NameMismatch {
        path: PathBuf,
        line: usize,
        column: usize,
        found: String,
        folder: String,
    },
    #[error("{path}:{line}:{column}: entry script `{entry}` is not a file in {dir}")]
    MissingEntry {
        path: PathBuf,
        line: usize,
        column: usize,
        entry: String,
        dir: PathBuf,
    },
    #[error("scenario `{scenario}` has no parameter `{param}`; its parameters: {known}")]
    UnknownParam {
        scenario: String,
        param: String,
        known: String,
    },
    /// A value (override or default) that does not fit the parameter's
    /// type; `path` is the scenario's `scenario.toml`.
    #[error("{path}: {error}")]
    BadParam {
        path: PathBuf,
        error: ParamValueError,
    },
    #[error("scenario `{scenario}` supports cgroup {supported}, not {asked}")]
    UnsupportedCgroup {
        scenario: String,
        supported: String,
        asked: String,
    },
    #[error("cannot list scenarios in {root}: {source}")]
    List {
        root: PathBuf,
        source: std::io::Error,
    },
}

impl Scenario {
    /// Loads and checks `dir/scenario.toml`.
    pub fn load(dir: &Path) -> Result<Scenario, ScenarioError> {
        let path = dir.join("scenario.toml");
        let text = tomlfile::read(&path)?;
        let manifest: Manifest = tomlfile::parse(&path, &text)?;
        let at = |key| tomlfile::value_position(&text, key).unwrap_or((1, 1));
        let folder = dir
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default();
        if manifest.name != folder {
            let (line, column) = at("name");
            return Err(ScenarioError::NameMismatch {
                path,
                line,
                column,
                found: manifest.name,
                folder,
            });
        }
        let entry = Path::new(&manifest.entry);
        let inside = entry
            .components()
            .all(|c| matches!(c, Component::Normal(_) | Component::CurDir));
        if manifest.entry.is_empty() || !inside || !dir.join(entry).is_file() {
            let (line, column) = at("entry");
            return Err(ScenarioError::MissingEntry {
                path,
                line,
                column,
                entry: manifest.entry,
                dir: dir.to_path_buf(),
            });
        }
        Ok(Scenario {
            manifest,
            dir: dir.to_path_buf(),
        })
    }

    pub fn name(&self) -> &str {
        &self.manifest.name
    }

    /// `dir/scenario.toml`, the file errors about the scenario name.
    pub fn manifest_path(&self) -> PathBuf {
        self.dir.join("scenario.toml")
    }

    /// Parameters with defaults filled in and `overrides` checked against
    /// their types and applied (normalized, see [`ParamSpec::check`]).
    pub fn params(
        &self,
        overrides: &[(String, String)],
    ) -> Result<BTreeMap<String, String>, ScenarioError> {
        resolve_params(&self.manifest, &self.manifest_path(), overrides)
    }

    /// The cgroup version to use: `asked`, else the scenario's default.
    /// Whether the scenario supports it is [`Scenario::supports_cgroup`].
    pub fn cgroup(&self, asked: Option<CgroupVersion>) -> CgroupVersion {
        asked
            .or_else(|| self.manifest.cgroup.first().copied())
            .unwrap_or(CgroupVersion::V1)
    }

    /// Whether the scenario declares support for cgroup `version`.
    pub fn supports_cgroup(&self, version: CgroupVersion) -> bool {
        self.manifest.cgroup.contains(&version)
    }

    /// The supported versions as written: `v1/v2`.
    pub fn cgroups_text(&self) -> String {
        let v: Vec<&str> = self.manifest.cgroup.iter().map(|c| c.as_str()).collect();
        v.join("/")
    }
}

/// Pure parameter resolution (tested): defaults, then `overrides`, each
/// checked against its parameter's type; `path` (the manifest's file)
/// names the scenario in errors.
pub fn resolve_params(
    manifest: &Manifest,
    path: &Path,
    overrides: &[(String, String)],
) -> Result<BTreeMap<String, String>, ScenarioError> {
    let mut out: BTreeMap<String, String> = manifest
        .params
        .iter()
        .map(|(k, v)| (k.clone(), v.default.clone()))
        .collect();
    for (k, v) in overrides {
        let Some(spec) = manifest.params.get(k) else {
            let known: Vec<&str> = manifest.params.keys().map(String::as_str).collect();
            return Err(ScenarioError::UnknownParam {
                scenario: manifest.name.clone(),
                param: k.clone(),
                known: if known.is_empty() {
                    "(none)".into()
                } else {
                    known.join(", ")
                },
            });
        };
        let value = spec.check(k, v).map_err(|error| ScenarioError::BadParam {
            path: path.to_path_buf(),
            error,
        })?;
        out.insert(k.clone(), value);
    }
    Ok(out)
}

/// `REPRO_PARAM_<NAME>` for a parameter name.
pub fn param_env_name(name: &str) -> String {
    let mut s = String::from("REPRO_PARAM_");
    for c in name.chars() {
        s.push(if c.is_ascii_alphanumeric() {
            c.to_ascii_uppercase()
        } else {
            '_'
        });
    }
    s
}

/// All scenario folders under `root`, sorted by name.
pub fn list(root: &Path) -> Result<Vec<Result<Scenario, ScenarioError>>, ScenarioError> {
    let rd = std::fs::read_dir(root).map_err(|source| ScenarioError::List {
        root: root.to_path_buf(),
        source,
    })?;
    let mut dirs: Vec<PathBuf> = rd
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.join("scenario.toml").is_file())
        .collect();
    dirs.sort();
    Ok(dirs.iter().map(|d| Scenario::load(d)).collect())
}

/// Finds scenario `name` under `root`.
pub fn find(root: &Path, name: &str) -> Result<Scenario, ScenarioError> {
    let dir = root.join(name);
    if name.contains('/') || !dir.join("scenario.toml").is_file() {
        let known: Vec<String> = list(root)?
            .into_iter()
            .filter_map(|s| s.ok())
            .map(|s| s.manifest.name)
            .collect();
        return Err(ScenarioError::Unknown {
            name: name.into(),
            known: known.join(", "),
            root: root.to_path_buf(),
        });
    }
    Scenario::load(&dir)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    const GOOD: &str = r#"
name = "demo"
summary = "a demo"
entry = "run.sh"
timeout_s = 60
memory_mib = 512
cgroup = ["v1", "v2"]
[seed]
file = "004.txt"
section = "2"
[params.limit]
default = ""
description = "stop early"
[params.headroom]
default = "99"
description = "free ids"
"#;

    fn manifest() -> Manifest {
        tomlfile::parse(Path::new("demo/scenario.toml"), GOOD).unwrap()
    }

    fn resolve(overrides: &[(String, String)]) -> Result<BTreeMap<String, String>, ScenarioError> {
        resolve_params(&manifest(), Path::new("demo/scenario.toml"), overrides)
    }

    /// A parameter from the lines of its table (after `[params.p]`).
    fn spec(lines: &str) -> Result<ParamSpec, TomlFileError> {
        #[derive(Deserialize)]
        struct P {
            params: BTreeMap<String, ParamSpec>,
        }
        let text = format!("[params.p]\ndescription = \"d\"\n{lines}\n");
        tomlfile::parse::<P>(Path::new("s.toml"), &text).map(|mut p| p.params.remove("p").unwrap())
    }

    #[rstest]
    // Absent type: any text, as before types existed.
    #[case("default = \"x\"", "anything at all", Ok("anything at all"))]
    #[case("default = \"\"", "", Ok(""))]
    #[case("type = \"string\"\ndefault = \"x\"", "", Ok(""))]
    #[case("type = \"int\"\ndefault = \"3\"", "-7", Ok("-7"))]
    #[case("type = \"int\"\ndefault = \"3\"", "+5", Ok("5"))]
    #[case("type = \"int\"\ndefault = \"3\"", "007", Ok("7"))]
    #[case("type = \"int\"\ndefault = \"3\"", "abc", Err("an int"))]
    #[case("type = \"int\"\ndefault = \"3\"", "1.5", Err("an int"))]
    #[case("type = \"int\"\ndefault = \"3\"", "", Err("an int"))]
    #[case("type = \"int\"\nmin = 1\ndefault = \"3\"", "1", Ok("1"))]
    #[case("type = \"int\"\nmin = 1\ndefault = \"3\"", "0", Err("an int >= 1"))]
    #[case("type = \"int\"\nmax = 9\ndefault = \"3\"", "10", Err("an int <= 9"))]
    #[case("type = \"int\"\nmin = 1\nmax = 9\ndefault = \"3\"", "9", Ok("9"))]
    #[case(
        "type = \"int\"\nmin = 1\nmax = 9\ndefault = \"3\"",
        "0",
        Err("an int from 1 to 9")
    )]
    #[case("type = \"int\"\nmin = 1\noptional = true\ndefault = \"\"", "", Ok(""))]
    #[case(
        "type = \"int\"\nmin = 1\noptional = true\ndefault = \"\"",
        "x",
        Err("an int >= 1 or empty")
    )]
    #[case(
        "type = \"int\"\nmin = 1\nvalues = [\"none\"]\ndefault = \"none\"",
        "none",
        Ok("none")
    )]
    #[case(
        "type = \"int\"\nmin = 1\nvalues = [\"none\"]\ndefault = \"1\"",
        "all",
        Err("an int >= 1 or `none`")
    )]
    #[case("type = \"number\"\ndefault = \"1\"", "0.5", Ok("0.5"))]
    #[case("type = \"number\"\ndefault = \"1\"", "12", Ok("12"))]
    #[case("type = \"number\"\ndefault = \"1\"", "1e3", Err("a number"))]
    #[case("type = \"number\"\ndefault = \"1\"", "inf", Err("a number"))]
    #[case("type = \"number\"\ndefault = \"1\"", ".5", Err("a number"))]
    #[case(
        "type = \"number\"\nmin = 0.1\ndefault = \"1\"",
        "0.05",
        Err("a number >= 0.1")
    )]
    #[case(
        "type = \"number\"\nmax = 2\ndefault = \"1\"",
        "2.5",
        Err("a number <= 2")
    )]
    #[case("type = \"bool\"\ndefault = \"1\"", "1", Ok("1"))]
    #[case("type = \"bool\"\ndefault = \"1\"", "0", Ok("0"))]
    #[case("type = \"bool\"\ndefault = \"1\"", "true", Ok("1"))]
    #[case("type = \"bool\"\ndefault = \"1\"", "OFF", Ok("0"))]
    #[case("type = \"bool\"\ndefault = \"1\"", "no", Ok("0"))]
    #[case(
        "type = \"bool\"\ndefault = \"1\"",
        "2",
        Err("a bool (1/0, true/false")
    )]
    #[case("type = \"bool\"\ndefault = \"1\"", "", Err("a bool"))]
    #[case(
        "type = \"enum\"\nvalues = [\"a\", \"b\"]\ndefault = \"a\"",
        "b",
        Ok("b")
    )]
    #[case(
        "type = \"enum\"\nvalues = [\"a\", \"b\"]\ndefault = \"a\"",
        "B",
        Err("one of `a`, `b`")
    )]
    #[case(
        "type = \"enum\"\nvalues = [\"a\", \"b\"]\ndefault = \"a\"",
        "",
        Err("one of `a`, `b`")
    )]
    #[case(
        "type = \"enum\"\nvalues = [\"a\", \"b\"]\noptional = true\ndefault = \"\"",
        "",
        Ok("")
    )]
    #[case("type = \"size\"\ndefault = \"1\"", "512", Ok("512"))]
    #[case("type = \"size\"\ndefault = \"1\"", "64k", Ok("65536"))]
    #[case("type = \"size\"\ndefault = \"1\"", "64K", Ok("65536"))]
    #[case("type = \"size\"\ndefault = \"1\"", "16M", Ok("16777216"))]
    #[case("type = \"size\"\ndefault = \"1\"", "2G", Ok("2147483648"))]
    #[case("type = \"size\"\ndefault = \"1\"", "1t", Ok("1099511627776"))]
    #[case("type = \"size\"\ndefault = \"1\"", "16MB", Err("a size"))]
    #[case("type = \"size\"\ndefault = \"1\"", "1.5G", Err("a size"))]
    #[case("type = \"size\"\ndefault = \"1\"", "k", Err("a size"))]
    #[case("type = \"size\"\ndefault = \"1\"", "-1", Err("a size"))]
    #[case("type = \"size\"\ndefault = \"1\"", "99999999999T", Err("a size"))]
    #[case(
        "type = \"size\"\nmin = \"4k\"\nmax = 1073741824\ndefault = \"4k\"",
        "4096",
        Ok("4096")
    )]
    #[case(
        "type = \"size\"\nmin = \"4k\"\nmax = 1073741824\ndefault = \"4k\"",
        "4095",
        Err("from 4k to 1G")
    )]
    #[case(
        "type = \"size\"\nmin = \"4k\"\nmax = 1073741824\ndefault = \"4k\"",
        "2G",
        Err("from 4k to 1G")
    )]
    fn values_are_checked_against_the_type(
        #[case] lines: &str,
        #[case] value: &str,
        #[case] want: Result<&str, &str>,
    ) {
        let spec = spec(lines).unwrap();
        match (spec.check("p", value), want) {
            (Ok(got), Ok(want)) => assert_eq!(got, want),
            (Err(e), Err(allowed)) => {
                let msg = e.to_string();
                assert!(
                    msg.starts_with("parameter `p` is ") && msg.contains(allowed),
                    "{msg}"
                );
                assert!(msg.ends_with(&format!("; got `{value}`")), "{msg}");
            }
            (got, want) => panic!("{lines} / {value:?}: got {got:?}, want {want:?}"),
        }
    }

    #[rstest]
    #[case(
        "type = \"int\"\nmin = 1\ndefault = \"0\"",
        "default `0` does not fit the parameter's type: an int >= 1"
    )]
    #[case("type = \"int\"\ndefault = \"\"", "add optional = true")]
    #[case("type = \"bool\"\ndefault = \"maybe\"", "default `maybe`")]
    #[case("type = \"enum\"\nvalues = [\"a\"]\ndefault = \"b\"", "one of `a`")]
    #[case("type = \"enum\"\ndefault = \"b\"", "needs `values`")]
    #[case("type = \"size\"\ndefault = \"4q\"", "default `4q`")]
    #[case("type = \"number\"\nmin = 2\ndefault = \"1.5\"", "a number >= 2")]
    #[case(
        "type = \"int\"\nmin = 5\nmax = 1\ndefault = \"3\"",
        "`min` (5) is above `max` (1)"
    )]
    #[case(
        "type = \"int\"\nmin = \"1\"\ndefault = \"3\"",
        "`min` of an int parameter must be an integer"
    )]
    #[case(
        "type = \"string\"\nmin = 1\ndefault = \"3\"",
        "do not apply to a string parameter"
    )]
    #[case(
        "type = \"bool\"\nvalues = [\"y\"]\ndefault = \"1\"",
        "`values` does not apply to a bool"
    )]
    #[case(
        "type = \"int\"\nvalues = [\"\"]\ndefault = \"1\"",
        "use optional = true"
    )]
    #[case("type = \"float\"\ndefault = \"1\"", "float")]
    #[case("type = \"int\"\ndefault = \"1\"\nmni = 3", "mni")]
    fn bad_parameter_declarations_are_load_errors_with_position(
        #[case] lines: &str,
        #[case] names: &str,
    ) {
        let msg = spec(lines).unwrap_err().to_string();
        assert!(msg.starts_with("s.toml:"), "{msg}");
        assert!(msg.contains(names), "{msg}");
    }

    #[test]
    fn a_bad_override_names_the_file_and_what_is_allowed() {
        let text = GOOD.replace(
            "[params.limit]\ndefault = \"\"",
            "[params.limit]\ntype = \"int\"\nmin = 1\noptional = true\ndefault = \"\"",
        );
        let m: Manifest = tomlfile::parse(Path::new("demo/scenario.toml"), &text).unwrap();
        let e = resolve_params(
            &m,
            Path::new("demo/scenario.toml"),
            &[("limit".into(), "abc".into())],
        )
        .unwrap_err()
        .to_string();
        assert_eq!(
            e,
            "demo/scenario.toml: parameter `limit` is an int >= 1 or empty; got `abc`"
        );
    }

    #[test]
    fn a_broken_default_fails_the_scenario_load_naming_the_file() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path().join("demo");
        std::fs::create_dir(&d).unwrap();
        let text = GOOD.replace("default = \"99\"", "type = \"int\"\ndefault = \"lots\"");
        std::fs::write(d.join("scenario.toml"), text).unwrap();
        std::fs::write(d.join("run.sh"), "true").unwrap();
        let e = Scenario::load(&d).unwrap_err().to_string();
        let file = d.join("scenario.toml").display().to_string();
        assert!(e.starts_with(&format!("{file}:")), "{e}");
        assert!(e.contains("default `lots`") && e.contains("an int"), "{e}");
    }

    #[test]
    fn every_shipped_scenario_loads_with_typed_parameters() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios");
        let all = list(&root).unwrap();
        assert!(all.len() >= 8, "{} scenarios", all.len());
        for sc in all {
            let sc = sc.unwrap_or_else(|e| panic!("{e}"));
            // Every parameter says its type (absent would mean string).
            let text = std::fs::read_to_string(sc.manifest_path()).unwrap();
            let raw: toml::Table = toml::from_str(&text).unwrap();
            if let Some(params) = raw.get("params").and_then(|p| p.as_table()) {
                for (name, p) in params {
                    assert!(
                        p.get("type").is_some(),
                        "{}: parameter `{name}` has no type",
                        sc.name()
                    );
                }
            }
            // The defaults resolve, and resolving them again is a no-op.
            let defaults = sc.params(&[]).unwrap();
            let again: Vec<(String, String)> = defaults.clone().into_iter().collect();
            assert_eq!(sc.params(&again).unwrap(), defaults, "{}", sc.name());
        }
    }

    #[rstest]
    #[case("memcg-fill", "limit", "0", "an int >= 1 or empty")]
    #[case("kmem-leak", "runtime", "crun", "one of `cgroups`, `runc`")]
    #[case("kmem-leak", "fresh_kubepods", "maybe", "a bool")]
    #[case("supercronic-zombies", "pids_max", "3", "an int >= 4")]
    #[case("initcontainer-cpuset", "init_cpus", "0", "an int >= 1 or `none`")]
    #[case("systemd-slice-churn", "rate", "fast", "a number")]
    #[case(
        "slow-image-pull",
        "pull_mode",
        "burst",
        "one of `serial`, `parallel` or empty"
    )]
    fn shipped_parameters_refuse_what_their_scripts_refuse(
        #[case] scenario: &str,
        #[case] param: &str,
        #[case] value: &str,
        #[case] allowed: &str,
    ) {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios");
        let sc = find(&root, scenario).unwrap();
        let e = sc
            .params(&[(param.into(), value.into())])
            .unwrap_err()
            .to_string();
        assert!(e.contains("scenario.toml: ") && e.contains(allowed), "{e}");
    }

    #[rstest]
    #[case("kmem-leak", "fresh_kubepods", "true", "1")]
    #[case("systemd-slice-churn", "watch", "off", "0")]
    #[case("initcontainer-cpuset", "init_cpus", "none", "none")]
    #[case("inotify-exhaust", "fixed_limit", "", "")]
    fn shipped_parameters_pass_what_their_scripts_test(
        #[case] scenario: &str,
        #[case] param: &str,
        #[case] value: &str,
        #[case] want: &str,
    ) {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios");
        let sc = find(&root, scenario).unwrap();
        let p = sc.params(&[(param.into(), value.into())]).unwrap();
        assert_eq!(p[param], want);
    }

    #[rstest]
    #[case(512, "512")]
    #[case(65536, "64k")]
    #[case(3 << 20, "3M")]
    #[case(1 << 30, "1G")]
    #[case(0, "0")]
    fn sizes_show_in_the_largest_unit(#[case] bytes: u64, #[case] want: &str) {
        assert_eq!(size_text(bytes), want);
        assert_eq!(parse_size(want), Some(bytes));
    }

    #[test]
    fn defaults_fill_and_overrides_apply() {
        let p = resolve(&[("limit".into(), "100".into())]).unwrap();
        assert_eq!(p["limit"], "100");
        assert_eq!(p["headroom"], "99");
        assert_eq!(manifest().vcpus, 1);
    }

    #[test]
    fn unknown_param_names_the_known_ones() {
        let e = resolve(&[("limt".into(), "1".into())]).unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("limt") && msg.contains("headroom, limit"),
            "{msg}"
        );
    }

    #[test]
    fn unknown_manifest_key_is_an_error_with_position() {
        let bad = GOOD.replace("timeout_s = 60", "timeout_s = 60\ntimout = 3");
        let e = tomlfile::parse::<Manifest>(Path::new("s.toml"), &bad).unwrap_err();
        assert!(e.to_string().starts_with("s.toml:6:1"), "{e}");
    }

    #[rstest]
    #[case("limit", "REPRO_PARAM_LIMIT")]
    #[case("pids-max", "REPRO_PARAM_PIDS_MAX")]
    #[case("interval_ms", "REPRO_PARAM_INTERVAL_MS")]
    fn env_names(#[case] name: &str, #[case] want: &str) {
        assert_eq!(param_env_name(name), want);
    }

    /// `scenario.toml` `text` in a folder `demo` with `run.sh`, loaded.
    fn load_text(text: &str) -> (String, Result<Scenario, ScenarioError>) {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path().join("demo");
        std::fs::create_dir(&d).unwrap();
        std::fs::write(d.join("scenario.toml"), text).unwrap();
        std::fs::write(d.join("run.sh"), "true").unwrap();
        let file = d.join("scenario.toml").display().to_string();
        (file, Scenario::load(&d))
    }

    #[rstest]
    #[case(
        "name = \"demo\"",
        "name = \"dmo\"",
        2,
        8,
        "name `dmo` does not match its folder `demo`"
    )]
    #[case(
        "entry = \"run.sh\"",
        "entry = \"go.sh\"",
        4,
        9,
        "entry script `go.sh` is not a file in"
    )]
    #[case(
        "entry = \"run.sh\"",
        "entry = \"/bin/sh\"",
        4,
        9,
        "entry script `/bin/sh`"
    )]
    #[case(
        "entry = \"run.sh\"",
        "entry = \"../demo/run.sh\"",
        4,
        9,
        "entry script `../demo/run.sh`"
    )]
    #[case("entry = \"run.sh\"", "entry = \"\"", 4, 9, "entry script ``")]
    #[case(
        "timeout_s = 60",
        "timeout_s = 9223372036854775807",
        5,
        13,
        "9223372036854775807 is out of range: use 1 to 604800"
    )]
    #[case(
        "timeout_s = 60",
        "timeout_s = 0",
        5,
        13,
        "0 is out of range: use 1 to 604800"
    )]
    #[case(
        "memory_mib = 512",
        "memory_mib = 4294967296",
        6,
        14,
        "out of range: use 64 to 1048576"
    )]
    #[case(
        "memory_mib = 512",
        "memory_mib = 512\nvcpus = 0",
        7,
        9,
        "0 is out of range: use 1 to 256"
    )]
    fn checks_after_parsing_point_at_the_value(
        #[case] from: &str,
        #[case] to: &str,
        #[case] line: usize,
        #[case] column: usize,
        #[case] says: &str,
    ) {
        assert!(GOOD.contains(from));
        let (file, r) = load_text(&GOOD.replace(from, to));
        let e = r.unwrap_err().to_string();
        assert!(e.starts_with(&format!("{file}:{line}:{column}: ")), "{e}");
        assert!(e.contains(says), "{e}");
    }

    #[test]
    fn an_entry_with_a_current_folder_prefix_is_in_the_folder() {
        let (_, r) = load_text(&GOOD.replace("entry = \"run.sh\"", "entry = \"./run.sh\""));
        r.unwrap();
    }

    #[test]
    fn a_bound_of_the_wrong_type_is_named_by_its_type() {
        let e = spec("type = \"int\"\nmin = 07:32:00\ndefault = \"1\"")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("`min` of an int parameter must be an integer, not a datetime"),
            "{e}"
        );
        assert!(!e.contains("toml_private"), "{e}");
        let e = spec("type = \"size\"\nmax = 1.5\ndefault = \"1\"")
            .unwrap_err()
            .to_string();
        assert!(e.contains("not a float (1.5)"), "{e}");
    }

    #[test]
    fn finds_and_rejects_scenarios_on_disk() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path().join("demo");
        std::fs::create_dir(&d).unwrap();
        std::fs::write(d.join("scenario.toml"), GOOD).unwrap();
        std::fs::write(d.join("run.sh"), "true").unwrap();
        assert_eq!(find(tmp.path(), "demo").unwrap().name(), "demo");
        let e = find(tmp.path(), "nope").unwrap_err().to_string();
        assert!(
            e.contains("unknown scenario `nope`") && e.contains("demo"),
            "{e}"
        );
    }
}
