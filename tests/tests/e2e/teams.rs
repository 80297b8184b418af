//! Conversations of more than two agents, through the real binary: one
//! session per participant at creation, invitations by the creator only,
//! addressed and broadcast sends stored once, idempotent retries, the
//! peek-then-ack path, and the pair API unchanged beside them.

use bridge_tests::{Server, audit_rows_for, messages, sql};
use serde_json::{Value, json};

/// A team conversation: its id and each participant's `(session_id, token)`.
struct Team {
    id: String,
    sessions: Vec<(String, String)>,
}

impl Team {
    async fn create(s: &Server, roles: &[&str]) -> anyhow::Result<(Self, Value)> {
        let v = s
            .ok(
                "create_conversation",
                json!({"my_role": "architect", "participants": roles}),
            )
            .await?;
        let sessions = v["sessions"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .map(|g| {
                (
                    g["session_id"].as_str().unwrap_or_default().to_owned(),
                    g["token"].as_str().unwrap_or_default().to_owned(),
                )
            })
            .collect();
        let id = v["conversation_id"].as_str().unwrap_or_default().to_owned();
        Ok((Self { id, sessions }, v))
    }

    fn token(&self, session: &str) -> String {
        self.sessions
            .iter()
            .find(|(s, _)| s == session)
            .map(|(_, t)| t.clone())
            .unwrap_or_else(|| panic!("no session {session}"))
    }

    fn args(&self, session: &str, extra: Value) -> Value {
        let mut v = json!({"conversation_id": self.id, "session_id": session, "token": self.token(session)});
        if let (Value::Object(m), Value::Object(e)) = (&mut v, extra) {
            m.extend(e);
        }
        v
    }

    /// Adds an invited participant's grant.
    fn join(&mut self, grant: &Value) {
        self.sessions.push((
            grant["session_id"].as_str().unwrap_or_default().to_owned(),
            grant["token"].as_str().unwrap_or_default().to_owned(),
        ));
    }
}

/// The bodies of `session`'s unread messages (marking them read).
async fn read(s: &Server, t: &Team, session: &str) -> anyhow::Result<Vec<Value>> {
    Ok(messages(
        &s.ok("check_messages", t.args(session, json!({}))).await?,
    ))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_team_gets_a_session_each_and_a_broadcast_reaches_everyone_else_stored_once()
-> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let db = dir.path().join("b.db");
    let s = Server::start(&db, &[]).await?;
    let (t, created) = Team::create(&s, &["reviewer", "tester", "implementer"]).await?;
    let ids: Vec<&str> = t.sessions.iter().map(|(s, _)| s.as_str()).collect();
    assert_eq!(ids, ["a", "b", "c", "d"], "{created}");
    let roles: Vec<&str> = created["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["role"].as_str().unwrap())
        .collect();
    assert_eq!(roles, ["architect", "reviewer", "tester", "implementer"]);
    // The pair fields stay, for clients written before teams.
    assert_eq!(created["session_a_token"], json!(t.token("a")));
    assert_eq!(created["session_b_token"], json!(t.token("b")));

    let sent = s
        .ok(
            "send_to_partner",
            t.args("d", json!({"message": "implemented; please review"})),
        )
        .await?;
    assert_eq!(sent["to"], json!(["a", "b", "c"]), "{sent}");
    for who in ["a", "b", "c"] {
        let got = read(&s, &t, who).await?;
        assert_eq!(got.len(), 1, "{who}: {got:?}");
        assert_eq!(got[0]["from"], "d");
        assert_eq!(got[0]["to"], json!(["a", "b", "c"]));
        assert_eq!(got[0]["message"], "implemented; please review");
        assert_eq!(got[0]["id"], sent["message_id"]);
    }
    assert!(
        read(&s, &t, "d").await?.is_empty(),
        "the sender got its own message"
    );

    // One body, three inbox entries.
    let conn = sql(&db)?;
    let bodies: i64 = conn.query_row(
        "SELECT count(*) FROM messages WHERE body = 'implemented; please review'",
        [],
        |r| r.get(0),
    )?;
    let entries: i64 = conn.query_row(
        "SELECT count(*) FROM inbox WHERE message_id = ?1",
        [sent["message_id"].as_i64().unwrap()],
        |r| r.get(0),
    )?;
    assert_eq!((bodies, entries), (1, 3));

    let listed = s.ok("list_participants", t.args("c", json!({}))).await?;
    let listed = listed["participants"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(listed.len(), 4);
    assert_eq!(listed[2]["session_id"], "c");
    assert_eq!(listed[2]["role"], "tester");
    assert_eq!(listed[2]["status"], "unknown");
    assert_eq!(listed[2]["alive"], false);
    s.stop().await
}

#[tokio::test(flavor = "multi_thread")]
async fn to_picks_recipients_and_bad_addresses_are_refused_with_the_valid_ones()
-> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let s = Server::start(&dir.path().join("b.db"), &[]).await?;
    let (t, _) = Team::create(&s, &["reviewer", "tester", "implementer"]).await?;
    s.ok(
        "send_to_partner",
        t.args("a", json!({"message": "tester only", "to": ["c"]})),
    )
    .await?;
    assert_eq!(read(&s, &t, "c").await?.len(), 1);
    for who in ["b", "d"] {
        assert!(read(&s, &t, who).await?.is_empty(), "{who} got c's message");
    }
    for (to, field, says) in [
        (
            json!(["e"]),
            "to[0]",
            "valid recipients are \"b\", \"c\", \"d\"",
        ),
        (json!(["a"]), "to[0]", "not another participant"),
        (json!(["b", "b"]), "to[1]", "named twice"),
        (json!(["z"]), "to[0]", "must be a session id"),
        (json!([]), "to", "must list 1 to 15"),
    ] {
        let no = s
            .refused(
                "send_to_partner",
                t.args("a", json!({"message": "x", "to": to})),
            )
            .await?;
        assert!(
            no.starts_with(&format!("invalid argument `{field}`")) && no.contains(says),
            "{to}: {no}"
        );
    }
    s.stop().await
}

#[tokio::test(flavor = "multi_thread")]
async fn only_the_creator_invites_up_to_sixteen_and_everyone_hears_of_it() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let db = dir.path().join("b.db");
    let s = Server::start(&db, &[]).await?;
    let (mut t, _) = Team::create(&s, &["reviewer"]).await?;
    let no = s
        .refused("invite_participant", t.args("b", json!({"role": "tester"})))
        .await?;
    assert!(no.contains("only the conversation's creator"), "{no}");
    let grant = s
        .ok("invite_participant", t.args("a", json!({"role": "tester"})))
        .await?;
    assert_eq!(
        (&grant["session_id"], &grant["role"]),
        (&json!("c"), &json!("tester"))
    );
    t.join(&grant);
    // The new participant's token works, and the others were told.
    assert!(read(&s, &t, "c").await?.is_empty());
    for who in ["a", "b"] {
        let got = read(&s, &t, who).await?;
        assert!(
            got.iter().any(|m| m["from"] == "bridge"
                && m["message"]
                    .as_str()
                    .unwrap_or_default()
                    .contains("\"c\" (\"tester\") joined")),
            "{who}: {got:?}"
        );
    }
    let dup = s
        .refused("invite_participant", t.args("a", json!({"role": "tester"})))
        .await?;
    assert!(dup.starts_with("invalid argument `role`"), "{dup}");
    for i in 3..16 {
        let g = s
            .ok(
                "invite_participant",
                t.args("a", json!({"role": format!("worker-{i}")})),
            )
            .await?;
        t.join(&g);
    }
    assert_eq!(t.sessions.last().unwrap().0, "p");
    let full = s
        .refused(
            "invite_participant",
            t.args("a", json!({"role": "one too many"})),
        )
        .await?;
    assert!(full.contains("16 participants"), "{full}");
    // A broadcast from the last one reaches all fifteen others.
    let sent = s
        .ok(
            "send_to_partner",
            t.args("p", json!({"message": "hello all"})),
        )
        .await?;
    assert_eq!(sent["to"].as_array().map(Vec::len), Some(15));
    let invites = audit_rows_for(&db, "conversation.invite")?;
    assert_eq!(invites.iter().filter(|r| r.outcome == "ok").count(), 14);
    assert_eq!(invites.iter().filter(|r| r.outcome == "refused").count(), 3);
    s.stop().await
}

#[tokio::test(flavor = "multi_thread")]
async fn partner_status_needs_a_partner_in_a_team_but_not_in_a_pair() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let s = Server::start(&dir.path().join("b.db"), &[]).await?;
    let pair = bridge_tests::Conv::create(&s).await?;
    let st = s
        .ok("check_partner_status", pair.args("a", json!({})))
        .await?;
    assert_eq!(st["partner_session_id"], "b");

