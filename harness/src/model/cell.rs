//! A cell's coordinates, declared once: [`CellKey`] (scenario, label and
//! the axis values) with one `Display`/`FromStr` for the cell id, and the
//! typed axis values ([`CgroupVersion`], [`Driver`], [`AccelChoice`]).

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// Declares a closed set of names once: the enum, `as_str`, `ALL`,
/// `Display`, and a `FromStr` whose error lists the allowed names.
macro_rules! named_values {
    ($(#[$meta:meta])* $name:ident, $axis:literal, $expected:literal,
     { $($(#[$vmeta:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord,
            Serialize, Deserialize, clap::ValueEnum,
        )]
        #[serde(rename_all = "lowercase")]
        pub enum $name {
            $($(#[$vmeta])* $variant),+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = AxisError;
            fn from_str(s: &str) -> Result<$name, AxisError> {
                $name::ALL
                    .iter()
                    .copied()
                    .find(|v| v.as_str() == s)
                    .ok_or_else(|| AxisError {
                        axis: $axis,
                        value: s.to_string(),
                        expected: $expected,
                    })
            }
        }
    };
}

named_values!(
    /// The cgroup hierarchy a guest boots with.
    CgroupVersion, "cgroup version", "v1 or v2", { V1 = "v1", V2 = "v2" }
);

named_values!(
    /// The cgroup driver a kubelet (profile) lays pod cgroups out for.
    Driver, "cgroup driver", "cgroupfs or systemd",
    { Cgroupfs = "cgroupfs", Systemd = "systemd" }
);

named_values!(
    /// The accelerator a guest runs with.
    Accel, "accelerator", "kvm or tcg", { Kvm = "kvm", Tcg = "tcg" }
);

named_values!(
    /// The accelerator the user asked for (`--accel`, a profile's `accel`).
    AccelChoice, "accelerator", "auto, kvm or tcg",
    {
        /// KVM when a probe boot really works with it, else TCG.
        Auto = "auto",
        Kvm = "kvm",
        Tcg = "tcg",
    }
);

/// An axis value that is not one of the allowed ones.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{axis} `{value}`: use {expected}")]
pub struct AxisError {
    pub axis: &'static str,
    pub value: String,
    pub expected: &'static str,
}

/// Where one cell sits in the matrix. Its `Display` is the cell id:
/// `label/kernel=K[/rootfs=R][/kubelet=V][/driver=D]/cgroup=C`, naming only
/// the axes the cell has.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(from = "CellKeyWire", into = "CellKeyWire")]
pub struct CellKey {
    /// The scenario's folder name.
    pub scenario: String,
    /// The name in the id: the matrix entry's label, else the scenario.
    pub label: String,
    /// What the user named the kernel by (alias, version or path).
    pub kernel: String,
    /// Root filesystem (`None`: the initramfs guest).
    pub rootfs: Option<String>,
    /// Kubelet profile version.
    pub kubelet: Option<String>,
    pub driver: Option<Driver>,
    pub cgroup: CgroupVersion,
}

impl CellKey {
    /// The id (same as `to_string()`).
    pub fn id(&self) -> String {
        self.to_string()
    }

    /// The value of a named axis (`scenario`, `kernel`, `rootfs`,
    /// `kubelet`, `driver`, `cgroup`), `None` when the cell lacks it.
    pub fn axis(&self, field: Field) -> Option<&str> {
        match field {
            Field::Scenario => Some(&self.scenario),
            Field::Kernel => Some(&self.kernel),
            Field::Rootfs => self.rootfs.as_deref(),
            Field::Kubelet => self.kubelet.as_deref(),
            Field::Driver => self.driver.map(Driver::as_str),
            Field::Cgroup => Some(self.cgroup.as_str()),
        }
    }
}

/// The fields rules and filters can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    Scenario,
    Kernel,
    Rootfs,
    Kubelet,
    Driver,
    Cgroup,
}

impl Field {
    pub const ALL: [Field; 6] = [
        Field::Scenario,
        Field::Kernel,
        Field::Rootfs,
        Field::Kubelet,
        Field::Driver,
        Field::Cgroup,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Field::Scenario => "scenario",
            Field::Kernel => "kernel",
            Field::Rootfs => "rootfs",
            Field::Kubelet => "kubelet",
            Field::Driver => "driver",
            Field::Cgroup => "cgroup",
        }
    }

    pub fn from_name(s: &str) -> Option<Field> {
        Field::ALL.into_iter().find(|f| f.name() == s)
    }
}

impl fmt::Display for CellKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/kernel={}", self.label, self.kernel)?;
        if let Some(r) = &self.rootfs {
            write!(f, "/rootfs={r}")?;
        }
        if let Some(k) = &self.kubelet {
            write!(f, "/kubelet={k}")?;
        }
        if let Some(d) = self.driver {
            write!(f, "/driver={d}")?;
        }
        write!(f, "/cgroup={}", self.cgroup)
    }
}

