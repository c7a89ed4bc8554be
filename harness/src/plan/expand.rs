//! The one expansion from scenario entries and axis values to cells, used
//! by `repro run`, `repro matrix` and `repro fixed-in`: the product of the
//! axes, plus includes, minus excludes, with the last matching expectation.

use super::pattern::Pattern;
use super::PlannedCell;
use crate::model::{CellKey, CgroupVersion, Driver, Expect, Field, RuleSource};
use crate::scenario::Scenario;
use std::collections::{BTreeMap, BTreeSet};

/// One scenario with its parameters and the axis values to cross.
#[derive(Debug, Clone)]
pub struct Entry {
    pub scenario: Scenario,
    /// The name in cell ids (the scenario's name unless a matrix entry
    /// gives a label).
    pub label: String,
    pub params: BTreeMap<String, String>,
    pub axes: AxisValues,
    pub repeat: u32,
    pub timeout_s: Option<u64>,
    pub memory_mib: Option<u32>,
    pub vcpus: Option<u32>,
}

/// The values of each axis for one entry. `None` in an optional axis means
/// the cell lacks it (the initramfs guest, no kubelet profile, no driver).
#[derive(Debug, Clone, PartialEq)]
pub struct AxisValues {
    pub kernels: Vec<String>,
    pub rootfs: Vec<Option<String>>,
    pub kubelets: Vec<Option<String>>,
    pub drivers: Vec<Option<Driver>>,
    /// Empty: the scenario's default version.
    pub cgroups: Vec<CgroupVersion>,
}

impl AxisValues {
    /// Optional-axis values from a list: empty means "the cell lacks it".
    pub fn optional<T: Clone>(values: &[T]) -> Vec<Option<T>> {
        if values.is_empty() {
            vec![None]
        } else {
            values.iter().cloned().map(Some).collect()
        }
    }
}

/// Patterns over a cell's fields; matches when every named field matches.
/// A field the cell lacks never matches a pattern.
#[derive(Debug, Clone, Default)]
pub struct Selector {
    pub fields: Vec<(Field, Pattern)>,
}

impl Selector {
    /// Whether the cell with `key` matches. The scenario pattern matches
    /// the label or the scenario's name.
    pub fn matches(&self, key: &CellKey) -> bool {
        self.fields.iter().all(|(f, p)| match f {
            Field::Scenario => p.matches(&key.label) || p.matches(&key.scenario),
            f => key.axis(*f).is_some_and(|v| p.matches(v)),
        })
    }
}

/// `[[include]]`: a cell to add with these values (absent: the entry's
/// first value of the axis), for the scenarios its pattern matches.
#[derive(Debug, Clone, Default)]
pub struct Include {
    pub scenario: Option<Pattern>,
    pub kernel: Option<String>,
    pub rootfs: Option<String>,
    pub kubelet: Option<String>,
    pub driver: Option<Driver>,
    pub cgroup: Option<CgroupVersion>,
}

/// An `[[expect]]` rule: the cells it selects, what they expect, the
/// kernels it no longer applies to, and where it came from.
#[derive(Debug, Clone, Default)]
pub struct Expectation {
    pub selector: Selector,
    pub expect: Expect,
    /// A version range over the kernel: cells in it are past the rule
    /// (`until`), which then no longer applies to them but is reported
    /// as stale.
    pub until: Option<Pattern>,
    pub source: RuleSource,
}

impl Expectation {
    /// Whether the cell's kernel is in the rule's `until` range.
    pub fn past_until(&self, key: &CellKey) -> bool {
        self.until.as_ref().is_some_and(|u| u.matches(&key.kernel))
    }
}

/// The expectation of the cell at `key`: the last rule that matches it
/// and whose `until` it has not passed (else `default`), with that rule's
/// source, and the matching rules it has passed.
pub fn expectation_of(
    rules: &[Expectation],
    default: Expect,
    key: &CellKey,
) -> (Expect, Option<RuleSource>, Vec<RuleSource>) {
    let mut stale = Vec::new();
    for r in rules.iter().rev().filter(|r| r.selector.matches(key)) {
        if r.past_until(key) {
            stale.push(r.source.clone());
        } else {
            return (r.expect, Some(r.source.clone()), stale);
        }
    }
    (default, None, stale)
}

