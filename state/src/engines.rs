//! The Docker engines a runner uses: how the operator names them (the
//! config file's `[[engine]]` list or the runner's `--engine` flags), and
//! the state each runner reports for them in the database, where
//! `bridge health`, `bridge list` and the console read it. The bridge never
//! talks to an engine; it only shows what the runner wrote.

use std::path::PathBuf;

use rusqlite::{Connection, params};
use serde::{Deserialize, Serialize};

use crate::clock::Millis;
use crate::fileperm::{Kind, PermError, check_file};
use crate::jobs::LEASE_MS;
use crate::redact::Redacted;

/// The engine a runner uses when none is configured: this host's socket.
pub const DEFAULT_NAME: &str = "local";

/// One `[[engine]]` entry (or one `--engine` flag).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct EngineConfig {
    /// Shown to the operator and put on every container as the
    /// `mcp-bridge.engine` label: 1-32 of `a-z`, `0-9`, `-`, `_`.
    pub name: String,
    /// `unix:///var/run/docker.sock`, `tcp://HOST:PORT` (TLS required) or
    /// `ssh://USER@HOST` (the system `ssh` with the user's ssh config; the
    /// engine host needs the `docker` CLI).
    pub url: String,
    /// The engine shares this host's filesystem, so it may bind-mount a
    /// workspace. Default: true for a unix socket, false otherwise.
    pub local: Option<bool>,
    /// Jobs run at the same time on this engine [default: the runner's
    /// `--max-parallel`].
    pub max_parallel: Option<usize>,
    /// Warm containers kept per configuration on this engine [default: the
    /// runner's `--pool-size`].
    pub pool_size: Option<usize>,
    /// TLS for `tcp://`: the CA that signed the engine's certificate (a PEM
    /// file, trusted alone; or `system` for the system's trusted roots), and
    /// this client's certificate and key (PEM files).
    pub ca: Option<PathBuf>,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    /// For `ssh://`: the private key to log in with, and no other
    /// [default: whatever the user's ssh config and agent offer].
    pub identity: Option<PathBuf>,
}

/// How the runner reaches an engine, decided from its URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transport {
    Unix(PathBuf),
    Tls {
        addr: String,
        ca: CaRoots,
        cert: PathBuf,
        key: PathBuf,
    },
    /// Through the system `ssh` (the runner's Docker client's `ssh` feature), which runs
    /// `docker system dial-stdio` on the engine host.
    Ssh {
        /// `ssh://USER@HOST` or `ssh://HOST`, as given.
        url: String,
        identity: Option<PathBuf>,
    },
}

/// Whom a `tcp://` engine's certificate must chain to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CaRoots {
    /// The CA certificates in this PEM file and nothing else, as
    /// `docker --tlsverify --tlscacert` trusts: a certificate any public CA
    /// issued for the engine's address is refused.
    File(PathBuf),
    /// The system's trusted roots (`ca = "system"`; `SSL_CERT_FILE` and
    /// `SSL_CERT_DIR` are honoured): for an engine whose certificate comes
    /// from a public CA. Chosen explicitly, never a fallback.
    System,
}

/// The `ca` value that selects [`CaRoots::System`] (a file of that name is
/// `./system`).
pub const CA_SYSTEM: &str = "system";

impl EngineConfig {
    /// This host's engine, as a runner without configuration uses it.
    pub fn default_local() -> Self {
        Self {
            name: DEFAULT_NAME.into(),
            url: "unix:///var/run/docker.sock".into(),
            local: Some(true),
            max_parallel: None,
            pool_size: None,
            ca: None,
            cert: None,
            key: None,
            identity: None,
        }
    }

    /// Parses one `--engine` flag: comma-separated `key=value` pairs with
    /// the config file's keys, e.g.
    /// `name=b,url=tcp://10.0.0.2:2376,ca=ca.pem,cert=cert.pem,key=key.pem`.
    pub fn parse_flag(s: &str) -> Result<Self, String> {
        let mut table = toml::Table::new();
        for pair in s.split(',').filter(|p| !p.trim().is_empty()) {
            let Some((k, v)) = pair.split_once('=') else {
                return Err(format!(
                    "--engine `{s}`: `{pair}` is not key=value; write e.g. `name=b,url=tcp://HOST:2376,ca=ca.pem,cert=cert.pem,key=key.pem`"
                ));
            };
            let (k, v) = (k.trim(), v.trim());
            let value = match k {
                "local" => toml::Value::Boolean(v.parse().map_err(|_| {
                    format!("--engine `{s}`: local must be true or false, not `{v}`")
                })?),
                "max_parallel" | "pool_size" => toml::Value::Integer(v.parse().map_err(|_| {
                    format!("--engine `{s}`: {k} must be a whole number, not `{v}`")
                })?),
                _ => toml::Value::String(v.into()),
            };
            if table.insert(k.into(), value).is_some() {
                return Err(format!("--engine `{s}`: `{k}` is given twice"));
            }
        }
        table
            .try_into()
            .map_err(|e: toml::de::Error| format!("--engine `{s}`: {}", e.message()))
    }

