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
/// longest destination first.
#[derive(Debug, Clone, Default)]
pub struct HostPaths(Vec<(std::path::PathBuf, std::path::PathBuf)>);

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
        Ok(Self(pairs))
    }

    pub fn to_host(&self, p: &std::path::Path) -> std::path::PathBuf {
        for (dest, src) in &self.0 {
            if let Ok(rest) = p.strip_prefix(dest) {
                return src.join(rest);
            }
        }
        p.to_path_buf()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_paths_translate_the_longest_matching_mount() {
        let h = HostPaths(vec![
            ("/workspace/sub".into(), "/srv/other".into()),
            ("/workspace".into(), "/home/me/proj/workspace".into()),
        ]);
        assert_eq!(
            h.to_host("/workspace/a".as_ref()),
            std::path::Path::new("/home/me/proj/workspace/a")
        );
        assert_eq!(
            h.to_host("/workspace/sub/x".as_ref()),
            std::path::Path::new("/srv/other/x")
        );
        assert_eq!(
            h.to_host("/elsewhere".as_ref()),
            std::path::Path::new("/elsewhere")
        );
        assert_eq!(
            HostPaths::default().to_host("/w".as_ref()),
            std::path::Path::new("/w")
        );
    }
}
