//! Groups a run's cells into one table per scenario (kernels as rows,
//! kubelet × driver × cgroup × varying-parameter combinations as columns)
//! and names cells by those coordinates. Every table-shaped report
//! (Markdown, HTML, JUnit) walks these grids.

use super::{CellRecord, RunSummary};
use crate::model::{CgroupVersion, Driver};
use std::collections::{BTreeMap, BTreeSet};

/// Parameter names whose values differ between the given cells (they
/// become part of the column and the cell's name).
pub(crate) fn varying_params<'a>(cells: impl IntoIterator<Item = &'a CellRecord>) -> Vec<String> {
    let mut seen: BTreeMap<&str, BTreeSet<Option<&str>>> = BTreeMap::new();
    let cells: Vec<&CellRecord> = cells.into_iter().collect();
    for c in &cells {
        for k in c.params.keys() {
            seen.entry(k).or_default();
        }
    }
    for (k, values) in seen.iter_mut() {
        for c in &cells {
            values.insert(c.params.get(*k).map(String::as_str));
        }
    }
    seen.into_iter()
        .filter(|(_, v)| v.len() > 1)
        .map(|(k, _)| k.to_string())
        .collect()
}

/// `scenario[kernel=6.1,kubelet=1.29,driver=systemd,cgroup=v2]`, absent
/// axes left out, parameters that vary within the scenario appended.
pub(crate) fn case_name(c: &CellRecord, varying: &[String]) -> String {
    format!("{}[{}]", c.key.scenario, axes(c, varying).join(","))
}

/// `kernel=6.1`, `kubelet=…`, `driver=…`, `cgroup=…`, varying parameters.
fn axes(c: &CellRecord, varying: &[String]) -> Vec<String> {
    let mut v = vec![format!("kernel={}", c.key.kernel)];
    if let Some(k) = &c.key.kubelet {
        v.push(format!("kubelet={k}"));
    }
    if let Some(d) = &c.key.driver {
        v.push(format!("driver={d}"));
    }
    v.push(format!("cgroup={}", c.key.cgroup));
    for p in varying {
        if let Some(val) = c.params.get(p) {
            v.push(format!("{p}={val}"));
        }
    }
    v
}

/// A table column: one combination of kubelet × driver × cgroup (and
/// varying parameters).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Column {
    pub kubelet: Option<String>,
    pub driver: Option<Driver>,
    pub cgroup: CgroupVersion,
    pub params: Vec<(String, String)>,
}

impl Column {
    /// The column of cell `c` in a scenario whose `varying` parameters
    /// are given.
    fn of(c: &CellRecord, varying: &[String]) -> Column {
        Column {
            kubelet: c.key.kubelet.clone(),
            driver: c.key.driver,
            cgroup: c.key.cgroup,
            params: varying
                .iter()
                .filter_map(|p| c.params.get(p).map(|v| (p.clone(), v.clone())))
                .collect(),
        }
    }

    /// `kubelet 1.29 · systemd · v2`, or just `v2`.
    pub fn label(&self) -> String {
        let mut parts = vec![];
        if let Some(k) = &self.kubelet {
            parts.push(format!("kubelet {k}"));
        }
        if let Some(d) = &self.driver {
            parts.push(d.to_string());
        }
        parts.push(self.cgroup.to_string());
        for (k, v) in &self.params {
            parts.push(format!("{k}={v}"));
        }
        parts.join(" · ")
    }
}

/// One scenario's table: kernels as rows (first-appearance order), column
/// combinations as columns (first-appearance order), cells at crossings.
pub(crate) struct Grid<'a> {
    pub scenario: &'a str,
    pub varying: Vec<String>,
    pub kernels: Vec<&'a str>,
    pub columns: Vec<Column>,
    /// `cells[row][column]`: usually zero or one cell; more only if the
    /// summary holds duplicates.
    pub cells: Vec<Vec<Vec<&'a CellRecord>>>,
}

impl Grid<'_> {
    /// Every cell of the scenario in table order (row by row).
    pub fn iter(&self) -> impl Iterator<Item = &CellRecord> {
        self.cells.iter().flatten().flatten().copied()
    }

    /// `scenario · kernel · column`: a cell's label outside the table.
    pub fn label(&self, c: &CellRecord) -> String {
        format!(
            "{} · {} · {}",
            self.scenario,
            c.key.kernel,
            Column::of(c, &self.varying).label()
        )
    }
}

/// The index of `x` in `v`, appended first if missing.
fn index_of<T: PartialEq>(v: &mut Vec<T>, x: T) -> usize {
    match v.iter().position(|y| *y == x) {
        Some(i) => i,
        None => {
            v.push(x);
            v.len() - 1
        }
    }
}

/// The scenarios' grids, in first-appearance order.
pub(crate) fn grids(s: &RunSummary) -> Vec<Grid<'_>> {
    let mut scenarios: Vec<&str> = vec![];
    for c in &s.cells {
        index_of(&mut scenarios, c.key.scenario.as_str());
    }
    scenarios
        .into_iter()
        .map(|name| {
            let cells: Vec<&CellRecord> =
                s.cells.iter().filter(|c| c.key.scenario == name).collect();
            let varying = varying_params(cells.iter().copied());
            let mut kernels: Vec<&str> = vec![];
            let mut columns: Vec<Column> = vec![];
            let placed: Vec<(usize, usize, &CellRecord)> = cells
                .iter()
                .map(|c| {
                    let r = index_of(&mut kernels, c.key.kernel.as_str());
                    let k = index_of(&mut columns, Column::of(c, &varying));
                    (r, k, *c)
                })
                .collect();
            let mut grid = vec![vec![vec![]; columns.len()]; kernels.len()];
            for (r, k, c) in placed {
                grid[r][k].push(c);
            }
            Grid {
                scenario: name,
                varying,
                kernels,
                columns,
                cells: grid,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Outcome::*;
    use crate::report::fixtures::{cell, mixed};
    use crate::report::Expect;

    #[test]
    fn rows_and_columns_in_first_appearance_order() {
        let s = mixed();
        let g = grids(&s);
        assert_eq!(
            g.iter().map(|g| g.scenario).collect::<Vec<_>>(),
            ["memcg-fill", "pid-leak"]
        );
        assert_eq!(g[0].kernels, ["6.1", "6.12"]);
        let labels: Vec<String> = g[0].columns.iter().map(Column::label).collect();
        assert_eq!(labels, ["v1", "v2"]);
        assert_eq!(
            g[1].cells,
            [vec![vec![&s.cells[4]]], vec![vec![&s.cells[5]]]]
        );
        assert_eq!(g[0].iter().count(), 4);
    }

    #[test]
    fn names_and_labels_carry_every_axis() {
        let mut c = cell("kubelet-oom", "6.1", "v2", Expect::Any, &[Reproduced], 1);
        c.key.kubelet = Some("1.29".into());
        c.key.driver = Some(Driver::Systemd);
        c.params.insert("limit".into(), "10".into());
        let mut d = c.clone();
        d.params.insert("limit".into(), "20".into());
        let mut s = mixed();
        s.cells = vec![c, d];
        let g = grids(&s);
        assert_eq!(g[0].varying, ["limit"]);
        assert_eq!(
            case_name(&s.cells[0], &g[0].varying),
            "kubelet-oom[kernel=6.1,kubelet=1.29,driver=systemd,cgroup=v2,limit=10]"
        );
        assert_eq!(
            g[0].label(&s.cells[1]),
            "kubelet-oom · 6.1 · kubelet 1.29 · systemd · v2 · limit=20"
        );
    }
}