    let (t, _) = Team::create(&s, &["reviewer", "tester"]).await?;
    s.ok(
        "update_my_status",
        t.args("c", json!({"status": "blocked"})),
    )
    .await?;
    let no = s
        .refused("check_partner_status", t.args("a", json!({})))
        .await?;
    assert!(
        no.contains("team")
            && no.contains("\"b\" (\"reviewer\")")
            && no.contains("\"c\" (\"tester\")"),
        "{no}"
    );
    let st = s
        .ok("check_partner_status", t.args("a", json!({"partner": "c"})))
        .await?;
    assert_eq!(
        (&st["partner_session_id"], &st["status"]),
        (&json!("c"), &json!("blocked"))
    );
    assert_eq!(st["alive"], true);
    let me = s
        .refused("check_partner_status", t.args("a", json!({"partner": "a"})))
        .await?;
    assert!(me.contains("not another participant"), "{me}");
    s.stop().await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_retried_send_is_stored_and_delivered_once() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let db = dir.path().join("b.db");
    let s = Server::start(&db, &[]).await?;
    let c = bridge_tests::Conv::create(&s).await?;
    let send =
        |text: &str, key: &str| c.args("a", json!({"message": text, "idempotency_key": key}));
    let first = s.ok("send_to_partner", send("deploy done", "k-1")).await?;
    assert_eq!(first["duplicate"], false);
    let again = s.ok("send_to_partner", send("deploy done", "k-1")).await?;
    assert_eq!(again["message_id"], first["message_id"], "{again}");
    assert_eq!(again["duplicate"], true);
    let other = s
        .refused("send_to_partner", send("something else", "k-1"))
        .await?;
    assert!(
        other.starts_with("invalid argument `idempotency_key`")
            && other.contains("different message"),
        "{other}"
    );
    // Another key, or the same key from the other session, is a new message.
    s.ok("send_to_partner", send("deploy done", "k-2")).await?;
    s.ok(
        "send_to_partner",
        c.args("b", json!({"message": "ack", "idempotency_key": "k-1"})),
    )
    .await?;
    let b = messages(&s.ok("check_messages", c.args("b", json!({}))).await?);
    assert_eq!(b.len(), 2, "{b:?}");
    // The key itself is never stored.
    assert!(!bridge_tests::contains(&bridge_tests::db_bytes(&db), "k-1"));
    s.stop().await
}