/// Rules applied to every entry.
#[derive(Debug, Clone, Default)]
pub struct Rules {
    pub include: Vec<Include>,
    pub exclude: Vec<Selector>,
    /// The last matching rule wins.
    pub expect: Vec<Expectation>,
    /// What cells no expectation rule matches expect.
    pub default_expect: Expect,
}

/// Expands entries into cells, in entry order then axis order; a cell id
/// that appears twice is kept once.
pub fn expand(entries: &[Entry], rules: &Rules) -> Vec<PlannedCell> {
    let mut out = Vec::new();
    let mut seen = BTreeSet::new();
    for e in entries {
        let a = &e.axes;
        let cgroups = if a.cgroups.is_empty() {
            vec![e.scenario.cgroup(None)]
        } else {
            a.cgroups.clone()
        };
        let key = |kernel: &str, rootfs, kubelet, driver, cgroup| CellKey {
            scenario: e.scenario.name().to_string(),
            label: e.label.clone(),
            kernel: kernel.to_string(),
            rootfs,
            kubelet,
            driver,
            cgroup,
        };
        let mut candidates = Vec::new();
        for k in &a.kernels {
            for r in &a.rootfs {
                for kl in &a.kubelets {
                    for d in &a.drivers {
                        for c in &cgroups {
                            candidates.push((key(k, r.clone(), kl.clone(), *d, *c), false));
                        }
                    }
                }
            }
        }
        for inc in &rules.include {
            let names = [e.label.as_str(), e.scenario.name()];
            if inc
                .scenario
                .as_ref()
                .is_some_and(|p| !names.iter().any(|n| p.matches(n)))
            {
                continue;
            }
            let kernel = inc
                .kernel
                .clone()
                .or_else(|| a.kernels.first().cloned())
                .unwrap_or_default();
            let first = |v: &[Option<String>]| v.first().cloned().flatten();
            candidates.push((
                key(
                    &kernel,
                    inc.rootfs.clone().or_else(|| first(&a.rootfs)),
                    inc.kubelet.clone().or_else(|| first(&a.kubelets)),
                    inc.driver.or_else(|| a.drivers.first().copied().flatten()),
                    inc.cgroup
                        .or_else(|| cgroups.first().copied())
                        .unwrap_or(CgroupVersion::V1),
                ),
                true,
            ));
        }
        for (key, included) in candidates {
            if !included && rules.exclude.iter().any(|r| r.matches(&key)) {
                continue;
            }
            if !seen.insert(key.to_string()) {
                continue;
            }
            let (expect, rule, stale_rules) =
                expectation_of(&rules.expect, rules.default_expect, &key);
            out.push(PlannedCell {
                key,
                scenario: e.scenario.clone(),
                params: e.params.clone(),
                expect,
                rule,
                stale_rules,
                repeat: e.repeat.max(1),
                timeout_s: e.timeout_s,
                memory_mib: e.memory_mib,
                vcpus: e.vcpus,
            });
        }
    }
    out
}

/// `--filter EXPR`: whitespace-separated terms that must all match; a term
/// is `field=pattern` (field: scenario, kernel, rootfs, kubelet, driver,
/// cgroup) or a glob over the cell id. Patterns as in matrix rules.
#[derive(Debug, Clone)]
pub struct Filter {
    selector: Selector,
    /// Terms over the whole id: a bare word is a substring, a pattern with
    /// wildcards a glob.
    id_terms: Vec<String>,
}

impl std::str::FromStr for Filter {
    type Err = String;
    fn from_str(s: &str) -> Result<Filter, String> {
        let mut selector = Selector::default();
        let mut id_terms = Vec::new();
        for t in s.split_whitespace() {
            match t
                .split_once('=')
                .and_then(|(f, p)| Some((Field::from_name(f)?, p)))
            {
                Some((f, p)) => selector.fields.push((f, Pattern::parse(p)?)),
                None => id_terms.push(t.to_string()),
            }
        }
        Ok(Filter { selector, id_terms })
    }
}

impl Filter {
    pub fn matches(&self, key: &CellKey) -> bool {
        // A filter's scenario term names the label or the scenario, like
        // a rule; other fields must be present and match.
        let id = key.to_string();
        self.selector.matches(key)
            && self.id_terms.iter().all(|g| {
                if g.contains(['*', '?']) {
                    Pattern::Glob(g.clone()).matches(&id)
                } else {
                    id.contains(g.as_str())
                }
            })
    }
}
