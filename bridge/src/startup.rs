//! What a person sees when starting the server by hand: a one-line hint
//! when `bridge serve` (an MCP stdio server, silent by design) is started on
//! a terminal, the same for `bridge http-token`, and `bridge serve --check`,
//! which opens everything `serve` opens and answers one MCP `initialize`
//! in-process, for scripts and health checks.

use std::io::IsTerminal;
use std::time::Duration;

use anyhow::Context;
use rmcp::ServiceExt;

use bridge_state::config::Settings;

use crate::mcp::tools::BridgeServer;
use crate::serve::ServeArgs;

/// The start of the stdio hint (tests look for it).
pub const STDIO_HINT: &str = "bridge serve is an MCP stdio server";

/// The start of the `http-token` hint (tests look for it).
pub const TOKEN_HINT: &str = "the HTTP bearer token is on stdout";

/// How long `--check` waits for the in-process handshake.
const CHECK_TIMEOUT: Duration = Duration::from_secs(10);

/// Prints one line to stderr when stdin is a terminal: a person started the
/// server by hand and would otherwise see nothing at all. Agents start it
/// with pipes, so the protocol streams never see this line.
pub fn stdio_hint_if_terminal() {
    if std::io::stdin().is_terminal() {
        eprintln!("{}", stdio_hint());
    }
}

fn stdio_hint() -> String {
    let exe = std::env::current_exe()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| "/abs/path/to/bridge".into());
    format!(
        "{STDIO_HINT}, waiting for an MCP client on stdin (JSON-RPC); nothing else will appear. Point an agent at it instead, e.g. `claude mcp add bridge -- {exe} serve` (README: \"Pointing agents at it\"); `bridge serve --check` tests the set-up; Ctrl-C quits."
    )
}

/// `bridge http-token` on a terminal: say where the token went and how to
/// capture it from a container without the TTY's trailing `\r`.
pub fn http_token_hint_if_terminal() {
    #[allow(clippy::disallowed_methods)] // asks whether stdout is a TTY, writes nothing
    let stdout_is_tty = std::io::stdout().is_terminal();
    if stdout_is_tty {
        eprintln!(
            "{TOKEN_HINT} (one line). To capture it from Docker use `exec -T`: TOKEN=$(docker compose exec -T bridge bridge http-token) (or docker-compose exec -T …); without -T the TTY appends a \\r and every request then gets HTTP 400 with an empty body."
        );
    }
}

/// `bridge serve --check`: everything `serve` does before it serves (the
/// settings, the database and its file-permission checks, the server
/// secret, the HTTP token and options), then one MCP `initialize` answered
/// by the real server handler over an in-memory pipe. Returns the line to
/// print; any failure is the error `serve` would have hit.
pub async fn check(
    settings: &Settings,
    policy: Option<bridge_state::policy::Policy>,
    args: &ServeArgs,
) -> anyhow::Result<String> {
    let bridge = crate::serve::open_bridge(settings, policy)?;
    let http = match crate::serve::http_options(args)? {
        Some(opts) => Some(crate::mcp::http::check_options(&opts)?),
        None => None,
    };
    let (client_end, server_end) = tokio::io::duplex(1 << 16);
    let server = BridgeServer::new(bridge.clone());
    let running = tokio::spawn(async move {
        if let Ok(service) = server.serve(server_end).await {
            let _ = service.waiting().await;
        }
    });
    let client = tokio::time::timeout(CHECK_TIMEOUT, ().serve(client_end))
        .await
        .context("the server did not answer `initialize` within 10 s")?
        .context("the MCP `initialize` handshake failed")?;
    let info = client
        .peer_info()
        .context("the server answered `initialize` without its info")?;
    let (name, version) = info
        .server_info
        .as_ref()
        .map(|i| (i.name.clone(), i.version.clone()))
        .unwrap_or_else(|| ("bridge".into(), env!("CARGO_PKG_VERSION").into()));
    let line = format!(
        "OK: {name} {version} opened {} and answered an MCP initialize (protocol {}); ready to serve {}",
        settings.db.display(),
        info.protocol_version,
        match http {
            Some(addr) => format!("HTTP on {addr}"),
            None => "on stdin/stdout".into(),
        }
    );
    client.cancel().await?;
    let _ = tokio::time::timeout(Duration::from_secs(5), running).await;
    Ok(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stdio_hint_is_one_line_naming_the_way_out() {
        let hint = stdio_hint();
        assert!(!hint.contains('\n'), "{hint}");
        for needle in [STDIO_HINT, "claude mcp add", "--check", "Ctrl-C"] {
            assert!(hint.contains(needle), "{needle} missing: {hint}");
        }
    }

    #[tokio::test]
    async fn check_answers_initialize_on_a_fresh_database() {
        let dir = tempfile::tempdir().unwrap();
        let settings = Settings::resolve(bridge_state::config::Overrides {
            db: Some(dir.path().join("c.db")),
            ..Default::default()
        })
        .unwrap();
        let line = check(&settings, None, &ServeArgs::default()).await.unwrap();
        assert!(line.starts_with("OK: "), "{line}");
        assert!(line.contains("c.db"), "{line}");
    }
}
