//! OCI image-layout archives (what `ctr images import` reads): a tar holding `oci-layout`,
//! `index.json` (one manifest, named by the `io.containerd.image.name` and
//! `org.opencontainers.image.ref.name` annotations) and `blobs/sha256/*`: the config, the
//! manifest and one gzip layer. Deterministic: the same files and name give the same bytes
//! (every mtime and owner is 0).

use std::collections::BTreeMap;
use std::io::Write;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub const MEDIA_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const MEDIA_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const MEDIA_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const MEDIA_LAYER: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const ANNOTATION_REF_NAME: &str = "org.opencontainers.image.ref.name";
pub const ANNOTATION_CONTAINERD_NAME: &str = "io.containerd.image.name";

/// One entry of the image's only layer, by absolute path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LayerFile {
    Dir,
    File { data: Vec<u8>, mode: u32 },
    Symlink(String),
}

/// An image: its name (`repro.local/pause:v1.20.2`), entrypoint and files.
#[derive(Debug, Clone)]
pub struct ImageSpec {
    pub name: String,
    pub entrypoint: Vec<String>,
    pub files: BTreeMap<String, LayerFile>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Descriptor {
    #[serde(rename = "mediaType")]
    pub media_type: String,
    pub digest: String,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Platform {
    pub architecture: String,
    pub os: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Index {
    #[serde(rename = "schemaVersion")]
    pub schema_version: u32,
    #[serde(rename = "mediaType")]
    pub media_type: String,
    pub manifests: Vec<Descriptor>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    #[serde(rename = "schemaVersion")]
    pub schema_version: u32,
    #[serde(rename = "mediaType")]
    pub media_type: String,
    pub config: Descriptor,
    pub layers: Vec<Descriptor>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunConfig {
    #[serde(rename = "Entrypoint")]
    pub entrypoint: Vec<String>,
    #[serde(rename = "Env")]
    pub env: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RootFs {
    #[serde(rename = "type")]
    pub kind: String,
    pub diff_ids: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Config {
    pub architecture: String,
    pub os: String,
    pub config: RunConfig,
    pub rootfs: RootFs,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Layout {
    #[serde(rename = "imageLayoutVersion")]
    pub image_layout_version: String,
}

fn json<T: Serialize>(v: &T) -> std::io::Result<Vec<u8>> {
    serde_json::to_vec(v).map_err(std::io::Error::other)
}

fn digest_of(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

fn header(size: u64, mode: u32, kind: tar::EntryType) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(kind);
    h.set_size(size);
    h.set_mode(mode);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h
}

fn append(b: &mut tar::Builder<impl Write>, path: &str, file: &LayerFile) -> std::io::Result<()> {
    match file {
        LayerFile::Dir => {
            let mut h = header(0, 0o755, tar::EntryType::Directory);
            b.append_data(&mut h, format!("{path}/"), std::io::empty())
        }
        LayerFile::File { data, mode } => {
            let mut h = header(data.len() as u64, *mode, tar::EntryType::Regular);
            b.append_data(&mut h, path, &data[..])
        }
        LayerFile::Symlink(target) => {
            let mut h = header(0, 0o777, tar::EntryType::Symlink);
            b.append_link(&mut h, path, target)
        }
    }
}

/// The uncompressed layer tar: every file under its path without the leading `/`, each
/// parent folder first.
pub fn layer_tar(files: &BTreeMap<String, LayerFile>) -> std::io::Result<Vec<u8>> {
    let mut all: BTreeMap<String, &LayerFile> = BTreeMap::new();
    for (path, f) in files {
        let rel = path.trim_start_matches('/');
        let mut parent = String::new();
        for part in rel
            .split('/')
            .collect::<Vec<_>>()
            .split_last()
            .map(|x| x.1)
            .unwrap_or(&[])
        {
            parent = if parent.is_empty() {
                part.to_string()
            } else {
                format!("{parent}/{part}")
            };
            all.entry(parent.clone()).or_insert(&LayerFile::Dir);
        }
        all.insert(rel.to_string(), f);
    }
    let mut b = tar::Builder::new(Vec::new());
    for (path, f) in &all {
        append(&mut b, path, f)?;
    }
    b.into_inner()
}

/// What `write_oci_archive` wrote, for checks and records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    pub manifest_digest: String,
    pub config_digest: String,
    pub layer_digest: String,
    pub diff_id: String,
}

/// Writes `spec` as an OCI image-layout tar to `out`.
pub fn write_oci_archive(spec: &ImageSpec, out: impl Write) -> std::io::Result<Written> {
    let layer = layer_tar(&spec.files)?;
    let diff_id = digest_of(&layer);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(&layer)?;
    let layer_gz = gz.finish()?;
    let config = Config {
        architecture: "amd64".into(),
        os: "linux".into(),
        config: RunConfig {
            entrypoint: spec.entrypoint.clone(),
            env: vec!["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into()],
        },
        rootfs: RootFs {
            kind: "layers".into(),
            diff_ids: vec![diff_id.clone()],
        },
    };
    let config_bytes = json(&config)?;
    let descriptor = |media: &str, bytes: &[u8]| Descriptor {
        media_type: media.into(),
        digest: digest_of(bytes),
        size: bytes.len() as u64,
        platform: None,
        annotations: BTreeMap::new(),
    };
    let manifest = Manifest {
        schema_version: 2,
        media_type: MEDIA_MANIFEST.into(),
        config: descriptor(MEDIA_CONFIG, &config_bytes),
        layers: vec![descriptor(MEDIA_LAYER, &layer_gz)],
    };
    let manifest_bytes = json(&manifest)?;
    let index = Index {
        schema_version: 2,
        media_type: MEDIA_INDEX.into(),
        manifests: vec![Descriptor {
            platform: Some(Platform {
                architecture: "amd64".into(),
                os: "linux".into(),
            }),
            annotations: [ANNOTATION_CONTAINERD_NAME, ANNOTATION_REF_NAME]
                .iter()
                .map(|k| (k.to_string(), spec.name.clone()))
                .collect(),
            ..descriptor(MEDIA_MANIFEST, &manifest_bytes)
        }],
    };
    let layout = Layout {
        image_layout_version: "1.0.0".into(),
    };
    let mut files: BTreeMap<String, LayerFile> = BTreeMap::new();
    let file = |data: Vec<u8>| LayerFile::File { data, mode: 0o644 };
    files.insert("oci-layout".into(), file(json(&layout)?));
    files.insert("index.json".into(), file(json(&index)?));
    for bytes in [&config_bytes, &manifest_bytes, &layer_gz] {
        let d = digest_of(bytes);
        let hex = d.trim_start_matches("sha256:");
        files.insert(format!("blobs/sha256/{hex}"), file(bytes.clone()));
    }
    let mut b = tar::Builder::new(out);
    let mut dirs_done = std::collections::BTreeSet::new();
    for (path, f) in &files {
        if let Some((dir, _)) = path.rsplit_once('/') {
            let mut p = String::new();
            for part in dir.split('/') {
                p = if p.is_empty() {
                    part.into()
                } else {
                    format!("{p}/{part}")
                };
                if dirs_done.insert(p.clone()) {
                    append(&mut b, &p, &LayerFile::Dir)?;
                }
            }
        }
        append(&mut b, path, f)?;
    }
    b.into_inner()?.flush()?;
    Ok(Written {
        manifest_digest: digest_of(&manifest_bytes),
        config_digest: digest_of(&config_bytes),
        layer_digest: digest_of(&layer_gz),
        diff_id,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn pause_spec() -> ImageSpec {
        let mut files = BTreeMap::new();
        files.insert(
            "/pause".to_string(),
            LayerFile::File {
                data: b"\x7fELF pause".to_vec(),
                mode: 0o755,
            },
        );
        files.insert("/bin/sh".to_string(), LayerFile::Symlink("busybox".into()));
        ImageSpec {
            name: "repro.local/pause:v1.20.2".into(),
            entrypoint: vec!["/pause".into()],
            files,
        }
    }

    /// The archive's files by path.
    fn unpack(bytes: &[u8]) -> BTreeMap<String, (tar::EntryType, Vec<u8>)> {
        let mut a = tar::Archive::new(bytes);
        a.entries()
            .unwrap()
            .map(|e| {
                let mut e = e.unwrap();
                let p = e.path().unwrap().to_string_lossy().into_owned();
                let mut data = Vec::new();
                e.read_to_end(&mut data).unwrap();
                (p, (e.header().entry_type(), data))
            })
            .collect()
    }

    fn blob<'a>(files: &'a BTreeMap<String, (tar::EntryType, Vec<u8>)>, digest: &str) -> &'a [u8] {
        let data = &files[&format!("blobs/sha256/{}", digest.trim_start_matches("sha256:"))].1;
        assert_eq!(digest_of(data), digest, "blob content matches its name");
        data
    }

    #[test]
    fn every_digest_matches_and_the_documents_have_the_oci_shape() {
        let mut out = Vec::new();
        let w = write_oci_archive(&pause_spec(), &mut out).unwrap();
        let files = unpack(&out);
        let layout: serde_json::Value = serde_json::from_slice(&files["oci-layout"].1).unwrap();
        assert_eq!(layout, serde_json::json!({"imageLayoutVersion": "1.0.0"}));
        assert_eq!(files["blobs/"].0, tar::EntryType::Directory);

        let index: serde_json::Value = serde_json::from_slice(&files["index.json"].1).unwrap();
        assert_eq!(index["schemaVersion"], 2);
        assert_eq!(index["mediaType"], MEDIA_INDEX);
        let m = &index["manifests"][0];
        assert_eq!(m["mediaType"], MEDIA_MANIFEST);
        assert_eq!(m["digest"], w.manifest_digest.as_str());
        assert_eq!(
            m["annotations"][ANNOTATION_REF_NAME],
            "repro.local/pause:v1.20.2"
        );
        assert_eq!(
            m["annotations"][ANNOTATION_CONTAINERD_NAME],
            "repro.local/pause:v1.20.2"
        );
        assert_eq!(
            m["platform"],
            serde_json::json!({"architecture": "amd64", "os": "linux"})
        );

        let manifest_bytes = blob(&files, &w.manifest_digest);
        assert_eq!(m["size"], manifest_bytes.len() as u64);
        let manifest: serde_json::Value = serde_json::from_slice(manifest_bytes).unwrap();
        assert_eq!(manifest["schemaVersion"], 2);
        assert_eq!(manifest["config"]["mediaType"], MEDIA_CONFIG);
        assert_eq!(manifest["config"]["digest"], w.config_digest.as_str());
        let layer = &manifest["layers"][0];
        assert_eq!(layer["mediaType"], MEDIA_LAYER);
        let layer_gz = blob(&files, layer["digest"].as_str().unwrap());
        assert_eq!(layer["size"], layer_gz.len() as u64);

        let config_bytes = blob(&files, &w.config_digest);
        assert_eq!(manifest["config"]["size"], config_bytes.len() as u64);
        let config: serde_json::Value = serde_json::from_slice(config_bytes).unwrap();
        assert_eq!(config["architecture"], "amd64");
        assert_eq!(config["os"], "linux");
        assert_eq!(
            config["config"]["Entrypoint"],
            serde_json::json!(["/pause"])
        );
        assert_eq!(config["rootfs"]["type"], "layers");

        // The layer: gunzipped, its digest is the config's diff_id, and it holds the files.
        let mut tar_bytes = Vec::new();
        flate2::read::GzDecoder::new(layer_gz)
            .read_to_end(&mut tar_bytes)
            .unwrap();
        assert_eq!(
            config["rootfs"]["diff_ids"][0],
            digest_of(&tar_bytes).as_str()
        );
        let inner = unpack(&tar_bytes);
        assert_eq!(
            inner["pause"],
            (tar::EntryType::Regular, b"\x7fELF pause".to_vec())
        );
        assert_eq!(inner["bin/"].0, tar::EntryType::Directory);
        assert_eq!(inner["bin/sh"].0, tar::EntryType::Symlink);
        let mut a = tar::Archive::new(&tar_bytes[..]);
        for e in a.entries().unwrap() {
            let e = e.unwrap();
            let h = e.header();
            assert_eq!((h.mtime().unwrap(), h.uid().unwrap()), (0, 0));
            if e.path().unwrap().to_str() == Some("pause") {
                assert_eq!(h.mode().unwrap(), 0o755);
            }
        }
    }

    #[test]
    fn the_archive_is_deterministic_and_named_by_its_parameter() {
        let (mut a, mut b) = (Vec::new(), Vec::new());
        write_oci_archive(&pause_spec(), &mut a).unwrap();
        write_oci_archive(&pause_spec(), &mut b).unwrap();
        assert_eq!(a, b);
        let other = ImageSpec {
            name: "k8s.example/pause:3.2".into(),
            ..pause_spec()
        };
        let mut c = Vec::new();
        let w = write_oci_archive(&other, &mut c).unwrap();
        let index: Index = serde_json::from_slice(&unpack(&c)["index.json"].1).unwrap();
        assert_eq!(
            index.manifests[0].annotations[ANNOTATION_REF_NAME],
            "k8s.example/pause:3.2"
        );
        assert_eq!(index.manifests[0].digest, w.manifest_digest);
    }
}
