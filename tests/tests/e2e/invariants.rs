//! Architecture invariants, checked mechanically: the crate graph is
//! bridge → bridge-state ← runner (the bridge never depends on bollard, the
//! runner never on the MCP server, the shared crate on neither); the bridge
//! starts no process but the runner; containers are created in one place
//! only; stored texts go through `Redacted`; the runner opens workspace
//! files only confined.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;

fn workspace() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

/// The transitive normal (non-dev) dependencies of a workspace package.
fn dependency_closure(package: &str) -> anyhow::Result<BTreeSet<String>> {
    let out = std::process::Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(["metadata", "--format-version", "1"])
        .current_dir(workspace())
        .output()?;
    anyhow::ensure!(
        out.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    let names: HashMap<String, String> = meta["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["id"].as_str().unwrap().to_owned(),
                p["name"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let nodes: HashMap<String, Vec<String>> = meta["resolve"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            let deps = n["deps"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|d| {
                    d["dep_kinds"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .any(|k| k["kind"].is_null())
                })
                .map(|d| d["pkg"].as_str().unwrap().to_owned())
                .collect();
            (n["id"].as_str().unwrap().to_owned(), deps)
        })
        .collect();
    let root = names
        .iter()
        .find(|(_, n)| *n == package)
        .map(|(id, _)| id.clone())
        .unwrap();
    let mut seen = BTreeSet::new();
    let mut stack = vec![root];
    while let Some(id) = stack.pop() {
        if seen.insert(id.clone()) {
            stack.extend(nodes.get(&id).cloned().unwrap_or_default());
        }
    }
    Ok(seen.into_iter().map(|id| names[&id].clone()).collect())
}

#[test]
fn bridge_does_not_depend_on_bollard_and_runner_does() -> anyhow::Result<()> {
    let bridge = dependency_closure("bridge")?;
    assert!(
        !bridge.contains("bollard"),
        "the bridge must not be able to talk to Docker"
    );
    assert!(!bridge.contains("bollard-stubs"));
    let runner = dependency_closure("runner")?;
    assert!(runner.contains("bollard"));
    Ok(())
}

/// The MCP server's own stack: what only the bridge may link.
const MCP_SERVER: [&str; 3] = ["rmcp", "axum", "comfy-table"];
/// The container engine client: what only the runner may link.
const ENGINE: [&str; 2] = ["bollard", "bollard-stubs"];

#[test]
fn the_runner_links_the_shared_crate_but_not_the_mcp_server() -> anyhow::Result<()> {
    let runner = dependency_closure("runner")?;
    assert!(runner.contains("bridge-state"));
    assert!(
        !runner.contains("bridge"),
        "the runner must depend on bridge-state, never on the bridge"
    );
    for name in MCP_SERVER {
        assert!(!runner.contains(name), "the runner links {name}");
    }
    Ok(())
}

#[test]
fn the_shared_crate_links_neither_the_mcp_server_nor_the_engine() -> anyhow::Result<()> {
    let state = dependency_closure("bridge-state")?;
    for name in MCP_SERVER
        .iter()
        .chain(&ENGINE)
        .chain(&["bridge", "runner"])
    {
        assert!(!state.contains(*name), "bridge-state links {name}");
    }
    let bridge = dependency_closure("bridge")?;
    assert!(bridge.contains("bridge-state"));
    assert!(!bridge.contains("runner"));
    for name in ENGINE {
        assert!(!bridge.contains(name), "the bridge links {name}");
    }
    Ok(())
}

fn rust_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = vec![];
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(rust_files(&p));
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
    out
}

fn files_mentioning(dir: &str, needle: &str) -> Vec<String> {
    rust_files(&workspace().join(dir))
        .into_iter()
        .filter(|p| std::fs::read_to_string(p).unwrap().contains(needle))
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect()
}

#[test]
fn the_bridge_starts_only_the_runner() {
    // clippy.toml forbids these calls; this also catches an `allow`.
    assert_eq!(
        files_mentioning("bridge/src", "process::Command::new"),
        ["runner_process.rs"]
    );
    assert!(files_mentioning("bridge/src", "std::process::Command").len() <= 1);
    assert!(files_mentioning("bridge/src", "bollard").is_empty());
    // The shared crate is linked by the bridge: it starts nothing either.
    assert!(files_mentioning("state/src", "process::Command").is_empty());
    assert!(files_mentioning("state/src", "bollard").is_empty());
}

#[test]
fn containers_are_created_only_by_the_bollard_engine_from_the_hardened_spec() {
    // runner/clippy.toml forbids these calls (and the bollard::Docker type)
    // outside engine/docker.rs; this also catches an `allow`.
    assert_eq!(
        files_mentioning("runner/src", ".create_container("),
        ["docker.rs"]
    );
    assert_eq!(
        files_mentioning("runner/src", ".attach_container("),
        ["docker.rs"]
    );
    assert_eq!(
        files_mentioning("runner/src", "bollard::Docker"),
        ["docker.rs"]
    );
    // The engine creates containers only from a HardenedSpec, whose one
    // constructor is container_spec.
    assert_eq!(
        files_mentioning("runner/src", "HardenedSpec(ContainerCreateBody"),
        ["spec.rs"]
    );
    // Commands are handed to the sandbox's waiting process, never exec'd.
    assert!(files_mentioning("runner/src", ".create_exec(").is_empty());
    assert!(files_mentioning("runner/src", "process::Command::new").is_empty());
}

/// The non-test part of a source file (unit tests may build fixtures freely).
fn production_source(p: &Path) -> String {
    let text = std::fs::read_to_string(p).unwrap();
    match text.find("#[cfg(test)]\nmod tests") {
        Some(i) => text[..i].to_owned(),
        None => text,
    }
}

/// The Rust files below `dir` that are not tests.
fn production_files(dir: &str) -> Vec<std::path::PathBuf> {
    let root = workspace().join(dir);
    rust_files(&root)
        .into_iter()
        .filter(|p| {
            !p.strip_prefix(&root)
                .unwrap()
                .components()
                .any(|c| c.as_os_str() == "tests" || c.as_os_str() == "tests.rs")
        })
        // `#[cfg(test)] #[path = "x_tests.rs"] mod tests;` files are tests too.
        .filter(|p| !p.to_string_lossy().ends_with("_tests.rs"))
        .collect()
}

fn production_files_mentioning(dir: &str, needle: &str) -> Vec<String> {
    let mut files: Vec<String> = production_files(dir)
        .into_iter()
        .filter(|p| production_source(p).contains(needle))
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    files.sort();
    files
}

#[test]
fn messages_failures_and_results_are_written_only_by_functions_that_take_redacted() {
    // `messages::insert`, `yolo::insert_proposal`,
    // `yolo::record_failure` and `yolo::record_result` take `Redacted`, which only the redactor constructs; no other SQL may
    // write these columns.
    for dir in ["bridge/src", "runner/src", "state/src"] {
        let messages = production_files_mentioning(dir, "INSERT INTO messages");
        let proposals = production_files_mentioning(dir, "INSERT INTO proposals");
        let sql_writes = |column: &str| {
            let mut files: Vec<String> = ["= ?", "= '", "=?", "='"]
                .iter()
                .flat_map(|op| production_files_mentioning(dir, &format!("{column} {op}")))
                .chain(production_files_mentioning(dir, &format!("SET {column}")))
                .collect();
            files.sort();
            files.dedup();
            files
        };
        let (failure, result) = (sql_writes("failure"), sql_writes("result"));
        if dir == "state/src" {
            // store.rs: migration 4 copies rows already stored (redacted)
            // into the new table; no new text enters there.
            assert_eq!(messages, ["messages.rs", "store.rs"]);
            assert_eq!(proposals, ["proposals.rs"]);
            assert_eq!(failure, ["proposals.rs"]);
            assert_eq!(result, ["proposals.rs"]);
        } else {
            assert!(
                messages.is_empty()
                    && proposals.is_empty()
                    && failure.is_empty()
                    && result.is_empty(),
                "{dir} writes messages, proposals, failures or results itself"
            );
        }
    }
    let repository = production_source(&workspace().join("state/src/messages.rs"));
    assert_eq!(repository.matches("INSERT INTO messages").count(), 1);
    assert!(repository.contains("pub body: &'a Redacted,\n    pub files_json: &'a Redacted,"));
    let yolo = production_source(&workspace().join("state/src/yolo/proposals.rs"));
    assert!(yolo.contains("pub command: &'a Redacted,\n    pub reason: Option<&'a Redacted>,"));
}

/// SQL text (statement keywords in the source) and the calls that run
/// statements, in the non-test code below `dir`, as `(file, what)`. A call
/// `.execute(` counts when its first argument looks like SQL (a string
/// literal or an upper-case constant), not `Bridge::execute(caller, …)`.
fn sql_in(dir: &str) -> Vec<(String, String)> {
    let mut hits = vec![];
    for needle in [
        "SELECT ",
        "INSERT INTO",
        "INSERT OR",
        "UPDATE ",
        "DELETE FROM",
        "CREATE TABLE",
        ".prepare(",
        ".prepare_cached(",
        ".query_row(",
        ".query_map(",
        ".execute_batch(",
        ".pragma_update(",
        ".pragma_query",
    ] {
        for file in production_files_mentioning(dir, needle) {
            hits.push((file, needle.to_owned()));
        }
    }
    for p in production_files(dir) {
        let text = production_source(&p);
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        for (i, _) in text.match_indices(".execute(") {
            let arg = text[i + ".execute(".len()..].trim_start();
            let first = arg.chars().next().unwrap_or(' ');
            if first == '"'
                || first == '&'
                || first.is_ascii_uppercase()
                || arg.starts_with("r\"")
                || arg.starts_with("r#")
            {
                let call: String = arg.lines().next().unwrap_or("").chars().take(40).collect();
                hits.push((name.clone(), format!(".execute({call}")));
            }
        }
    }
    hits
}

#[test]
fn the_runner_has_no_sql_of_its_own() {
    // Every read and write of the shared tables is a typed repository
    // function in bridge-state (jobs, yolo, messages, store).
    assert_eq!(sql_in("runner/src"), Vec::<(String, String)>::new());
    // Nor do its tests: they go through the repositories too.
    for needle in [
        "SELECT ",
        "INSERT INTO",
        "UPDATE ",
        "DELETE FROM",
        "rusqlite",
    ] {
        assert_eq!(
            files_mentioning("runner/src", needle),
            Vec::<String>::new(),
            "`{needle}` in the runner"
        );
    }
    let manifest = std::fs::read_to_string(workspace().join("runner/Cargo.toml")).unwrap();
    assert!(
        !manifest.contains("rusqlite"),
        "the runner depends on rusqlite"
    );
}

#[test]
fn the_bridge_has_no_sql_of_its_own() {
    // The bridge opens transactions (one tool call, one transaction) but
    // every statement in them is a typed repository function in
    // bridge-state (conversations, messages, yolo, audit, store).
    assert_eq!(sql_in("bridge/src"), Vec::<(String, String)>::new());
    // The checks above see statements, not prose: bridge-state has them.
    assert!(!sql_in("state/src").is_empty());
}

#[test]
fn the_runner_touches_workspace_files_only_through_confined_rs() {
    // A read-write workspace is the sandbox's: every open below it must go
    // through openat2 with RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS (confined.rs).
    // Path-based std::fs calls follow symlinks, so the runner has none
    // except reading its own container's /etc/hostname (host_paths.rs).
    for needle in [
        "std::fs::read",
        "std::fs::write",
        "std::fs::create_dir",
        "std::fs::metadata",
        "std::fs::canonicalize",
        "File::open",
        "File::create",
        "OpenOptions",
        ".exists()",
        ".is_file()",
        ".is_dir()",
        "read_dir(",
    ] {
        let hits = production_files_mentioning("runner/src", needle);
        // host_paths.rs reads its own container's /etc/hostname; policy_watch.rs
        // stats the operator's policy file (an operator path given by flag,
        // never one below a workspace) to notice edits.
        let allowed: &[&str] = match needle {
            "std::fs::read" => &["host_paths.rs"],
            "std::fs::metadata" => &["policy_watch.rs"],
            _ => &[],
        };
        assert_eq!(hits, allowed, "`{needle}` outside confined.rs");
    }
    let host_paths = production_source(&workspace().join("runner/src/sandbox/host_paths.rs"));
    assert_eq!(host_paths.matches("std::fs::read").count(), 1);
    assert!(host_paths.contains("std::fs::read_to_string(\"/etc/hostname\")"));
}
