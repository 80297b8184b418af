//! Fuzzes tool-argument decoding through the real handler
//! (`BridgeServer::dispatch`, YOLO on, temporary database). Input: a tool and
//! an argument map built by `arbitrary` from the tools' own field names and
//! from values near every documented bound (lengths 0/1/3/100/1024/50 000,
//! ids one hex digit short, wrong types, nulls, NUL bytes), optionally as
//! edits to a set of arguments the contract accepts.
//!
//! Properties: besides `check_answer` (no protocol error for a known tool, a
//! refusal is non-empty and names an argument), decoding agrees exactly with
//! the documented contract in `bridge_fuzz::TOOLS`: arguments it refuses are
//! refused as `invalid argument`, and arguments it accepts get past decoding
//! (created, or refused for the random token, never for their shape).
#![no_main]

use std::sync::Mutex;

use arbitrary::Arbitrary;
use bridge_fuzz::{
    Fixture, TOOLS, UNAUTHORIZED, arguments_of, check_answer, contract_refuses, first_text,
};
// Not in `fuzz/tests/replay.rs`, which defines its own `fuzz_target!`.
#[cfg(not(test))]
use libfuzzer_sys::fuzz_target;
use rmcp::model::JsonObject;
use serde_json::Value;

static FIXTURE: Mutex<Option<Fixture>> = Mutex::new(None);

const FIELDS: &[&str] = &[
    "conversation_id",
    "session_id",
    "token",
    "my_role",
    "partner_role",
    "message",
    "action_type",
    "files_involved",
    "wait_seconds",
    "peek",
    "since_id",
    "status",
    "command",
    "timeout_seconds",
    "reason",
    "proposal_id",
    "approval_token",
    "dry_run",
    "participants",
    "to",
    "idempotency_key",
    "partner",
    "role",
    "up_to_id",
];
const WORDS: &[&str] = &[
    "a",
    "b",
    "c",
    "A",
    "",
    " ",
    "\0",
    "info",
    "question",
    "proposal",
    "blocked",
    "complete",
    "working",
    "waiting",
    "Info",
    "ls -la",
    "rm -rf /",
    "echo hi\0",
    "backend_developer",
];

#[derive(Arbitrary, Debug)]
enum Tool {
    Known(u8),
    Other(String),
}

#[derive(Arbitrary, Debug)]
enum Key {
    Known(u8),
    Other(String),
}

#[derive(Arbitrary, Debug)]
enum Text {
    Raw(String),
    Word(u8),
    /// `unit` repeated: hits length bounds cheaply.
    Repeat {
        unit: char,
        count: u16,
    },
    Conversation([u8; 8]),
    Token([u8; 32]),
    Proposal([u8; 8]),
    Approval([u8; 24]),
    /// One of the above with its last character dropped or uppercased.
    Tweaked(Box<Text>, bool),
}

impl Text {
    fn build(&self) -> String {
        let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
        match self {
            Text::Raw(s) => s.clone(),
            Text::Word(i) => WORDS[*i as usize % WORDS.len()].to_owned(),
            Text::Repeat { unit, count } => unit.to_string().repeat(*count as usize),
            Text::Conversation(b) => format!("conv_{}", hex(b)),
            Text::Token(b) => hex(b),
            Text::Proposal(b) => format!("prop_{}", hex(b)),
            Text::Approval(b) => format!("apv_{}", hex(b)),
            Text::Tweaked(inner, upper) => {
                let mut s = inner.build();
                if *upper {
                    s.to_uppercase()
                } else {
                    s.pop();
                    s
                }
            }
        }
    }
}

#[derive(Arbitrary, Debug)]
enum Val {
    Null,
    Bool(bool),
    Small(u8),
    Int(i64),
    UInt(u64),
    Float(f64),
    Str(Text),
    Array(Vec<Val>),
    Object(Vec<(String, Val)>),
}