#[tokio::test(flavor = "multi_thread")]
async fn peek_then_ack_loses_nothing_if_the_reader_dies_in_between() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let s = Server::start(&dir.path().join("b.db"), &[]).await?;
    let c = bridge_tests::Conv::create(&s).await?;
    for i in 0..3 {
        s.ok(
            "send_to_partner",
            c.args("a", json!({"message": format!("task {i}")})),
        )
        .await?;
    }
    let peek = || c.args("b", json!({"peek": true}));
    let first = messages(&s.ok("check_messages", peek()).await?);
    assert_eq!(first.len(), 3);
    // The reader "crashed" before acting: the next peek sees the same three.
    let second = messages(&s.ok("check_messages", peek()).await?);
    assert_eq!(first, second);
    let acked = s
        .ok(
            "ack_messages",
            c.args("b", json!({"up_to_id": second[1]["id"]})),
        )
        .await?;
    assert_eq!(acked["acked"], 2, "{acked}");
    let rest = messages(&s.ok("check_messages", c.args("b", json!({}))).await?);
    assert_eq!(rest.len(), 1);
    assert_eq!(rest[0]["message"], "task 2");
    let none = s
        .ok(
            "ack_messages",
            c.args("b", json!({"up_to_id": second[2]["id"]})),
        )
        .await?;
    assert_eq!(none["acked"], 0);
    let bad = s
        .refused("ack_messages", c.args("b", json!({"up_to_id": -1})))
        .await?;
    assert!(bad.starts_with("invalid argument `up_to_id`"), "{bad}");
    s.stop().await
}

