//! `repro merge`: join the results of several runs (CI shards) into one.
//! Cell folders are copied so the artefact paths stay valid.

use super::summary::SummaryError;
use super::RunSummary;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    #[error(transparent)]
    Summary(#[from] SummaryError),
    #[error("cell `{id}` appears in both {first} and {second}; shards must be disjoint")]
    Duplicate {
        id: String,
        first: PathBuf,
        second: PathBuf,
    },
    #[error("copying {from} to {to}: {source}")]
    Copy {
        from: PathBuf,
        to: PathBuf,
        source: std::io::Error,
    },
}

impl MergeError {
    /// The exit status this error means: unreadable or overlapping shard
    /// runs are bad input (2); failing to copy or write the merged run is
    /// infrastructure (3).
    pub fn exit_status(&self) -> crate::model::ExitStatus {
        match self {
            MergeError::Summary(e) => e.exit_status(),
            MergeError::Duplicate { .. } => crate::model::ExitStatus::BadInput,
            MergeError::Copy { .. } => crate::model::ExitStatus::Infrastructure,
        }
    }
}

/// Merges summaries (pure): cells concatenated in input order, metadata
/// from the first with the image hashes of all, `complete` only if all are.
pub fn merge(runs: &[(PathBuf, RunSummary)], run_id: &str) -> Result<RunSummary, MergeError> {
    let mut seen: BTreeMap<String, PathBuf> = BTreeMap::new();
    let mut out = runs[0].1.clone();
    out.run_id = run_id.to_string();
    out.cells.clear();
    for (dir, s) in runs {
        for c in &s.cells {
            if let Some(first) = seen.insert(c.id(), dir.clone()) {
                return Err(MergeError::Duplicate {
                    id: c.id(),
                    first,
                    second: dir.clone(),
                });
            }
            out.cells.push(c.clone());
        }
        for (k, v) in &s.meta.images {
            out.meta
                .images
                .entry(k.clone())
                .or_insert_with(|| v.clone());
        }
        out.complete &= s.complete;
        if s.started_at < out.started_at {
            out.started_at = s.started_at.clone();
        }
        if s.finished_at > out.finished_at {
            out.finished_at = s.finished_at.clone();
        }
    }
    Ok(out)
}

/// Reads each run folder, merges, copies the cell folders into `out` and
/// writes `out/summary.json`.
pub fn merge_dirs(dirs: &[PathBuf], out: &Path) -> Result<RunSummary, MergeError> {
    let mut runs = Vec::new();
    for d in dirs {
        runs.push((d.clone(), RunSummary::read(d)?));
    }
    let run_id = out
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_else(|| "merged".into());
    let merged = merge(&runs, &run_id)?;
    std::fs::create_dir_all(out).map_err(|source| MergeError::Copy {
        from: PathBuf::new(),
        to: out.to_path_buf(),
        source,
    })?;
    for (dir, s) in &runs {
        for c in &s.cells {
            for a in &c.attempts {
                let Some(cell_dir) = a.artifacts.dir.split('/').next().filter(|d| !d.is_empty())
                else {
                    continue;
                };
                let from = dir.join(cell_dir);
                if from.is_dir() {
                    copy_tree(&from, &out.join(cell_dir))?;
                }
            }
        }
    }
    merged.write(out)?;
    Ok(merged)
}

fn copy_tree(from: &Path, to: &Path) -> Result<(), MergeError> {
    let err = |source| MergeError::Copy {
        from: from.to_path_buf(),
        to: to.to_path_buf(),
        source,
    };
    std::fs::create_dir_all(to).map_err(err)?;
    for e in std::fs::read_dir(from).map_err(err)?.flatten() {
        let p = e.path();
        let t = to.join(e.file_name());
        if p.is_dir() {
            copy_tree(&p, &t)?;
        } else {
            std::fs::copy(&p, &t).map_err(|source| MergeError::Copy {
                from: p.clone(),
                to: t.clone(),
                source,
            })?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::summary::tests::summary;

    #[test]
    fn merges_disjoint_shards_and_copies_cells() {
        let tmp = tempfile::tempdir().unwrap();
        let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
        let mut s1 = summary();
        s1.cells[0].attempts[0].artifacts.dir = "c1/attempt-1".into();
        let mut s2 = summary();
        s2.cells[0].key = "other/kernel=5.10/cgroup=v1".parse().unwrap();
        s2.cells[0].attempts[0].artifacts.dir = "c2/attempt-1".into();
        s2.complete = false;
        for (d, s, c) in [(&a, &s1, "c1"), (&b, &s2, "c2")] {
            std::fs::create_dir_all(d.join(c).join("attempt-1")).unwrap();
            std::fs::write(d.join(c).join("attempt-1/console.log"), c).unwrap();
            s.write(d).unwrap();
        }
        let out = tmp.path().join("merged");
        let m = merge_dirs(&[a.clone(), b.clone()], &out).unwrap();
        assert_eq!(m.cells.len(), 2);
        assert!(!m.complete, "one shard was incomplete");
        assert_eq!(
            std::fs::read_to_string(out.join("c2/attempt-1/console.log")).unwrap(),
            "c2"
        );
        assert_eq!(RunSummary::read(&out).unwrap(), m);
        let e = merge_dirs(&[a.clone(), a], &tmp.path().join("x")).unwrap_err();
        assert!(e.to_string().contains("appears in both"), "{e}");
    }
}
