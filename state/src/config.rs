//! Settings: command-line flags and environment variables (via clap), an
//! optional TOML config file, and defaults, in that order of precedence.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::ratelimit::{Limits, Quotas};
use crate::redact::{self, PatternSpec, Redactor};
use crate::store::Sync;

/// The original bridge's conversation lifetime.
pub const DEFAULT_TTL: Duration = Duration::from_secs(3 * 3600);

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path} is invalid: {source}")]
    Parse {
        path: PathBuf,
        source: toml::de::Error,
    },
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Redact(#[from] redact::RedactError),
    #[error("no user data directory is known on this system; pass --db PATH or set BRIDGE_DB")]
    NoDataDir,
}

/// The config file's shape. Every key is optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub db: Option<PathBuf>,
    /// e.g. "3h", "90m".
    pub conversation_ttl: Option<String>,
    /// e.g. "10/1m,100/1h,500/1d" or "off".
    pub rate_limit: Option<String>,
    pub sync: Option<String>,
    /// Failed authentications before backoff, e.g. "20/1m" or "off".
    pub auth_failures: Option<String>,
    /// Conversations per client, e.g. "60/1m,600/1h" or "off".
    pub create_limit: Option<String>,
    /// Conversations for all clients together, e.g. "600/1m" or "off".
    pub create_limit_global: Option<String>,
    /// Ceiling on live conversations.
    pub max_conversations: Option<u64>,
    /// A TOML file of `[[pattern]]` entries, or a gitleaks config (`[[rules]]`).
    pub redaction_patterns: Option<PathBuf>,
    /// How long an executed job may wait for a runner, e.g. "10m".
    pub queue_ttl: Option<String>,
    /// Inline extra patterns.
    #[serde(default)]
    pub pattern: Vec<PatternSpec>,
    /// The runner's Docker engines (the bridge ignores them); none means
    /// this host's socket.
    #[serde(default)]
    pub engine: Vec<crate::engines::EngineConfig>,
}

impl FileConfig {
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.into(),
            source,
        })?;
        toml::from_str(&text).map_err(|source| ConfigError::Parse {
            path: path.into(),
            source,
        })
    }
}

/// `30s`, `15m`, `3h`, `2d`, or a bare number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let bad =
        || format!("invalid duration `{s}`: use a number with s, m, h or d, e.g. `90m` or `3h`");
    let n: u64 = num.parse().map_err(|_| bad())?;
    let mult = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(bad()),
    };
    if n == 0 {
        return Err(format!("duration `{s}` must be above zero"));
    }
    Ok(Duration::from_secs(n * mult))
}

/// The default database: `$XDG_DATA_HOME/mcp-bridge/bridge.db`.
pub fn default_db() -> Result<PathBuf, ConfigError> {
    Ok(dirs::data_dir()
        .ok_or(ConfigError::NoDataDir)?
        .join("mcp-bridge")
        .join("bridge.db"))
}

/// Fully resolved settings for the bridge.
#[derive(Debug, Clone)]
pub struct Settings {
    pub db: PathBuf,
    pub sync: Sync,
    pub conversation_ttl: Duration,
    pub limits: Limits,
    pub quotas: Quotas,
    pub redactor: Redactor,
    /// The config file and patterns file given on the command line, passed
    /// on to a runner started with `--spawn-runner` so it redacts alike.
    pub config_file: Option<PathBuf>,
    pub patterns_file: Option<PathBuf>,
    /// A queued job older than this is failed, never run (runner side).
    pub queue_ttl: Duration,
    /// The config file's `[[engine]]` list (runner side; checked there).
    pub engines: Vec<crate::engines::EngineConfig>,
}

/// What the command line said; `None` means "not given".
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub config: Option<PathBuf>,
    pub db: Option<PathBuf>,
    pub sync: Option<Sync>,
    pub conversation_ttl: Option<String>,
    pub rate_limit: Option<String>,
    pub auth_failures: Option<String>,
    pub create_limit: Option<String>,
    pub create_limit_global: Option<String>,
    pub max_conversations: Option<u64>,
    pub redaction_patterns: Option<PathBuf>,
    pub queue_ttl: Option<String>,
}