#[tokio::test(flavor = "multi_thread")]
async fn team_creation_refuses_repeated_roles_and_both_forms_at_once() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let s = Server::start(&dir.path().join("b.db"), &[]).await?;
    for (args, field) in [
        (
            json!({"my_role": "architect", "participants": ["tester", "tester"]}),
            "participants[1]",
        ),
        (
            json!({"my_role": "architect", "participants": ["architect"]}),
            "participants[0]",
        ),
        (
            json!({"my_role": "architect", "participants": []}),
            "participants",
        ),
        (
            json!({"my_role": "architect", "partner_role": "tester", "participants": ["reviewer"]}),
            "participants",
        ),
        (json!({"my_role": "architect"}), "partner_role"),
    ] {
        let no = s.refused("create_conversation", args.clone()).await?;
        assert!(
            no.starts_with(&format!("invalid argument `{field}`")),
            "{args}: {no}"
        );
    }
    let sixteen: Vec<String> = (0..16).map(|i| format!("role-{i}")).collect();
    let no = s
        .refused(
            "create_conversation",
            json!({"my_role": "architect", "participants": sixteen}),
        )
        .await?;
    assert!(no.contains("1 to 15"), "{no}");
    s.stop().await
}

/// The operator's side: `bridge invite` adds a participant whose token
/// works at once and is shown once; `bridge tokens --rotate --session`
/// replaces one participant's token and leaves the others working.
#[tokio::test(flavor = "multi_thread")]
async fn the_operator_invites_and_rotates_one_participants_token() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let db = dir.path().join("b.db");
    let s = Server::start(&db, &[]).await?;
    let (mut t, _) = Team::create(&s, &["reviewer", "tester"]).await?;
    let grant = bridge_tests::operator_json(&db, &["invite", &t.id, "security auditor"])?;
    assert_eq!(
        (&grant["session_id"], &grant["role"]),
        (&json!("d"), &json!("security auditor")),
        "{grant}"
    );
    t.join(&grant);
    s.ok(
        "update_my_status",
        t.args("d", json!({"status": "working"})),
    )
    .await?;
    let taken = bridge_tests::operator(&db, &["invite", &t.id, "tester"])?;
    assert!(!taken.status.success());
    assert!(
        String::from_utf8_lossy(&taken.stderr)
            .contains("must differ from every current participant's role"),
        "{taken:?}"
    );
    let bad = bridge_tests::operator(&db, &["invite", &t.id, "x\u{1b}[2Jy"])?;
    assert!(!bad.status.success());

    let rotated =
        bridge_tests::operator_json(&db, &["tokens", &t.id, "--rotate", "--session", "c"])?;
    let tokens = rotated["tokens"].as_object().cloned().unwrap_or_default();
    assert_eq!(tokens.keys().collect::<Vec<_>>(), ["c"], "{rotated}");
    let old_c = t.args("c", json!({}));
    assert_eq!(
        s.refused("check_messages", old_c).await?,
        "invalid or expired session token"
    );
    let mut fresh = t.args("c", json!({}));
    fresh["token"] = tokens["c"].clone();
    s.ok("check_messages", fresh).await?;
    // The others' tokens still work.
    for who in ["a", "b", "d"] {
        s.ok("check_messages", t.args(who, json!({}))).await?;
    }
    let unknown = bridge_tests::operator(&db, &["tokens", &t.id, "--rotate", "--session", "q"])?;
    assert!(
        String::from_utf8_lossy(&unknown.stderr).contains("its sessions are a, b, c, d"),
        "{unknown:?}"
    );
    s.stop().await
}

/// What a terminal shows for `bytes` (LF as a terminal's driver sends it).
fn screen(bytes: &[u8]) -> String {
    let size = |n| std::num::NonZeroU16::new(n).expect("a non-empty terminal");
    let mut parser = vt100::Parser::new(size(60), size(400), 0);
    let text = String::from_utf8_lossy(bytes).replace('\n', "\r\n");
    parser.process(text.as_bytes());
    parser.screen().contents()
}