    /// Whether workspaces may be bind-mounted from this host.
    pub fn is_local(&self) -> bool {
        self.local.unwrap_or(self.url.starts_with("unix://"))
    }

    /// Checks the entry and says how to reach the engine. Plain `tcp://`
    /// is refused: anyone who can reach that port could run containers.
    pub fn transport(&self) -> Result<Transport, String> {
        let who = format!("engine `{}`", self.name);
        let tls = [&self.ca, &self.cert, &self.key];
        if self.identity.is_some() && !self.url.starts_with("ssh://") {
            return Err(format!("{who}: identity is for ssh:// engines"));
        }
        if let Some(path) = self.url.strip_prefix("unix://") {
            if tls.iter().any(|f| f.is_some()) {
                return Err(format!(
                    "{who}: ca, cert and key are for tcp:// engines; a unix socket takes none"
                ));
            }
            if !path.starts_with('/') {
                return Err(format!(
                    "{who}: url `{}` needs an absolute socket path, e.g. unix:///var/run/docker.sock",
                    self.url
                ));
            }
            return Ok(Transport::Unix(path.into()));
        }
        if let Some(addr) = self.url.strip_prefix("tcp://") {
            let (Some(ca), Some(cert), Some(key)) = (&self.ca, &self.cert, &self.key) else {
                return Err(format!(
                    "{who}: a tcp:// engine needs TLS: set ca, cert and key (PEM files; see `dockerd --tlsverify`)"
                ));
            };
            if addr.is_empty() || addr.contains('/') {
                return Err(format!("{who}: url `{}` must be tcp://HOST:PORT", self.url));
            }
            let ca = if ca.as_os_str() == CA_SYSTEM {
                CaRoots::System
            } else {
                CaRoots::File(ca.clone())
            };
            return Ok(Transport::Tls {
                addr: addr.into(),
                ca,
                cert: cert.clone(),
                key: key.clone(),
            });
        }
        if let Some(dest) = self.url.strip_prefix("ssh://") {
            if tls.iter().any(|f| f.is_some()) {
                return Err(format!(
                    "{who}: ca, cert and key are for tcp:// engines; an ssh:// engine logs in with `identity` or your ssh config"
                ));
            }
            check_ssh_destination(&who, dest)?;
            return Ok(Transport::Ssh {
                url: self.url.clone(),
                identity: self.identity.clone(),
            });
        }
        Err(format!(
            "{who}: url `{}` must start with unix://, tcp:// (with TLS) or ssh://",
            self.url
        ))
    }
}

/// `USER@HOST` or `HOST` of an `ssh://` URL: plain names only. The host
/// reaches `ssh`'s command line, so nothing there may read as an option
/// (`-oProxyCommand=…`); and `ssh` takes no `HOST:PORT` (the Docker client hands it
/// the URL's authority as is), so a port belongs in the ssh config.
fn check_ssh_destination(who: &str, dest: &str) -> Result<(), String> {
    let (user, host) = match dest.rsplit_once('@') {
        Some((user, host)) => (Some(user), host),
        None => (None, dest),
    };
    let plain = |s: &str| {
        !s.is_empty()
            && !s.starts_with('-')
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
    };
    if host.contains(':') && !host.contains('/') {
        return Err(format!(
            "{who}: ssh:// takes no port; give the host a `Host` entry with `Port` in your ssh config (~/.ssh/config) and use ssh://USER@THAT-NAME"
        ));
    }
    if !plain(host) || !user.is_none_or(plain) {
        return Err(format!(
            "{who}: url `ssh://{}` must be ssh://USER@HOST or ssh://HOST (letters, digits, `.`, `-`, `_`; not starting with `-`)",
            dest.escape_debug()
        ));
    }
    Ok(())
}

