//! The HTTP transport's limits through the real binary: the session cap
//! (total and per address) answers 503 with `Retry-After`, a session that
//! never completes the handshake or goes idle expires, a slow request head
//! or body is cut off (an announced over-cap body at once), the connection cap refuses, and `/healthz` plus a connected
//! client keep answering during a small flood from other addresses.

use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use bridge_tests::flood::{
    HttpBridge, LEGIT, attacker, connect_from, exchange, healthz, open_session, tools_list,
};
use bridge_tests::{Conv, connect_http};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Asserts a 503 with a `Retry-After` and a body that says `says`.
fn assert_overloaded(reply: &bridge_tests::flood::Reply, says: &str) {
    assert_eq!(reply.status, 503, "{}", reply.text);
    let retry: u64 = reply
        .header("retry-after")
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no numeric Retry-After in {}", reply.head));
    assert!(retry >= 1, "Retry-After: {retry}");
    assert!(reply.text.contains(says), "{}", reply.text);
}

#[tokio::test(flavor = "multi_thread")]
async fn sessions_over_the_total_cap_get_503_with_retry_after() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let server = HttpBridge::start(dir.path(), &["--http-max-sessions", "3"]).await?;
    let to = server.addr;
    let mut ids = Vec::new();
    for i in 0..3 {
        let id = open_session(attacker(i), to, true).await?;
        ids.push(id.map_err(|r| anyhow::anyhow!("session {i} refused: {}", r.text))?);
    }
    // Full: a fourth, from any address, is refused before rmcp sees it.
    for from in [attacker(3), LEGIT] {
        let refused = open_session(from, to, true)
            .await?
            .err()
            .context("a session over the cap was created")?;
        assert_overloaded(&refused, "too many MCP sessions are open on this server");
    }
    // Health is not a session: it still answers.
    assert_eq!(
        exchange(LEGIT, to, &healthz(to.port()), "ok").await?.status,
        200
    );
    // Closing one (HTTP DELETE) frees its place.
    let delete = format!(
        "DELETE /mcp HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nMcp-Session-Id: {}\r\nMCP-Protocol-Version: 2025-06-18\r\nConnection: close\r\n\r\n",
        to.port(),
        ids[0]
    );
    let deleted = exchange(LEGIT, to, delete.as_bytes(), "").await?;
    ensure!(deleted.status < 300, "DELETE got {}", deleted.text);
    let client = connect_http(&server.url(), None).await?;
    Conv::create_on(&client).await?;
    client.cancel().await?;
    server.stop().await
}

#[tokio::test(flavor = "multi_thread")]
async fn sessions_over_the_per_address_cap_get_503_and_other_addresses_go_on() -> anyhow::Result<()>
{
    let dir = tempfile::tempdir()?;
    let server = HttpBridge::start(dir.path(), &["--http-max-sessions-per-peer", "2"]).await?;
    let to = server.addr;
    for _ in 0..2 {
        open_session(attacker(0), to, true)
            .await?
            .map_err(|r| anyhow::anyhow!("refused under the cap: {}", r.text))?;
    }
    let refused = open_session(attacker(0), to, true)
        .await?
        .err()
        .context("a third session from one address was created")?;
    assert_overloaded(&refused, "from your address");
    // Another attacker address, and the legitimate client, are unaffected.
    open_session(attacker(1), to, true)
        .await?
        .map_err(|r| anyhow::anyhow!("another address was refused: {}", r.text))?;
    let client = connect_http(&server.url(), None).await?;
    Conv::create_on(&client).await?;
    client.cancel().await?;
    server.stop().await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_session_that_never_completes_the_handshake_expires_and_frees_its_place()
-> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let server = HttpBridge::start(
        dir.path(),
        &[
            "--http-session-init-timeout",
            "2s",
            "--http-max-sessions",
            "2",
        ],
    )
    .await?;
    let to = server.addr;
    let half = open_session(attacker(0), to, false)
        .await?
        .map_err(|r| anyhow::anyhow!("refused: {}", r.text))?;
    let whole = open_session(attacker(1), to, true)
        .await?
        .map_err(|r| anyhow::anyhow!("refused: {}", r.text))?;
    // Both answer at first.
    for (from, id) in [(attacker(0), &half), (attacker(1), &whole)] {
        let listed = exchange(from, to, &tools_list(to.port(), id), "\"tools\"").await?;
        assert_eq!(listed.status, 200, "{}", listed.text);
    }
    // Real time is what is tested: the server (another process) enforces
    // its 2 s handshake deadline on its own clock.
    tokio::time::sleep(Duration::from_millis(3500)).await;
    let gone = exchange(attacker(0), to, &tools_list(to.port(), &half), "").await?;
    assert_eq!(
        gone.status, 404,
        "a session without notifications/initialized still answers after its 2 s deadline: {}",
        gone.text
    );
    let kept = exchange(attacker(1), to, &tools_list(to.port(), &whole), "\"tools\"").await?;
    assert_eq!(
        kept.status, 200,
        "a session that completed the handshake was closed: {}",
        kept.text
    );
    // The expired session's place is free again (cap 2, one live).
    open_session(attacker(2), to, true)
        .await?
        .map_err(|r| anyhow::anyhow!("the expired session's place was not freed: {}", r.text))?;
    server.stop().await
}

