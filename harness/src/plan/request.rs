//! What `repro run` and `repro fixed-in` ask for on the command line:
//! scenarios × kernels (× rootfs × kubelet × driver), turned into entries
//! for [`super::expand`]. Cells of a request expect nothing (`any`).

use super::expand::{expand, AxisValues, Entry, Rules};
use super::PlannedCell;
use crate::model::{CgroupVersion, Driver, Expect};
use crate::scenario::{Scenario, ScenarioError};

/// Scenarios and axis values from the command line.
#[derive(Debug, Clone, Default)]
pub struct Request {
    pub scenarios: Vec<String>,
    pub kernels: Vec<String>,
    /// Root filesystems (empty: the initramfs guest).
    pub rootfs: Vec<String>,
    pub kubelets: Vec<String>,
    pub drivers: Vec<Driver>,
    pub params: Vec<(String, String)>,
    /// Empty: each scenario's default version.
    pub cgroup: Option<CgroupVersion>,
    pub memory_mib: Option<u32>,
    pub vcpus: Option<u32>,
    pub repeat: u32,
}

impl Request {
    /// The cells, in kernel × rootfs × kubelet × driver × scenario order
    /// (`scenarios` are the loaded `self.scenarios`, in the same order).
    pub fn cells(&self, scenarios: &[Scenario]) -> Result<Vec<PlannedCell>, ScenarioError> {
        let params: Vec<_> = scenarios
            .iter()
            .map(|sc| sc.params(&self.params))
            .collect::<Result<_, _>>()?;
        // One entry per combination, kernels outermost as the user listed
        // them (the first kernel's cells run first), scenarios innermost.
        let mut entries = Vec::new();
        for kernel in &self.kernels {
            for rootfs in AxisValues::optional(&self.rootfs) {
                for kubelet in AxisValues::optional(&self.kubelets) {
                    for driver in AxisValues::optional(&self.drivers) {
                        for (sc, params) in scenarios.iter().zip(&params) {
                            entries.push(Entry {
                                scenario: sc.clone(),
                                label: sc.name().to_string(),
                                params: params.clone(),
                                axes: AxisValues {
                                    kernels: vec![kernel.clone()],
                                    rootfs: vec![rootfs.clone()],
                                    kubelets: vec![kubelet.clone()],
                                    drivers: vec![driver],
                                    cgroups: vec![sc.cgroup(self.cgroup)],
                                },
                                repeat: self.repeat.max(1),
                                timeout_s: None,
                                memory_mib: self.memory_mib,
                                vcpus: self.vcpus,
                            });
                        }
                    }
                }
            }
        }
        let rules = Rules {
            default_expect: Expect::Any,
            ..Rules::default()
        };
        Ok(expand(&entries, &rules))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn scenario(name: &str) -> Scenario {
        Scenario::load(
            &Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../scenarios")
                .join(name),
        )
        .unwrap()
    }

    #[test]
    fn kernels_outermost_then_axes_then_scenarios() {
        let req = Request {
            scenarios: vec!["memcg-fill".into(), "kmem-leak".into()],
            kernels: vec!["5.10".into(), "6.1".into()],
            kubelets: vec!["1.9".into(), "1.27".into()],
            drivers: vec![Driver::Systemd],
            params: vec![],
            repeat: 0,
            ..Request::default()
        };
        let sc = [scenario("memcg-fill"), scenario("kmem-leak")];
        let cells = req.cells(&sc).unwrap();
        let ids: Vec<String> = cells.iter().map(|c| c.id()).collect();
        assert_eq!(cells.len(), 8, "{ids:#?}");
        assert!(ids[0].starts_with("memcg-fill/kernel=5.10/kubelet=1.9/driver=systemd/"));
        assert!(ids[1].starts_with("kmem-leak/kernel=5.10/kubelet=1.9/driver=systemd/"));
        assert!(ids[2].starts_with("memcg-fill/kernel=5.10/kubelet=1.27/"));
        assert!(ids[4].starts_with("memcg-fill/kernel=6.1/"));
        assert!(cells
            .iter()
            .all(|c| c.expect == Expect::Any && c.repeat == 1));
    }

    #[test]
    fn an_unknown_parameter_is_an_error() {
        let req = Request {
            scenarios: vec!["memcg-fill".into()],
            kernels: vec!["6.1".into()],
            params: vec![("no_such_param".into(), "1".into())],
            ..Request::default()
        };
        let e = req
            .cells(&[scenario("memcg-fill")])
            .unwrap_err()
            .to_string();
        assert!(e.contains("no_such_param"), "{e}");
    }

    #[test]
    fn the_asked_cgroup_version_wins_over_the_default() {
        let req = Request {
            scenarios: vec!["memcg-fill".into()],
            kernels: vec!["6.1".into()],
            cgroup: Some(CgroupVersion::V2),
            ..Request::default()
        };
        let cells = req.cells(&[scenario("memcg-fill")]).unwrap();
        assert_eq!(cells[0].key.cgroup, CgroupVersion::V2);
    }
}