impl Transport {
    /// The files the client reads when it connects (TLS certificates, an
    /// ssh identity) can be read, and no other user can read the private
    /// ones or change any of them (a writable CA file lets its writer vouch
    /// for any engine; a readable key lets its reader be the runner).
    /// The error names the first file that fails and the fix.
    pub fn check_files(&self) -> Result<(), EngineFileError> {
        let files: Vec<(&PathBuf, Kind)> = match self {
            Transport::Unix(_) => vec![],
            Transport::Tls { ca, cert, key, .. } => {
                let ca = match ca {
                    CaRoots::File(ca) => Some((ca, Kind::Trusted)),
                    CaRoots::System => None,
                };
                ca.into_iter()
                    .chain([(cert, Kind::Trusted), (key, Kind::Secret)])
                    .collect()
            }
            Transport::Ssh { identity, .. } => identity.iter().map(|i| (i, Kind::Secret)).collect(),
        };
        for (file, kind) in files {
            std::fs::File::open(file).map_err(|source| EngineFileError::Unreadable {
                path: file.clone(),
                source,
            })?;
            check_file(file, kind)?;
        }
        Ok(())
    }
}

/// Why an engine's client files cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum EngineFileError {
    #[error(
        "cannot read {path} (an engine's ca, cert and key must be readable PEM files, its identity a readable ssh private key): {source}"
    )]
    Unreadable {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{0} (an engine's key and ssh identity must be private to the runner's user; its ca and cert writable only by that user or root)"
    )]
    Permissions(#[from] PermError),
}

/// Checks a runner's engine list: valid names, each once, usable URLs.
pub fn validate(engines: &[EngineConfig]) -> Result<(), String> {
    if engines.is_empty() {
        return Err(
            "no engine configured: remove the empty engine list or add an `[[engine]]`".into(),
        );
    }
    for (i, e) in engines.iter().enumerate() {
        let ok = (1..=32).contains(&e.name.len())
            && e.name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
        if !ok {
            return Err(format!(
                "engine name `{}` is invalid: use 1-32 of a-z, 0-9, - and _",
                e.name.escape_debug()
            ));
        }
        if engines[..i].iter().any(|o| o.name == e.name) {
            return Err(format!("engine name `{}` is used twice", e.name));
        }
        if e.max_parallel == Some(0) {
            return Err(format!(
                "engine `{}`: max_parallel must be at least 1",
                e.name
            ));
        }
        e.transport()?;
    }
    Ok(())
}

/// What one runner last reported about one of its engines.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EngineStatus {
    pub runner_id: String,
    pub name: String,
    /// The URL, redacted.
    pub endpoint: String,
    pub local: bool,
    pub up: bool,
    /// When it last went up or down.
    pub since: Millis,
    /// Why it is down (redacted), while it is.
    pub error: Option<String>,
    /// When the runner tries a down engine again.
    pub next_retry_at: Option<Millis>,
    pub running: i64,
    pub max_parallel: i64,
    pub warm: i64,
    pub updated_at: Millis,
}

/// What a runner writes about one engine; the text fields are redacted.
#[derive(Debug, Clone)]
pub struct Report {
    pub name: String,
    pub endpoint: Redacted,
    pub local: bool,
    pub up: bool,
    pub since: Millis,
    pub error: Option<Redacted>,
    pub next_retry_at: Option<Millis>,
    pub running: usize,
    pub max_parallel: usize,
    pub warm: usize,
}

/// Replaces `runner_id`'s rows with `reports` (one transaction).
pub fn report(
    conn: &mut Connection,
    runner_id: &str,
    reports: &[Report],
    now: Millis,
) -> rusqlite::Result<()> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    tx.execute("DELETE FROM engines WHERE runner_id = ?1", [runner_id])?;
    for r in reports {
        tx.execute(
            "INSERT INTO engines (runner_id, name, endpoint, local, up, since, error, next_retry_at,
                                  running, max_parallel, warm, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
            params![
                runner_id,
                r.name,
                r.endpoint.as_str(),
                r.local,
                r.up,
                r.since,
                r.error.as_ref().map(|e| e.as_str()),
                r.next_retry_at,
                r.running as i64,
                r.max_parallel as i64,
                r.warm as i64,
                now
            ],
        )?;
    }
    tx.commit()
}