#[tokio::test(flavor = "multi_thread")]
async fn an_idle_session_expires_on_the_configured_schedule() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let server = HttpBridge::start(dir.path(), &["--http-session-idle", "2s"]).await?;
    let to = server.addr;
    let id = open_session(attacker(0), to, true)
        .await?
        .map_err(|r| anyhow::anyhow!("refused: {}", r.text))?;
    // Activity keeps it: three requests 1 s apart span more than 2 s.
    // Real time is what is tested: the server (another process) expires
    // idle sessions on its own clock.
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let r = exchange(attacker(0), to, &tools_list(to.port(), &id), "\"tools\"").await?;
        assert_eq!(r.status, 200, "an active session was closed: {}", r.text);
    }
    tokio::time::sleep(Duration::from_millis(3500)).await;
    let gone = exchange(attacker(0), to, &tools_list(to.port(), &id), "").await?;
    assert_eq!(
        gone.status, 404,
        "idle for 3.5 s with a 2 s idle timeout: {}",
        gone.text
    );
    server.stop().await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_request_head_that_does_not_arrive_in_time_closes_the_connection() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let server = HttpBridge::start(dir.path(), &["--http-header-timeout", "2s"]).await?;
    let to = server.addr;
    let mut slow = connect_from(attacker(0), to).await?;
    let started = Instant::now();
    slow.write_all(b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        .await?;
    // Trickle a header line every 500 ms: each byte is on time, the head is not.
    let mut buf = [0u8; 1024];
    let closed = loop {
        tokio::select! {
            r = slow.read(&mut buf) => break r,
            () = tokio::time::sleep(Duration::from_millis(500)) => {
                if slow.write_all(b"X-Slow: 1\r\n").await.is_err() {
                    break Ok(0);
                }
            }
        }
        if started.elapsed() > Duration::from_secs(8) {
            anyhow::bail!("a half-sent request head was still open after 8 s");
        }
    };
    let took = started.elapsed();
    // Closed (0 bytes, possibly after a 408) or reset: either way, gone.
    if let Ok(n) = closed
        && n > 0
    {
        let text = String::from_utf8_lossy(&buf[..n]);
        assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    }
    assert!(
        took >= Duration::from_millis(1500),
        "closed after {took:?}, before the 2 s header timeout"
    );
    // An idle connection that never sends a byte is closed too.
    let mut idle = connect_from(attacker(1), to).await?;
    let n = tokio::time::timeout(Duration::from_secs(6), idle.read(&mut buf))
        .await
        .context("a silent connection was still open after 6 s")?
        .unwrap_or(0);
    assert_eq!(n, 0, "{}", String::from_utf8_lossy(&buf[..n]));
    server.stop().await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_request_body_that_does_not_arrive_in_time_gets_408() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let server = HttpBridge::start(dir.path(), &["--http-body-timeout", "2s"]).await?;
    let to = server.addr;
    let mut slow = connect_from(attacker(0), to).await?;
    let started = Instant::now();
    // A complete head announcing 1 000 bytes, then one byte.
    slow.write_all(
        format!(
            "POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\nContent-Length: 1000\r\n\r\n{{",
            to.port()
        )
        .as_bytes(),
    )
    .await?;
    let mut got = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(8), slow.read_to_end(&mut got)).await;
    let took = started.elapsed();
    ensure!(read.is_ok(), "a slow body was still open after 8 s");
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(
        took >= Duration::from_millis(1500),
        "answered after {took:?}, before the 2 s body timeout"
    );
    server.stop().await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_content_length_over_the_cap_gets_413_without_waiting_for_the_body() -> anyhow::Result<()>
{
    let dir = tempfile::tempdir()?;
    let server = HttpBridge::start(dir.path(), &["--http-body-timeout", "20s"]).await?;
    let to = server.addr;
    let mut slow = connect_from(attacker(0), to).await?;
    let started = Instant::now();
    // 2 MB announced, one byte sent: the answer must not wait for the rest.
    slow.write_all(
        format!(
            "POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\nContent-Length: 2000000\r\n\r\n{{",
            to.port()
        )
        .as_bytes(),
    )
    .await?;
    let mut got = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(10), slow.read(&mut got))
        .await
        .context("no answer within 10 s to a 2 MB Content-Length")??;
    let text = String::from_utf8_lossy(&got[..n]);
    assert!(text.starts_with("HTTP/1.1 413"), "{text}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "answered after {:?}, as if it waited for the body",
        started.elapsed()
    );
    server.stop().await
}