impl Val {
    fn build(&self) -> Value {
        match self {
            Val::Null => Value::Null,
            Val::Bool(b) => Value::Bool(*b),
            Val::Small(n) => Value::from(*n),
            Val::Int(n) => Value::from(*n),
            Val::UInt(n) => Value::from(*n),
            Val::Float(f) => serde_json::Number::from_f64(*f).map_or(Value::Null, Value::Number),
            Val::Str(t) => Value::String(t.build()),
            Val::Array(items) => Value::Array(items.iter().map(Val::build).collect()),
            Val::Object(items) => {
                Value::Object(items.iter().map(|(k, v)| (k.clone(), v.build())).collect())
            }
        }
    }
}

#[derive(Arbitrary, Debug)]
struct Call {
    tool: Tool,
    /// Start from arguments the contract accepts (made from these bytes),
    /// so edits land next to the boundary rather than far from it.
    template: Option<[u8; 32]>,
    /// `arguments` absent altogether rather than `{}`.
    absent: bool,
    /// Set (or, with None, remove) these arguments.
    edits: Vec<(Key, Option<Val>)>,
}

/// Arguments every tool accepts; which of them `tool` takes is decided by
/// keeping only its own.
fn template(tool: &str, b: &[u8; 32]) -> JsonObject {
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    let all = serde_json::json!({
        "conversation_id": format!("conv_{}", hex(&b[..8])),
        "session_id": if b[0] & 1 == 0 { "a" } else { "b" },
        "token": hex(b),
        "my_role": "backend_developer",
        "partner_role": "frontend_developer",
        "message": "the tests pass; please review",
        "action_type": "info",
        "files_involved": ["src/lib.rs"],
        "wait_seconds": 0,
        "peek": true,
        "since_id": 0,
        "status": "working",
        "command": "cargo test",
        "timeout_seconds": 60,
        "reason": "run the tests",
        "proposal_id": format!("prop_{}", hex(&b[8..16])),
        "approval_token": format!("apv_{}", hex(&b[8..32])),
        "dry_run": true,
        "to": ["b"],
        "idempotency_key": "retry-1",
        "partner": "b",
        "role": "reviewer",
        "up_to_id": 0,
    });
    let own = arguments_of(tool).unwrap_or_default();
    let mut args = all.as_object().cloned().unwrap_or_default();
    args.retain(|k, _| own.contains(&k.as_str()));
    args
}

fuzz_target!(|call: Call| {
    let tool = match &call.tool {
        Tool::Known(i) => TOOLS[*i as usize % TOOLS.len()].0.to_owned(),
        Tool::Other(s) => s.clone(),
    };
    let mut args = call
        .template
        .map(|b| template(&tool, &b))
        .unwrap_or_default();
    for (k, v) in &call.edits {
        let key = match k {
            Key::Known(i) => FIELDS[*i as usize % FIELDS.len()].to_owned(),
            Key::Other(s) => s.clone(),
        };
        match v {
            Some(v) => args.insert(key, v.build()),
            None => args.remove(&key),
        };
    }
    let sent = (!call.absent || !args.is_empty()).then_some(args);
    let mut fixture = FIXTURE.lock().unwrap_or_else(|p| p.into_inner());
    let fixture = fixture.get_or_insert_with(Fixture::new);
    fixture.begin_input();
    let answer = fixture.call(&tool, sent.clone());
    check_answer(&tool, sent.as_ref(), &answer);

    let empty = JsonObject::new();
    let Some(refuses) = contract_refuses(&tool, sent.as_ref().unwrap_or(&empty)) else {
        return;
    };
    let result = answer.expect("checked above");
    let text = first_text(&result);
    if refuses {
        assert!(
            result.is_error == Some(true) && text.starts_with("invalid argument `"),
            "{tool}: the contract refuses {sent:?}, the bridge said {text:?}"
        );
    } else if tool == "create_conversation" {
        assert_ne!(
            result.is_error,
            Some(true),
            "{tool}: refused valid {sent:?}: {text}"
        );
    } else {
        assert_eq!(text, UNAUTHORIZED, "{tool}: valid-shaped {sent:?}");
    }
});