/// The engines of runners whose heartbeat is fresh, by runner then name.
pub fn statuses(conn: &Connection, now: Millis) -> rusqlite::Result<Vec<EngineStatus>> {
    conn.prepare(
        "SELECT e.runner_id, e.name, e.endpoint, e.local, e.up, e.since, e.error, e.next_retry_at,
                e.running, e.max_parallel, e.warm, e.updated_at
         FROM engines e JOIN runners r ON r.id = e.runner_id
         WHERE r.heartbeat_at > ?1 ORDER BY e.runner_id, e.name",
    )?
    .query_map([now - LEASE_MS], |r| {
        Ok(EngineStatus {
            runner_id: r.get(0)?,
            name: r.get(1)?,
            endpoint: r.get(2)?,
            local: r.get(3)?,
            up: r.get(4)?,
            since: r.get(5)?,
            error: r.get(6)?,
            next_retry_at: r.get(7)?,
            running: r.get(8)?,
            max_parallel: r.get(9)?,
            warm: r.get(10)?,
            updated_at: r.get(11)?,
        })
    })?
    .collect()
}

/// One line per engine for the operator, e.g. `b down 12 s (retry in 4 s): …`.
pub fn summary(s: &EngineStatus, now: Millis) -> String {
    // Down for whole seconds elapsed; a retry in seconds rounded up.
    let secs = |ms: Millis| (ms.max(0) + 999) / 1000;
    if s.up {
        format!(
            "{} up · {}/{} running · {} warm · {}{}",
            s.name,
            s.running,
            s.max_parallel,
            s.warm,
            s.endpoint,
            if s.local { " (local)" } else { "" }
        )
    } else {
        let retry = s
            .next_retry_at
            .map(|t| format!(", retry in {} s", secs(t - now)))
            .unwrap_or_default();
        format!(
            "{} DOWN for {} s{retry} · {}: {}",
            s.name,
            (now - s.since).max(0) / 1000,
            s.endpoint,
            s.error.as_deref().unwrap_or("no reason recorded")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(url: &str) -> EngineConfig {
        EngineConfig {
            url: url.into(),
            name: "b".into(),
            ..EngineConfig::default_local()
        }
    }

    #[test]
    fn a_flag_reads_like_a_config_entry() {
        let e = EngineConfig::parse_flag(
            "name=b,url=tcp://127.0.0.1:2376,ca=/c/ca.pem,cert=/c/cert.pem,key=/c/key.pem,local=true,max_parallel=3",
        )
        .unwrap();
        assert_eq!(e.name, "b");
        assert_eq!(e.max_parallel, Some(3));
        assert!(e.is_local());
        assert!(
            matches!(e.transport(), Ok(Transport::Tls { addr, .. }) if addr == "127.0.0.1:2376")
        );
    }

    #[test]
    fn a_tls_engine_trusts_its_ca_file_alone_unless_system_is_asked_for() {
        let tls = |ca: &str| {
            EngineConfig::parse_flag(&format!(
                "name=b,url=tcp://h:2376,ca={ca},cert=/c/cert.pem,key=/c/key.pem"
            ))
            .unwrap()
            .transport()
            .unwrap()
        };
        let Transport::Tls { ca, .. } = tls("/c/ca.pem") else {
            panic!()
        };
        assert_eq!(ca, CaRoots::File("/c/ca.pem".into()));
        let Transport::Tls { ca, .. } = tls("./system") else {
            panic!()
        };
        assert_eq!(ca, CaRoots::File("./system".into()));
        let system = tls("system");
        assert!(matches!(
            system,
            Transport::Tls {
                ca: CaRoots::System,
                ..
            }
        ));
        // Only the client's own files must be readable then.
        let Err(EngineFileError::Unreadable { path, .. }) = system.check_files() else {
            panic!("/c/cert.pem does not exist")
        };
        assert_eq!(path, PathBuf::from("/c/cert.pem"));
    }

    #[test]
    fn an_engine_key_others_can_read_or_a_ca_others_can_write_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let file = |name: &str, mode: u32| {
            let p = dir.path().join(name);
            std::fs::write(&p, b"-----BEGIN-----").unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
            p.display().to_string()
        };
        let tls = |ca: &str, cert: &str, key: &str| {
            EngineConfig::parse_flag(&format!(
                "name=b,url=tcp://h:2376,ca={ca},cert={cert},key={key}"
            ))
            .unwrap()
            .transport()
            .unwrap()
            .check_files()
        };
        let (ca, cert, key) = (file("ca", 0o644), file("cert", 0o644), file("key", 0o600));
        tls(&ca, &cert, &key).unwrap();
        let open_key = file("open-key", 0o644);
        let writable_ca = file("writable-ca", 0o666);
        let writable_cert = file("writable-cert", 0o664);
        for (got, names) in [
            (
                tls(&ca, &cert, &open_key),
                "open-key is readable by group or others",
            ),
            (
                tls(&writable_ca, &cert, &key),
                "writable-ca is writable by group or others",
            ),
            (
                tls(&ca, &writable_cert, &key),
                "writable-cert is writable by group or others",
            ),
        ] {
            let e = got.unwrap_err().to_string();
            assert!(e.contains(names) && e.contains("chmod"), "{e}");
        }
        let ssh = EngineConfig::parse_flag(&format!("name=s,url=ssh://u@h,identity={open_key}"))
            .unwrap()
            .transport()
            .unwrap();
        let e = ssh.check_files().unwrap_err().to_string();
        assert!(e.contains("readable by group or others"), "{e}");
    }

    #[test]
    fn bad_flags_say_what_is_wrong() {
        for (flag, says) in [
            ("name=b,url", "not key=value"),
            ("name=b,url=unix:///s,name=c", "given twice"),
            ("name=b,url=unix:///s,local=yes", "true or false"),
            ("name=b,url=unix:///s,max_parallel=x", "whole number"),
            ("name=b,url=unix:///s,colour=red", "unknown field"),
            ("url=unix:///s", "missing field `name`"),
        ] {
            let err = EngineConfig::parse_flag(flag).unwrap_err();
            assert!(err.contains(says), "{flag}: {err}");
        }
    }

    #[test]
    fn ssh_urls_are_plain_names_without_a_port() {
        assert_eq!(
            cfg("ssh://deploy@build-02.example").transport(),
            Ok(Transport::Ssh {
                url: "ssh://deploy@build-02.example".into(),
                identity: None
            })
        );
        assert!(cfg("ssh://build-02").transport().is_ok());
        let remote = EngineConfig {
            local: None,
            ..cfg("ssh://build-02")
        };
        assert!(!remote.is_local(), "ssh engines are not local by default");
        for (url, says) in [
            ("ssh://me@host:2222", "takes no port"),
            ("ssh://-oProxyCommand=touch%20x", "must be ssh://USER@HOST"),
            ("ssh://-oProxyCommand=x@host", "must be ssh://USER@HOST"),
            ("ssh://me@-host", "must be ssh://USER@HOST"),
            ("ssh://", "must be ssh://USER@HOST"),
            ("ssh://me@host/path", "must be ssh://USER@HOST"),
            ("ssh://me @host", "must be ssh://USER@HOST"),
        ] {
            let err = cfg(url).transport().unwrap_err();
            assert!(err.contains(says), "{url}: {err}");
        }
        let mut with_tls = cfg("ssh://host");
        with_tls.cert = Some("/cert.pem".into());
        assert!(with_tls.transport().unwrap_err().contains("are for tcp://"));
        let mut identity_elsewhere = cfg("unix:///var/run/docker.sock");
        identity_elsewhere.identity = Some("/id".into());
        assert!(
            identity_elsewhere
                .transport()
                .unwrap_err()
                .contains("identity is for ssh://")
        );
    }

    #[test]
    fn plain_tcp_is_refused_with_the_fix() {
        let err = cfg("tcp://10.0.0.2:2375").transport().unwrap_err();
        assert!(err.contains("needs TLS: set ca, cert and key"), "{err}");
        let err = cfg("http://host").transport().unwrap_err();
        assert!(err.contains("must start with unix://"), "{err}");
        let mut with_tls = cfg("unix:///var/run/docker.sock");
        with_tls.ca = Some("/ca.pem".into());
        assert!(with_tls.transport().unwrap_err().contains("takes none"));
    }

    #[test]
    fn only_sockets_are_local_unless_said_otherwise() {
        assert!(cfg("unix:///var/run/docker.sock").is_local());
        let mut remote = cfg("tcp://h:2376");
        remote.local = None;
        assert!(!remote.is_local());
        remote.local = Some(true);
        assert!(remote.is_local());
    }

    #[test]
    fn names_are_checked_and_unique() {
        let a = EngineConfig::default_local();
        assert!(validate(std::slice::from_ref(&a)).is_ok());
        assert!(
            validate(&[a.clone(), a.clone()])
                .unwrap_err()
                .contains("used twice")
        );
        for bad in ["", "Big", "a b", "x\u{1b}[2J", &"n".repeat(33)] {
            let e = EngineConfig {
                name: bad.into(),
                ..a.clone()
            };
            let err = validate(&[e]).unwrap_err();
            assert!(
                err.contains("is invalid") && !err.contains('\u{1b}'),
                "{err}"
            );
        }
        assert!(validate(&[]).unwrap_err().contains("no engine"));
    }
}
