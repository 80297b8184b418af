//! Intake over MCP: `propose_command` refuses every hostile command and
//! reason, and `create_conversation` every hostile role, naming the field,
//! the character (as an escape) and where it is; printable text that is
//! merely long or tall is accepted (the approve screen deals with it).

use serde_json::json;

use super::World;
use super::hostile;

/// The first character a person could not read as itself, found without
/// the bridge's classifier: every hostile text is ASCII apart from it.
fn first_bad(text: &str, allowed: &[char]) -> Option<(usize, usize)> {
    text.char_indices()
        .enumerate()
        .find(|(_, (_, c))| !(' '..='~').contains(c) && !allowed.contains(c))
        .map(|(chars, (bytes, _))| (chars, bytes))
}

#[tokio::test]
async fn intake_refuses_hostile_commands_reasons_and_roles_naming_the_character()
-> anyhow::Result<()> {
    let w = World::start().await?;
    let proposals_before = count(&w, "proposals")?;
    let mut accepted = 0;
    for case in hostile::cases() {
        let args = w.conv.args("a", json!({"command": case.text}));
        let Some((chars, bytes)) = first_bad(&case.text, &['\n', '\t']) else {
            assert!(!case.refused_at_intake, "{}", case.name);
            let p = w.server.ok("propose_command", args).await?;
            assert_eq!(p["status"], "pending_approval", "{}", case.name);
            accepted += 1;
            continue;
        };
        let why = w.server.refused("propose_command", args).await?;
        let position = format!("at character {chars} (byte {bytes}; both counted from 0)");
        assert!(
            why.starts_with("invalid argument `command`: contains \\"),
            "{}: {why}",
            case.name
        );
        assert!(why.contains(&position), "{}: {why}", case.name);
        assert!(
            why.contains("Remove that character"),
            "{}: {why}",
            case.name
        );
        // The refusal itself is printable: an agent cannot bounce the text
        // back through an error message.
        assert!(
            bridge::untrusted::first_unprintable(&why, &[]).is_none(),
            "{why:?}"
        );

        let reason: String = case.text.chars().take(200).collect();
        let why = w
            .server
            .refused(
                "propose_command",
                w.conv
                    .args("a", json!({"command": "true", "reason": reason})),
            )
            .await?;
        assert!(
            why.starts_with("invalid argument `reason`: contains \\"),
            "{}: {why}",
            case.name
        );

        // A role holding the same character (roles are 3-100 characters).
        let bad: char = case.text.chars().nth(chars).unwrap();
        for (field, args) in [
            (
                "my_role",
                json!({"my_role": format!("dev{bad}ops"), "partner_role": "reviewer"}),
            ),
            (
                "partner_role",
                json!({"my_role": "reviewer", "partner_role": format!("dev{bad}ops")}),
            ),
        ] {
            let why = w.server.refused("create_conversation", args).await?;
            assert!(
                why.starts_with(&format!("invalid argument `{field}`: contains \\"))
                    && why.contains("at character 3 (byte 3;"),
                "{}: {why}",
                case.name
            );
        }
    }
    // Roles are one line: newline and tab are refused there too.
    for role in ["dev\nops", "dev\tops"] {
        let why = w
            .server
            .refused(
                "create_conversation",
                json!({"my_role": role, "partner_role": "reviewer"}),
            )
            .await?;
        assert!(
            why.starts_with("invalid argument `my_role`: contains \\"),
            "{why}"
        );
    }
    // A tab in a command is refused: the screen shows it as `\t`, which a
    // typed backslash and `t` look exactly like.
    let why = w
        .server
        .refused(
            "propose_command",
            w.conv.args("a", json!({"command": "ls\n\tpwd"})),
        )
        .await?;
    assert!(
        why.starts_with("invalid argument `command`: contains \\t (U+0009")
            && why.contains("printf"),
        "{why}"
    );
    // Newlines stay allowed in commands, newlines and tabs in reasons.
    w.server
        .ok(
            "propose_command",
            w.conv.args(
                "a",
                json!({"command": "ls\n  pwd", "reason": "two\n\tlines"}),
            ),
        )
        .await?;
    assert_eq!(count(&w, "proposals")?, proposals_before + accepted + 1);
    w.server.stop().await
}

fn count(w: &World, table: &str) -> anyhow::Result<usize> {
    let n: i64 =
        bridge_tests::sql(&w.db)?
            .query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))?;
    Ok(usize::try_from(n)?)
}
