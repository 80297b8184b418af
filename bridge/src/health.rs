//! `bridge health URL`: the container healthcheck, a minimal HTTP GET so
//! images need no curl.

/// `bridge health URL`: a minimal HTTP GET, so container images need no curl.
pub async fn health(url: &str) -> anyhow::Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| anyhow::anyhow!("health URL must start with http:// (got {url})"))?;
    let (authority, path) = match rest.split_once('/') {
        Some((a, p)) => (a, format!("/{p}")),
        None => (rest, "/".to_owned()),
    };
    let limit = std::time::Duration::from_secs(5);
    let mut stream =
        tokio::time::timeout(limit, tokio::net::TcpStream::connect(authority)).await??;
    let request = format!("GET {path} HTTP/1.0\r\nHost: {authority}\r\n\r\n");
    stream.write_all(request.as_bytes()).await?;
    let mut buf = Vec::new();
    tokio::time::timeout(limit, stream.read_to_end(&mut buf)).await??;
    let status = String::from_utf8_lossy(&buf)
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned();
    if status.split_whitespace().nth(1) == Some("200") {
        // The body's lines after `ok` (the runners' engines), for the operator.
        let text = String::from_utf8_lossy(&buf);
        if let Some((_, body)) = text.split_once("\r\n\r\n") {
            for line in body.lines().skip(1) {
                crate::untrusted::terminal::println(crate::untrusted::Escaped(line))?;
            }
        }
        Ok(())
    } else {
        anyhow::bail!("unhealthy: {status}")
    }
}