/// A string that is not a cell id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CellIdError {
    #[error("`{0}` is not a cell id: expected LABEL/kernel=K[/rootfs=R][/kubelet=V][/driver=D]/cgroup=C")]
    Shape(String),
    #[error("in cell id `{id}`: {source}")]
    Axis { id: String, source: AxisError },
}

impl FromStr for CellKey {
    type Err = CellIdError;

    /// Parses an id. The id holds the label, not the scenario: the parsed
    /// key's `scenario` is the label. Kernel paths may contain `/`, so the
    /// optional axes are taken from the right.
    fn from_str(id: &str) -> Result<CellKey, CellIdError> {
        let shape = || CellIdError::Shape(id.to_string());
        let (label, rest) = id.split_once("/kernel=").ok_or_else(shape)?;
        let (mut rest, cgroup) = rest.rsplit_once("/cgroup=").ok_or_else(shape)?;
        let cgroup: CgroupVersion = cgroup.parse().map_err(|source| CellIdError::Axis {
            id: id.to_string(),
            source,
        })?;
        let mut take = |name: &str| -> Option<String> {
            let marker = format!("/{name}=");
            let (head, value) = rest.rsplit_once(marker.as_str())?;
            // Only a trailing segment (no `/` in the value) is this axis.
            if value.contains('/') {
                return None;
            }
            rest = head;
            Some(value.to_string())
        };
        let driver = take("driver");
        let kubelet = take("kubelet");
        let rootfs = take("rootfs");
        let driver = driver
            .map(|d| d.parse::<Driver>())
            .transpose()
            .map_err(|source| CellIdError::Axis {
                id: id.to_string(),
                source,
            })?;
        if label.is_empty() || rest.is_empty() {
            return Err(shape());
        }
        Ok(CellKey {
            scenario: label.to_string(),
            label: label.to_string(),
            kernel: rest.to_string(),
            rootfs,
            kubelet,
            driver,
            cgroup,
        })
    }
}

/// How a key looks in `summary.json` (the shape of schema version 1: the
/// id beside the axis values; the label is the id's first segment).
#[derive(Serialize, Deserialize)]
struct CellKeyWire {
    id: String,
    scenario: String,
    kernel: String,
    cgroup: CgroupVersion,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    rootfs: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    kubelet: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    driver: Option<Driver>,
}

impl From<CellKey> for CellKeyWire {
    fn from(k: CellKey) -> CellKeyWire {
        CellKeyWire {
            id: k.to_string(),
            scenario: k.scenario,
            kernel: k.kernel,
            cgroup: k.cgroup,
            rootfs: k.rootfs,
            kubelet: k.kubelet,
            driver: k.driver,
        }
    }
}

