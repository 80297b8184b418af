//! Bad tool input through the real binary: every kind is a tool error that
//! names the field and its bound, and every refusal is audited.

use bridge_tests::{Conv, Server, audit_rows_for};
use serde_json::{Value, json};

/// True when `n` appears in `text` as a whole number (not inside a longer one).
fn mentions_number(text: &str, n: u64) -> bool {
    text.split(|c: char| !c.is_ascii_digit())
        .any(|w| w == n.to_string())
}

struct Case {
    name: &'static str,
    tool: &'static str,
    args: Value,
    /// The field the error must name.
    field: &'static str,
    /// Numbers of the bound the error must state.
    bounds: &'static [u64],
    /// Other words the error must contain (e.g. the allowed values).
    words: &'static [&'static str],
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_input_is_a_tool_error_naming_the_field_and_bound_and_is_audited() -> anyhow::Result<()>
{
    let dir = tempfile::tempdir()?;
    let db = dir.path().join("b.db");
    let s = Server::start(&db, &[]).await?;
    let c = Conv::create(&s).await?;
    let mut without_token = c.args("a", json!({"message": "hi"}));
    without_token.as_object_mut().unwrap().remove("token");

    let cases = vec![
        Case {
            name: "unknown field",
            tool: "send_to_partner",
            args: c.args("a", json!({"message": "hi", "bogus": true})),
            field: "bogus",
            bounds: &[],
            words: &[],
        },
        Case {
            name: "wrong type",
            tool: "send_to_partner",
            args: c.args("a", json!({"message": 5})),
            field: "message",
            bounds: &[],
            words: &["string"],
        },
        Case {
            name: "wait_seconds above 50",
            tool: "check_messages",
            args: c.args("b", json!({"wait_seconds": 51})),
            field: "wait_seconds",
            bounds: &[50],
            words: &[],
        },
        Case {
            name: "negative wait_seconds",
            tool: "check_messages",
            args: c.args("b", json!({"wait_seconds": -1})),
            field: "wait_seconds",
            bounds: &[],
            words: &[],
        },
        Case {
            name: "negative since_id",
            tool: "check_messages",
            args: c.args("b", json!({"since_id": -1})),
            field: "since_id",
            bounds: &[0],
            words: &[],
        },
        Case {
            name: "message of 50 001 characters",
            tool: "send_to_partner",
            args: c.args("a", json!({"message": "x".repeat(50_001)})),
            field: "message",
            bounds: &[50_000],
            words: &[],
        },
        Case {
            name: "empty message",
            tool: "send_to_partner",
            args: c.args("a", json!({"message": ""})),
            field: "message",
            bounds: &[1],
            words: &[],
        },
        Case {
            name: "21 files_involved",
            tool: "send_to_partner",
            args: c.args(
                "a",
                json!({"message": "hi", "files_involved": vec!["src/a.rs"; 21]}),
            ),
            field: "files_involved",
            bounds: &[20],
            words: &[],
        },
        Case {
            name: "file path of 1025 characters",
            tool: "send_to_partner",
            args: c.args(
                "a",
                json!({"message": "hi", "files_involved": ["ok.rs", "p".repeat(1025)]}),
            ),
            field: "files_involved[1]",
            bounds: &[1024],
            words: &[],
        },
        Case {
            name: "my_role of 2 characters",
            tool: "create_conversation",
            args: json!({"my_role": "ab", "partner_role": "frontend_developer"}),
            field: "my_role",
            bounds: &[3, 100],
            words: &[],
        },
        Case {
            name: "my_role of 101 characters",
            tool: "create_conversation",
            args: json!({"my_role": "r".repeat(101), "partner_role": "frontend_developer"}),
            field: "my_role",
            bounds: &[3, 100],
            words: &[],
        },
        Case {
            name: "partner_role of 101 characters",
            tool: "create_conversation",
            args: json!({"my_role": "backend_developer", "partner_role": "r".repeat(101)}),
            field: "partner_role",
            bounds: &[3, 100],
            words: &[],
        },
        Case {
            name: "action_type shout",
            tool: "send_to_partner",
            args: c.args("a", json!({"message": "hi", "action_type": "shout"})),
            field: "action_type",
            bounds: &[],
            words: &["question", "info", "proposal", "blocked", "complete"],
        },
        Case {
            name: "status sleeping",
            tool: "update_my_status",
            args: c.args("a", json!({"status": "sleeping"})),
            field: "status",
            bounds: &[],
            words: &["working", "waiting", "blocked", "complete"],
        },
        Case {
            name: "session_id q",
            tool: "check_partner_status",
            args: json!({"conversation_id": c.id, "session_id": "q", "token": c.token_a}),
            field: "session_id",
            bounds: &[],
            words: &[],
        },
        Case {
            name: "conversation_id conv_XYZ",
            tool: "check_messages",
            args: json!({"conversation_id": "conv_XYZ", "session_id": "a", "token": c.token_a}),
            field: "conversation_id",
            bounds: &[16],
            words: &[],
        },
        Case {
            name: "token of 63 characters",
            tool: "send_to_partner",
            args: json!({"conversation_id": c.id, "session_id": "a", "token": &c.token_a[..63], "message": "hi"}),
            field: "token",
            bounds: &[64],
            words: &[],
        },
        Case {
            name: "missing token",
            tool: "send_to_partner",
            args: without_token,
            field: "token",
            bounds: &[],
            words: &["missing"],
        },
    ];

    for case in &cases {
        let text = s
            .refused(case.tool, case.args.clone())
            .await
            .map_err(|e| anyhow::anyhow!("{}: {e}", case.name))?;
        assert!(
            text.contains(case.field),
            "{}: error does not name `{}`: {text}",
            case.name,
            case.field
        );
        for &n in case.bounds {
            assert!(
                mentions_number(&text, n),
                "{}: error does not state the bound {n}: {text}",
                case.name
            );
        }
        for w in case.words {
            assert!(
                text.contains(w),
                "{}: error does not mention {w:?}: {text}",
                case.name
            );
        }
    }

    // Nothing got through: b has no message and a's status was never set.
    let inbox = s.ok("check_messages", c.args("b", json!({}))).await?;
    assert_eq!(inbox["messages"], json!([]));
    let partner = s.ok("check_partner_status", c.args("b", json!({}))).await?;
    assert_eq!(partner["status"], "unknown");
    s.stop().await?;

    // One refused `request.invalid` row per case, in order, each naming the
    // tool and the field.
    let audited = audit_rows_for(&db, "request.invalid")?;
    assert_eq!(
        audited.len(),
        cases.len(),
        "audit rows: {:#?}",
        audited.iter().map(|r| &r.detail).collect::<Vec<_>>()
    );
    for (case, row) in cases.iter().zip(&audited) {
        assert_eq!(row.outcome, "refused", "{}", case.name);
        let detail: Value = serde_json::from_str(&row.detail)?;
        assert_eq!(detail["tool"], case.tool, "{}: {}", case.name, row.detail);
        assert!(
            row.detail.contains(case.field),
            "{}: audit detail does not name `{}`: {}",
            case.name,
            case.field,
            row.detail
        );
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_tool_is_a_protocol_error_not_a_tool_result() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let s = Server::start(&dir.path().join("b.db"), &[]).await?;
    let err = s
        .call("shout_at_partner", json!({"message": "hi"}))
        .await
        .expect_err("an unknown tool must be a JSON-RPC error");
    assert!(
        format!("{err:#}").contains("shout_at_partner"),
        "the error should name the unknown tool: {err:#}"
    );
    // The connection survives the protocol error.
    Conv::create(&s).await?;
    s.stop().await
}
