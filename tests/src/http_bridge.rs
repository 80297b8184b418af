//! `bridge serve --http` as a plain child process (no MCP client attached):
//! started on a loopback port, its stderr kept in a file, killed on drop.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use anyhow::bail;

use crate::{bin, free_port};

/// A `bridge serve --http ADDR` child process; killed on drop. Its stderr
/// goes to `<db>.http-stderr` (a pipe nobody drains could block it).
pub struct HttpBridge {
    child: std::process::Child,
    pub addr: std::net::SocketAddr,
    stderr: PathBuf,
}

impl HttpBridge {
    /// Starts it on a free loopback port.
    pub fn start(db: &Path, extra: &[&str], env: &[(&str, &str)]) -> anyhow::Result<Self> {
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], free_port()));
        Self::start_on(db, addr, extra, env)
    }

    /// Starts it on `addr` with `serve` arguments `extra` and only `env` as
    /// its environment; returns once it accepts connections, or its stderr
    /// if it exits first.
    pub fn start_on(
        db: &Path,
        addr: std::net::SocketAddr,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> anyhow::Result<Self> {
        let mut stderr = db.as_os_str().to_owned();
        stderr.push(".http-stderr");
        let stderr = PathBuf::from(stderr);
        let mut cmd = std::process::Command::new(bin("bridge"));
        // Nothing from the caller's environment (BRIDGE_HTTP_TOKEN,
        // YOLO_MODE, …) may change what is being tested.
        cmd.env_clear()
            .env("BRIDGE_LOG", "warn")
            .envs(env.iter().copied())
            .arg("--db")
            .arg(db)
            .args(["serve", "--http", &addr.to_string()])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&stderr)?);
        let mut server = Self {
            child: cmd.spawn()?,
            addr,
            stderr,
        };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
        while std::net::TcpStream::connect(addr).is_err() {
            if let Some(status) = server.child.try_wait()? {
                bail!(
                    "bridge serve --http {addr} exited with {status}: {}",
                    server.stderr_text()
                );
            }
            if std::time::Instant::now() > deadline {
                bail!("bridge serve --http {addr} did not listen within 15 s");
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        Ok(server)
    }

    pub fn url(&self) -> String {
        format!("http://{}/mcp", self.addr)
    }

    pub fn stderr_text(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }
}

impl Drop for HttpBridge {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
