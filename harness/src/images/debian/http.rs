//! The HTTP client of the harness (ureq): GET and conditional GET with bounded timeouts,
//! and `file://` URLs read from the local filesystem (a local mirror). Only `images` uses
//! the network, and within it only this file.

use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::Path;
use std::time::Duration;

use super::{DebianError, Result};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
const READ_TIMEOUT: Duration = Duration::from_secs(60);

/// The HTTP client's connection pool and settings.
pub(super) type Agent = ureq::Agent;

/// The agent every download uses.
pub(super) fn agent() -> Agent {
    ureq::AgentBuilder::new()
        .timeout_connect(CONNECT_TIMEOUT)
        .timeout_read(READ_TIMEOUT)
        .user_agent(concat!("repro/", env!("CARGO_PKG_VERSION")))
        .build()
}

/// Outcome of a conditional GET.
pub(super) enum Fetched {
    NotModified,
    Body {
        reader: Box<dyn Read + Send>,
        length: Option<u64>,
        etag: Option<String>,
        last_modified: Option<String>,
    },
}

/// GET with optional `If-None-Match` / `If-Modified-Since`. `file://` URLs are read from
/// the local filesystem (a local mirror).
pub(super) fn get(
    agent: &Agent,
    url: &str,
    cond: (Option<String>, Option<String>),
) -> Result<Fetched> {
    if let Some(path) = url.strip_prefix("file://") {
        let p = Path::new(path);
        let f = File::open(p).map_err(|e| {
            if e.kind() == io::ErrorKind::NotFound {
                DebianError::Http {
                    url: url.to_string(),
                    status: 404,
                    hint: not_found_hint(url),
                }
            } else {
                DebianError::Transport {
                    url: url.to_string(),
                    message: e.to_string(),
                }
            }
        })?;
        let length = f.metadata().ok().map(|m| m.len());
        return Ok(Fetched::Body {
            reader: Box::new(BufReader::new(f)),
            length,
            etag: None,
            last_modified: None,
        });
    }
    let mut req = agent.get(url);
    if let Some(e) = &cond.0 {
        req = req.set("If-None-Match", e);
    }
    if let Some(m) = &cond.1 {
        req = req.set("If-Modified-Since", m);
    }
    match req.call() {
        Ok(resp) if resp.status() == 304 => Ok(Fetched::NotModified),
        Ok(resp) => {
            let length = resp.header("Content-Length").and_then(|v| v.parse().ok());
            let etag = resp.header("ETag").map(str::to_string);
            let last_modified = resp.header("Last-Modified").map(str::to_string);
            Ok(Fetched::Body {
                reader: Box::new(resp.into_reader()),
                length,
                etag,
                last_modified,
            })
        }
        Err(ureq::Error::Status(status, _)) => Err(DebianError::Http {
            url: url.to_string(),
            status,
            hint: if status == 404 {
                not_found_hint(url)
            } else {
                "the server refused or failed; retry later or use another mirror".to_string()
            },
        }),
        Err(ureq::Error::Transport(t)) => {
            // ureq's own text repeats the URL, which the error already names.
            let mut message = t.kind().to_string();
            if let Some(m) = t.message() {
                message = format!("{message}: {m}");
            }
            if let Some(src) = std::error::Error::source(&t) {
                message = format!("{message}: {src}");
            }
            Err(DebianError::Transport {
                url: url.to_string(),
                message,
            })
        }
    }
}

fn not_found_hint(url: &str) -> String {
    if url.contains("/dists/") {
        "the mirror has no such suite/component: check the kernel manifest's `suites` and that the mirror carries them".to_string()
    } else {
        "the mirror no longer has this file (the index may be newer or older than the pool): retry, and if it persists refresh the index or use another mirror".to_string()
    }
}
