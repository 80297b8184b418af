//! Paths as the runner sees them, mapped to paths on the Docker host.
//!
//! A runner inside a container (compose) starts *sibling* containers, whose
//! bind sources the engine resolves on the host; the runner learns the
//! mapping from its own container's mounts. Empty when the runner runs on
//! the host.

use crate::engine::Engine;

/// Why `--translate-mounts` could not learn this container's mounts.
#[derive(Debug, thiserror::Error)]
pub enum DiscoverError {
    #[error(
        "--translate-mounts: cannot read /etc/hostname to find this runner's container ({0}); run the runner in a container, or drop the flag"
    )]
    Hostname(#[source] std::io::Error),
    #[error(
        "--translate-mounts: cannot inspect this runner's own container `{name}` ({source}); run the runner in a container of the same engine, or drop the flag"
    )]
    Inspect {
        name: String,
        #[source]
        source: crate::engine::EngineError,
    },
}

/// Mount destinations in this container and their sources on the host,
/// longest destination first; `None` when the runner runs on the host and
/// paths are the engine's own.
#[derive(Debug, Clone, Default)]
pub struct HostPaths(Option<Vec<(std::path::PathBuf, std::path::PathBuf)>>);

/// A workspace outside every mount of the runner's container: the engine
/// would bind the host's directory of that name, which is not the one the
/// runner checked (it checked its own container's).
#[derive(Debug, thiserror::Error)]
#[error(
    "it is not under any mount of the runner's container, so the engine would bind the host's own {path}, which the runner never checked; mount that directory into the runner's container (compose: a volume at the same path) or choose a workspace under one of its mounts ({mounts})"
)]
pub struct Unmapped {
    pub path: String,
    pub mounts: String,
}

impl HostPaths {
    /// Reads this container's mounts (`--translate-mounts`, set by compose).
    pub async fn discover(engine: &dyn Engine) -> Result<Self, DiscoverError> {
        let hostname = std::fs::read_to_string("/etc/hostname").map_err(DiscoverError::Hostname)?;
        let name = hostname.trim();
        let me = engine
            .inspect_container(name)
            .await
            .map_err(|source| DiscoverError::Inspect {
                name: name.to_owned(),
                source,
            })?;
        let mut pairs: Vec<(std::path::PathBuf, std::path::PathBuf)> = me
            .mounts
            .unwrap_or_default()
            .into_iter()
            .filter_map(|m| Some((m.destination?.into(), m.source?.into())))
            .collect();
        // Longest destination first, so nested mounts win.
        pairs.sort_by_key(|(d, _)| std::cmp::Reverse(d.as_os_str().len()));
        tracing::info!(?pairs, "translating workspace paths to host paths");
        Ok(Self(Some(pairs)))
    }

    /// The engine's path for `p`: itself on the host; inside a container,
    /// its place under the longest mount holding it, or an error when no
    /// mount does (never `p` unchanged, which would name a host path).
    pub fn to_host(&self, p: &std::path::Path) -> Result<std::path::PathBuf, Unmapped> {
        let Some(pairs) = &self.0 else {
            return Ok(p.to_path_buf());
        };
        for (dest, src) in pairs {
            if let Ok(rest) = p.strip_prefix(dest) {
                return Ok(src.join(rest));
            }
        }
        let mounts: Vec<String> = pairs.iter().map(|(d, _)| d.display().to_string()).collect();
        Err(Unmapped {
            path: p.display().to_string(),
            mounts: if mounts.is_empty() {
                "it has none".into()
            } else {
                mounts.join(", ")
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_paths_translate_the_longest_matching_mount() {
        let h = HostPaths(Some(vec![
            ("/workspace/sub".into(), "/srv/other".into()),
            ("/workspace".into(), "/home/me/proj/workspace".into()),
        ]));
        assert_eq!(
            h.to_host("/workspace/a".as_ref()).unwrap(),
            std::path::Path::new("/home/me/proj/workspace/a")
        );
        assert_eq!(
            h.to_host("/workspace/sub/x".as_ref()).unwrap(),
            std::path::Path::new("/srv/other/x")
        );
        // On the host, a path is the engine's own.
        assert_eq!(
            HostPaths::default().to_host("/w".as_ref()).unwrap(),
            std::path::Path::new("/w")
        );
    }

    #[test]
    fn a_path_outside_every_mount_of_the_runners_container_is_refused() {
        // Passed on as is, `/etc` would be the host's /etc, not the
        // container's one the runner checked.
        let h = HostPaths(Some(vec![("/workspace".into(), "/home/me/w".into())]));
        for p in ["/etc", "/workspacex", "/"] {
            let e = h.to_host(p.as_ref()).unwrap_err().to_string();
            assert!(
                e.contains("not under any mount") && e.contains("(/workspace)"),
                "{p}: {e}"
            );
        }
        let none = HostPaths(Some(vec![])).to_host("/w".as_ref()).unwrap_err();
        assert!(none.to_string().contains("(it has none)"), "{none}");
    }
}