impl From<CellKeyWire> for CellKey {
    fn from(w: CellKeyWire) -> CellKey {
        let label =
            w.id.split_once("/kernel=")
                .map(|(l, _)| l.to_string())
                .unwrap_or_else(|| w.scenario.clone());
        CellKey {
            scenario: w.scenario,
            label,
            kernel: w.kernel,
            rootfs: w.rootfs,
            kubelet: w.kubelet,
            driver: w.driver,
            cgroup: w.cgroup,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    fn key(
        label: &str,
        kernel: &str,
        rootfs: Option<&str>,
        kubelet: Option<&str>,
        driver: Option<Driver>,
        cgroup: CgroupVersion,
    ) -> CellKey {
        CellKey {
            scenario: label.into(),
            label: label.into(),
            kernel: kernel.into(),
            rootfs: rootfs.map(String::from),
            kubelet: kubelet.map(String::from),
            driver,
            cgroup,
        }
    }

    #[rstest]
    #[case(
        key("memcg-fill", "6.1", None, None, None, CgroupVersion::V1),
        "memcg-fill/kernel=6.1/cgroup=v1"
    )]
    #[case(
        key(
            "kmem-leak",
            "5.10",
            None,
            Some("1.9"),
            Some(Driver::Cgroupfs),
            CgroupVersion::V1
        ),
        "kmem-leak/kernel=5.10/kubelet=1.9/driver=cgroupfs/cgroup=v1"
    )]
    #[case(
        key(
            "kmem-leak",
            "5.10",
            Some("bullseye"),
            None,
            Some(Driver::Systemd),
            CgroupVersion::V2
        ),
        "kmem-leak/kernel=5.10/rootfs=bullseye/driver=systemd/cgroup=v2"
    )]
    #[case(
        key(
            "x",
            "/boot/vmlinuz-3.10:/lib/modules/3.10",
            Some("trixie"),
            Some("1.20"),
            None,
            CgroupVersion::V1
        ),
        "x/kernel=/boot/vmlinuz-3.10:/lib/modules/3.10/rootfs=trixie/kubelet=1.20/cgroup=v1"
    )]
    fn ids_name_present_axes_only_and_parse_back(#[case] k: CellKey, #[case] id: &str) {
        assert_eq!(k.to_string(), id);
        assert_eq!(id.parse::<CellKey>().unwrap(), k);
    }

    #[rstest]
    #[case("memcg-fill")]
    #[case("memcg-fill/kernel=6.1")]
    #[case("memcg-fill/kernel=6.1/cgroup=v3")]
    #[case("memcg-fill/kernel=6.1/driver=podman/cgroup=v1")]
    #[case("/kernel=6.1/cgroup=v1")]
    fn bad_ids_are_errors(#[case] id: &str) {
        assert!(id.parse::<CellKey>().is_err(), "{id}");
    }

    #[test]
    fn the_summary_shape_keeps_the_id_and_the_label() {
        let mut k = key("big", "6.1", None, None, None, CgroupVersion::V2);
        k.scenario = "memcg-fill".into();
        let json = serde_json::to_value(&k).unwrap();
        assert_eq!(json["id"], "big/kernel=6.1/cgroup=v2");
        assert_eq!(json["scenario"], "memcg-fill");
        assert_eq!(json["cgroup"], "v2");
        assert!(json.get("driver").is_none());
        let back: CellKey = serde_json::from_value(json).unwrap();
        assert_eq!(back, k);
    }

    #[rstest]
    #[case("v1", Some(CgroupVersion::V1))]
    #[case("v2", Some(CgroupVersion::V2))]
    #[case("V2", None)]
    #[case("2", None)]
    fn cgroup_versions(#[case] s: &str, #[case] want: Option<CgroupVersion>) {
        assert_eq!(s.parse::<CgroupVersion>().ok(), want);
    }

    #[test]
    fn axis_errors_say_what_to_use() {
        let e = "podman".parse::<Driver>().unwrap_err().to_string();
        assert_eq!(e, "cgroup driver `podman`: use cgroupfs or systemd");
        let e = "hvf".parse::<AccelChoice>().unwrap_err().to_string();
        assert_eq!(e, "accelerator `hvf`: use auto, kvm or tcg");
    }
}
