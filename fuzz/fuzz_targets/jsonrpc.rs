//! Fuzzes the JSON-RPC input path as the stdio server reads it: the bytes go
//! through rmcp's own line codec (`JsonRpcMessageCodec<ClientJsonRpcMessage>`,
//! the parse the transport runs on every line: BOM and CR stripping,
//! tolerated unknown notifications), and every `tools/call` request is run
//! by the real handler (`BridgeServer::dispatch`) against a temporary
//! database. `@CONV@`, `@TOKA@` and `@TOKB@` in the input become the ids of a
//! real conversation, so seeds reach authenticated sends, reads, proposals.
//!
//! Properties: no panic anywhere on the path; `check_answer` for every call;
//! arguments the documented contract refuses are refused as invalid; and a
//! message the bridge accepted reads back from the partner's inbox exactly as
//! the redactor renders it (nothing is stored unredacted); a proposal the
//! bridge accepted is one the policy allows and that holds no secret.
#![no_main]

use std::borrow::Cow;
use std::sync::Mutex;

use bridge_state::policy::Policy;

use bridge_fuzz::{Fixture, YOLO_MODE, check_answer, contract_refuses, first_text};
// Not in `fuzz/tests/replay.rs`, which defines its own `fuzz_target!`.
#[cfg(not(test))]
use libfuzzer_sys::fuzz_target;
use rmcp::model::{ClientJsonRpcMessage, ClientRequest, JsonObject, JsonRpcMessage};
use rmcp::transport::async_rw::JsonRpcMessageCodec;
use serde_json::{Value, json};
use tokio_util::codec::Decoder;

static FIXTURE: Mutex<Option<Fixture>> = Mutex::new(None);

/// Every message in `data`, as the transport would decode it; lines that do
/// not parse are skipped, as the server does.
fn messages(data: &[u8]) -> Vec<ClientJsonRpcMessage> {
    let mut codec = JsonRpcMessageCodec::<ClientJsonRpcMessage>::default();
    let mut buf = bytes::BytesMut::from(data);
    let mut out = Vec::new();
    loop {
        match codec.decode(&mut buf) {
            Ok(Some(m)) => out.push(m),
            Ok(None) => break,
            Err(_) => continue,
        }
    }
    if let Ok(Some(m)) = codec.decode_eof(&mut buf) {
        out.push(m);
    }
    out
}

fn splice(data: &[u8], f: &Fixture) -> Vec<u8> {
    let text = String::from_utf8_lossy(data);
    if !text.contains('@') {
        return data.to_vec();
    }
    text.replace("@CONV@", &f.conversation_id)
        .replace("@TOKA@", &f.token_a)
        .replace("@TOKB@", &f.token_b)
        .into_bytes()
}

/// After an accepted send, the partner's copy must be the redacted message.
fn check_stored(f: &mut Fixture, args: &JsonObject, message_id: i64) {
    let (Some(message), Some(from)) = (
        args.get("message").and_then(Value::as_str),
        args.get("session_id").and_then(Value::as_str),
    ) else {
        return;
    };
    let (partner, token) = match from {
        "a" => ("b", f.token_b.clone()),
        _ => ("a", f.token_a.clone()),
    };
    let read = json!({
        "conversation_id": f.conversation_id, "session_id": partner, "token": token,
        "peek": true, "since_id": message_id - 1,
    });
    let inbox = f
        .call("check_messages", read.as_object().cloned())
        .expect("known tool");
    let Some(inbox) = inbox.structured_content.clone() else {
        panic!("the partner cannot read its inbox: {inbox:?}");
    };
    let stored = inbox["messages"]
        .as_array()
        .and_then(|ms| ms.iter().find(|m| m["id"] == message_id))
        .unwrap_or_else(|| panic!("message {message_id} not in the partner's inbox: {inbox}"));
    let want = f.bridge.redactor().redact(message).into_owned();
    assert_eq!(
        stored["message"].as_str(),
        Some(want.as_str()),
        "stored copy is not the redacted message"
    );
}

fuzz_target!(|data: &[u8]| {
    let mut fixture = FIXTURE.lock().unwrap_or_else(|p| p.into_inner());
    let f = fixture.get_or_insert_with(Fixture::new);
    f.begin_input();
    for message in messages(&splice(data, f)) {
        let JsonRpcMessage::Request(request) = message else {
            continue;
        };
        let ClientRequest::CallToolRequest(call) = request.request else {
            continue;
        };
        let (tool, args) = (call.params.name.to_string(), call.params.arguments);
        let answer = f.call(&tool, args.clone());
        check_answer(&tool, args.as_ref(), &answer);
        let Ok(result) = answer else { continue };
        let empty = JsonObject::new();
        if contract_refuses(&tool, args.as_ref().unwrap_or(&empty)) == Some(true) {
            let text = first_text(&result);
            assert!(
                text.starts_with("invalid argument `"),
                "{tool}: contract refuses {args:?}, bridge said {text:?}"
            );
        }
        let sent_id = result
            .structured_content
            .as_ref()
            .and_then(|s| s["message_id"].as_i64());
        if tool == "propose_command" && result.is_error != Some(true) {
            let command = args
                .as_ref()
                .and_then(|a| a["command"].as_str())
                .unwrap_or_default();
            let verdict = Policy::builtin().check(YOLO_MODE, command);
            assert!(
                verdict.is_allowed(),
                "proposal accepted, policy says {verdict:?}: {command:?}"
            );
            let clean = matches!(f.bridge.redactor().redact(command), Cow::Borrowed(_));
            assert!(clean, "proposal holding a secret accepted: {command:?}");
        }
        if tool == "send_to_partner"
            && result.is_error != Some(true)
            && let (Some(id), Some(args)) = (sent_id, &args)
        {
            check_stored(f, args, id);
        }
    }
});
