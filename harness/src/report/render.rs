//! Writes every report file of a run from its [`RunSummary`]:
//! `summary.json`, `junit.xml`, `summary.md` and `report.html`, each
//! atomically. `repro report DIR` re-renders them from `DIR/summary.json`.

use super::summary::SummaryError;
use super::RunSummary;
use crate::fsutil::atomic_write;
use std::path::{Path, PathBuf};

/// The report files, in the order [`render_all`] writes them.
pub const FILES: [&str; 4] = ["summary.json", "junit.xml", "summary.md", "report.html"];

/// Renders all reports of `s` into `dir` (created if missing) and returns
/// the paths written.
pub fn render_all(s: &RunSummary, dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    s.write(dir).map_err(|e| match e {
        SummaryError::Write { source, .. } | SummaryError::Read { source, .. } => source,
        other => std::io::Error::other(other.to_string()),
    })?;
    let rendered = [
        (
            FILES[1],
            super::junit::junit(s).map_err(|e| std::io::Error::other(e.to_string()))?,
        ),
        (FILES[2], super::markdown::markdown(s)),
        (FILES[3], super::html::html(s)),
    ];
    let mut paths = vec![dir.join(FILES[0])];
    for (name, text) in rendered {
        let path = dir.join(name);
        atomic_write(&path, text.as_bytes())?;
        paths.push(path);
    }
    Ok(paths)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::fixtures::mixed;

    #[test]
    fn writes_every_report_and_rereads_the_summary() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("run");
        let s = mixed();
        let paths = render_all(&s, &dir).unwrap();
        let names: Vec<String> = paths
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, FILES);
        for p in &paths {
            assert!(std::fs::metadata(p).unwrap().len() > 100, "{}", p.display());
        }
        let back = RunSummary::read(&dir).unwrap();
        assert_eq!(back, s);
        // Re-rendering from the summary read back gives the same files.
        let again = tmp.path().join("again");
        render_all(&back, &again).unwrap();
        for name in FILES {
            assert_eq!(
                std::fs::read(dir.join(name)).unwrap(),
                std::fs::read(again.join(name)).unwrap(),
                "{name}"
            );
        }
        // No temporary files left behind.
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), FILES.len());
    }

    #[test]
    fn fails_on_an_unwritable_folder() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("file");
        std::fs::write(&file, "x").unwrap();
        assert!(render_all(&mixed(), &file).is_err());
    }
}