#[tokio::test(flavor = "multi_thread")]
async fn connections_over_the_per_address_cap_get_503() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let server = HttpBridge::start(dir.path(), &["--http-max-connections-per-peer", "4"]).await?;
    let to = server.addr;
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(connect_from(attacker(0), to).await?);
    }
    // The server has counted the four once a connection opened after them
    // is answered: the accept loop admits (counts) each connection right
    // where it accepts it, with no await between, in the kernel's queue
    // order.
    let ok = exchange(LEGIT, to, &healthz(to.port()), "ok").await?;
    assert_eq!(ok.status, 200, "{}", ok.text);
    let refused = exchange(attacker(0), to, b"", "").await?;
    assert_overloaded(&refused, "too many connections from your address");
    let ok = exchange(LEGIT, to, &healthz(to.port()), "ok").await?;
    assert_eq!(ok.status, 200, "{}", ok.text);
    drop(held);
    server.stop().await
}

#[tokio::test(flavor = "multi_thread")]
async fn healthz_and_a_connected_client_answer_during_a_slow_connection_flood() -> anyhow::Result<()>
{
    let dir = tempfile::tempdir()?;
    let server = HttpBridge::start(
        dir.path(),
        &[
            "--http-max-connections",
            "64",
            "--http-max-connections-per-peer",
            "16",
        ],
    )
    .await?;
    let to = server.addr;
    let client = connect_http(&server.url(), None).await?;
    let c = Conv::create_on(&client).await?;

    // 320 half-sent heads from 5 addresses: five times the connection cap,
    // each address over its own cap too.
    let mut slow = Vec::new();
    let mut refused = 0;
    for i in 0..320 {
        match connect_from(attacker(i % 5), to).await {
            Ok(mut s) => {
                if s.write_all(b"POST /mcp HTTP/1.1\r\nHost: x\r\n")
                    .await
                    .is_err()
                {
                    refused += 1;
                }
                slow.push(s);
            }
            Err(_) => refused += 1,
        }
    }
    eprintln!("{refused} of 320 slow connections failed at once");
    for round in 0..5 {
        let started = Instant::now();
        let h = exchange(LEGIT, to, &healthz(to.port()), "ok").await?;
        assert_eq!(h.status, 200, "round {round}: {}", h.text);
        let status = bridge_tests::call(
            &client,
            "check_partner_status",
            c.args("a", serde_json::json!({})),
        )
        .await?;
        bridge_tests::ok(status)?;
        let took = started.elapsed();
        assert!(
            took < Duration::from_secs(2),
            "round {round}: /healthz plus a tool call took {took:?} during the flood"
        );
    }
    drop(slow);
    client.cancel().await?;
    server.stop().await
}