/// `bridge list` and `bridge show` name every participant of a team: the
/// list a count (or the roles, when short), show a row each with its
/// status, heartbeat, liveness and unread count; the same data in `--json`.
/// Roles are agent text: a hostile one reaches the screen escaped.
#[tokio::test(flavor = "multi_thread")]
async fn the_operator_sees_every_participant_with_liveness_and_unread() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let db = dir.path().join("b.db");
    let s = Server::start(&db, &[]).await?;
    let pair = s
        .ok(
            "create_conversation",
            json!({"my_role": "backend", "partner_role": "frontend"}),
        )
        .await?;
    let pair_id = pair["conversation_id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let (t, _) = Team::create(&s, &["tester", "reviewer", "designer"]).await?;
    s.ok(
        "send_to_partner",
        t.args("a", json!({"message": "to c only", "to": ["c"]})),
    )
    .await?;
    s.ok(
        "send_to_partner",
        t.args("b", json!({"message": "everyone"})),
    )
    .await?;
    s.ok(
        "update_my_status",
        t.args("b", json!({"status": "working"})),
    )
    .await?;
    s.stop().await?;
    // A role stored before intake checked roles (forged here): it would
    // erase the line on a terminal that obeyed it, and it holds the " / "
    // that once split a role in two in `list`.
    let hostile = "de / sign\u{1b}[2Kforged";
    sql(&db)?.execute(
        "UPDATE sessions SET role = ?1 WHERE conversation_id = ?2 AND session_id = 'd'",
        rusqlite::params![hostile, t.id],
    )?;

    let list = bridge_tests::operator_json(&db, &["list"])?;
    let row = |id: &str| {
        list.as_array()
            .into_iter()
            .flatten()
            .find(|r| r["conversation_id"] == id)
            .cloned()
            .unwrap_or_default()
    };
    assert_eq!(row(&t.id)["participants"], 4, "{list}");
    assert_eq!(
        row(&t.id)["roles"],
        json!(["architect", "tester", "reviewer", hostile])
    );
    assert_eq!(row(&pair_id)["participants"], 2, "{list}");
    let listed = bridge_tests::operator(&db, &["list"])?;
    assert!(listed.status.success(), "{listed:?}");
    assert!(!listed.stdout.contains(&0x1b), "a raw ESC reached stdout");
    let text = screen(&listed.stdout);
    let line = |needle: &str| {
        text.lines()
            .find(|l| l.contains(needle))
            .unwrap_or_default()
            .to_owned()
    };
    assert!(line(&t.id).contains("4 participants"), "{text}");
    assert!(line(&pair_id).contains("backend / frontend"), "{text}");

    let shown = bridge_tests::operator_json(&db, &["show", &t.id])?;
    let got: Vec<(String, String, String, bool, i64)> = shown["sessions"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| {
            (
                p["session_id"].as_str().unwrap_or_default().to_owned(),
                p["role"].as_str().unwrap_or_default().to_owned(),
                p["status"].as_str().unwrap_or("-").to_owned(),
                p["alive"].as_bool().unwrap_or_default(),
                p["unread"].as_i64().unwrap_or(-1),
            )
        })
        .collect();
    let want = [
        ("a", "architect", "-", false, 1),
        ("b", "tester", "working", true, 0),
        ("c", "reviewer", "-", false, 2),
        ("d", hostile, "-", false, 1),
    ]
    .map(|(s, r, st, alive, unread)| (s.into(), r.into(), st.into(), alive, unread));
    assert_eq!(got, want, "{shown}");
    assert_eq!(shown["summary"]["participants"], 4);
    assert!(shown["sessions"][1]["last_heartbeat"].as_str().is_some());

    let table = bridge_tests::operator(&db, &["show", &t.id])?;
    assert!(table.status.success(), "{table:?}");
    assert!(!table.stdout.contains(&0x1b), "a raw ESC reached stdout");
    let text = screen(&table.stdout);
    assert!(text.contains("4 participants"), "{text}");
    for header in [
        "session",
        "role",
        "status",
        "last heartbeat",
        "alive",
        "unread",
    ] {
        assert!(text.contains(header), "no `{header}` column: {text}");
    }
    let row = |session: &str, role: &str| {
        text.lines()
            .find(|l| l.split(['│', '┆']).nth(1).map(str::trim) == Some(session))
            .filter(|l| l.contains(role))
            .unwrap_or_else(|| panic!("no row for {session} ({role}): {text}"))
            .to_owned()
    };
    let b = row("b", "tester");
    assert!(b.contains("working") && b.contains("yes"), "{b}");
    // The hostile role is shown, escaped, on its own row, whole.
    let d = row("d", "de / sign\\e[2Kforged");
    assert!(d.contains("no"), "{d}");
    Ok(())
}
