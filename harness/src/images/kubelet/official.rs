//! The official kubelet binary of a profile's `[binary]` table: downloaded from its URL
//! into the blob store only when the profile pins its sha256, verified, and copied as an
//! executable into `<cache>/kubelet/<sha256>/bin/kubelet`. A machine that cannot reach
//! the URL is told that `--kubelet 1.20` (built from Debian's source) works offline.

use std::os::unix::fs::PermissionsExt;
use std::time::Instant;

use super::{built_binary, io_err, BuildEvent, KubeletBuild, KubeletError};
use crate::images::cache;
use crate::images::debian::{Archive, DebianError};
use crate::kubelet::Binary;

/// Why a download failed, when it means "this machine cannot reach the URL" (as opposed
/// to a broken cache or a checksum mismatch, which are said as they are). Said without
/// the mirror advice of the archive's own errors: this URL is not the mirror's.
fn unreachable(e: &DebianError) -> Option<String> {
    match e {
        DebianError::Transport { url, message } => Some(format!("{url}: {message}")),
        DebianError::Http { url, status, .. } => Some(format!("{url} answered HTTP {status}")),
        DebianError::Offline { url, .. } => Some(format!("{url}: the network is off")),
        _ => None,
    }
}

/// The official binary of `profile`, from the cache or downloaded.
pub fn ensure_official(
    archive: &Archive,
    profile: &str,
    bin: &Binary,
    event: &dyn Fn(BuildEvent),
) -> Result<KubeletBuild, KubeletError> {
    let Some(sha) = &bin.sha256 else {
        return Err(KubeletError::NotPinned {
            version: bin.version.clone(),
            url: bin.url.clone(),
        });
    };
    let started = Instant::now();
    let what = format!("official kubelet {}", bin.version);
    let (blob, _) = archive
        .fetch_blob(
            &bin.url,
            Some(sha),
            None,
            &what,
            &super::download_progress(event, &what),
        )
        .map_err(|e| match unreachable(&e) {
            Some(cause) => KubeletError::OfficialUnreachable {
                version: bin.version.clone(),
                cause,
            },
            None => e.into(),
        })?;
    let cache = archive.cache();
    let dir = super::builds_dir(cache)?.join(sha);
    let built = cache.build_dir_once(&format!("kubelet-{sha}"), &dir, ".complete", |dir| {
        let out = dir.join("bin/kubelet");
        cache::create_dir_all(&dir.join("bin"))?;
        std::fs::copy(&blob, &out).map_err(io_err(&out))?;
        std::fs::set_permissions(&out, std::fs::Permissions::from_mode(0o755))
            .map_err(io_err(&out))?;
        let b = built_binary("kubelet", &out)?;
        let record = KubeletBuild {
            profile: profile.to_string(),
            origin: "official".into(),
            key: sha.clone(),
            dir: dir.to_path_buf(),
            binary: out.clone(),
            version: super::build::binary_version(&out)?,
            sha256: b.sha256.clone(),
            size: b.size,
            go_version: String::new(),
            source_version: bin.url.clone(),
            orig_sha256: String::new(),
            ldflags: String::new(),
            binaries: vec![b],
            pause: None,
            build_seconds: started.elapsed().as_secs_f64(),
            built: true,
        };
        cache::write_json(&dir.join("build.json"), &record)?;
        Ok::<_, KubeletError>(())
    })?;
    super::finished(&dir, built)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::images::cache::Cache;
    use crate::images::debian::mirror_from_value;

    fn profile_binary(url: &str, sha256: Option<String>) -> Binary {
        Binary {
            version: "1.23.16".into(),
            url: url.into(),
            sha256,
        }
    }

    #[test]
    fn an_unreachable_url_says_that_1_20_works_offline() {
        let cdir = tempfile::tempdir().unwrap();
        let m = mirror_from_value("file:///nonexistent", "test").unwrap();
        let a = Archive::new(m, Cache::new(cdir.path().into()));
        // A port nothing listens on: the connection is refused at once.
        let bin = profile_binary("http://127.0.0.1:9/kubelet", Some("ab".repeat(32)));
        let e = ensure_official(&a, "1.23", &bin, &|_| {})
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("the official kubelet 1.23.16 cannot be downloaded here (http://127.0.0.1:9/kubelet: ")
                && e.contains("`--kubelet 1.20`")
                && !e.contains("REPRO_DEBIAN_MIRROR"),
            "{e}"
        );
        // Offline: the same plain message.
        let a = a.with_offline(true);
        let e = ensure_official(&a, "1.23", &bin, &|_| {})
            .unwrap_err()
            .to_string();
        assert!(e.contains("cannot be downloaded here"), "{e}");
        // Unpinned: never downloaded.
        let e = ensure_official(
            &a,
            "1.23",
            &profile_binary("http://x/kubelet", None),
            &|_| {},
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("no pinned sha256"), "{e}");
    }
}