impl Settings {
    pub fn resolve(o: Overrides) -> Result<Self, ConfigError> {
        let config_file = o.config.clone();
        let patterns_file = o.redaction_patterns.clone();
        let file = match &o.config {
            Some(p) => FileConfig::load(p)?,
            None => FileConfig::default(),
        };
        let db = match o.db.or(file.db) {
            Some(p) => p,
            None => default_db()?,
        };
        let sync = match (o.sync, file.sync.as_deref()) {
            (Some(s), _) => s,
            (None, None) => Sync::Normal,
            (None, Some(s)) => <Sync as clap::ValueEnum>::from_str(s, true).map_err(|_| {
                ConfigError::Invalid(format!(
                    "config key `sync` is `{s}`: use `normal` or `full`"
                ))
            })?,
        };
        let conversation_ttl = match o.conversation_ttl.or(file.conversation_ttl) {
            Some(s) => parse_duration(&s).map_err(ConfigError::Invalid)?,
            None => DEFAULT_TTL,
        };
        let limits = match o.rate_limit.or(file.rate_limit) {
            Some(s) => Limits::parse(&s).map_err(ConfigError::Invalid)?,
            None => Limits::default(),
        };
        let queue_ttl = match o.queue_ttl.or(file.queue_ttl) {
            Some(s) => parse_duration(&s).map_err(|e| {
                ConfigError::Invalid(format!("queue_ttl (--queue-ttl or the config file): {e}"))
            })?,
            None => Duration::from_secs(crate::yolo::DEFAULT_QUEUE_TTL_SECS),
        };
        let mut quotas = Quotas::default();
        let limit = |key: &str, value: Option<String>, into: &mut Limits| {
            if let Some(s) = value {
                *into =
                    Limits::parse(&s).map_err(|e| ConfigError::Invalid(format!("{key}: {e}")))?;
            }
            Ok::<(), ConfigError>(())
        };
        limit(
            "auth_failures",
            o.auth_failures.or(file.auth_failures),
            &mut quotas.throttle.auth_failures,
        )?;
        limit(
            "create_limit",
            o.create_limit.or(file.create_limit),
            &mut quotas.throttle.creates_per_client,
        )?;
        limit(
            "create_limit_global",
            o.create_limit_global.or(file.create_limit_global),
            &mut quotas.creates_global,
        )?;
        if let Some(n) = o.max_conversations.or(file.max_conversations) {
            if n == 0 {
                return Err(ConfigError::Invalid(
                    "max_conversations must be at least 1; the default is 10000".into(),
                ));
            }
            quotas.max_live_conversations = n;
        }
        let mut extra = redact::OperatorRules {
            patterns: file.pattern,
            ..Default::default()
        };
        if let Some(p) = o.redaction_patterns.or(file.redaction_patterns) {
            let loaded = redact::load_rules_file(&p)?;
            extra.patterns.extend(loaded.patterns);
            extra.gitleaks.merge(loaded.gitleaks);
        }
        let redactor = Redactor::with_operator(&extra)?;
        Ok(Self {
            db,
            sync,
            conversation_ttl,
            limits,
            quotas,
            redactor,
            config_file,
            patterns_file,
            queue_ttl,
            engines: file.engine,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("3h").unwrap(), Duration::from_secs(10_800));
        assert_eq!(parse_duration("45").unwrap(), Duration::from_secs(45));
        assert!(parse_duration("0m").is_err());
        assert!(parse_duration("3 weeks").unwrap_err().contains("90m"));
    }

    /// The example config a newcomer copies: it parses with the real loader
    /// as checked in (and sets only the defaults), every key the loader
    /// knows is in it, and its commented-out keys parse too.
    #[test]
    fn the_checked_in_example_config_parses() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/bridge.toml");
        let text = std::fs::read_to_string(&path).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let resolve = |config: &Path| {
            Settings::resolve(Overrides {
                config: Some(config.into()),
                db: Some(dir.path().join("x.db")),
                ..Default::default()
            })
        };
        let s = resolve(&path).unwrap();
        let d = resolve(Path::new("/dev/null")).unwrap();
        assert_eq!(s.conversation_ttl, d.conversation_ttl);
        assert_eq!(s.limits.windows.len(), d.limits.windows.len());
        assert_eq!(s.quotas, d.quotas);
        assert_eq!(s.queue_ttl, d.queue_ttl);
        for key in [
            "db",
            "conversation_ttl",
            "rate_limit",
            "sync",
            "auth_failures",
            "create_limit",
            "create_limit_global",
            "max_conversations",
            "redaction_patterns",
            "queue_ttl",
            "[[pattern]]",
            "[[engine]]",
        ] {
            assert!(text.contains(key), "the example does not mention `{key}`");
        }
        // Uncommented (`# key = …` → `key = …`), it must still parse.
        let uncommented: String = text
            .lines()
            .map(|l| match l.strip_prefix("# ") {
                Some(rest)
                    if rest.starts_with("[[")
                        || rest.split_once(" = ").is_some_and(|(k, _)| {
                            k.chars().all(|c| c.is_ascii_lowercase() || c == '_')
                        }) =>
                {
                    rest
                }
                _ => l,
            })
            .collect::<Vec<_>>()
            .join("\n");
        assert!(uncommented.contains("\n[[pattern]]\n"), "{uncommented}");
        let copy = dir.path().join("uncommented.toml");
        std::fs::write(&copy, &uncommented).unwrap();
        let u = resolve(&copy).unwrap();
        assert_eq!(
            u.redactor.redact("see TICKET-123456"),
            "see TICKET_REDACTED"
        );
        assert!(s.engines.is_empty(), "the default is this host's socket");
        let names: Vec<&str> = u.engines.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["here", "build-02", "build-03"]);
        crate::engines::validate(&u.engines).unwrap();
        assert!(u.engines[0].is_local() && !u.engines[1].is_local() && !u.engines[2].is_local());
        assert!(matches!(
            u.engines[2].transport(),
            Ok(crate::engines::Transport::Ssh {
                identity: Some(_),
                ..
            })
        ));
    }

    #[test]
    fn flags_override_the_file_and_bad_keys_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("c.toml");
        std::fs::write(
            &cfg,
            "conversation_ttl = \"1h\"\nrate_limit = \"off\"\n[[pattern]]\nname = \"t\"\nregex = 'TKT-[0-9]{4}'\nplaceholder = \"TICKET_REDACTED\"\n",
        )
        .unwrap();
        let s = Settings::resolve(Overrides {
            config: Some(cfg.clone()),
            db: Some(dir.path().join("x.db")),
            rate_limit: Some("5/1m".into()),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(s.conversation_ttl, Duration::from_secs(3600));
        assert_eq!(s.limits.windows.len(), 1);
        assert_eq!(s.redactor.redact("id TKT-1234"), "id TICKET_REDACTED");

        std::fs::write(&cfg, "rate_limits = \"off\"\n").unwrap();
        let err = Settings::resolve(Overrides {
            config: Some(cfg),
            db: Some(dir.path().join("x.db")),
            ..Default::default()
        })
        .unwrap_err();
        assert!(err.to_string().contains("rate_limits"), "{err}");
    }
}
