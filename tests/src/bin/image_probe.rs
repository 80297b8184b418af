//! Test helper for `tests/tests/e2e/image_cleanup.rs`: builds this process's
//! labelled sandbox image (starting its reaper), prints the run id and the
//! tag, then ends as told: `exit` (normally), `panic`, or `wait` (until its
//! stdin closes, so the test can SIGKILL it).

fn main() {
    let how = std::env::args().nth(1).unwrap_or_default();
    let tag = bridge_tests::yolo::sandbox_image();
    println!("{} {tag}", bridge_tests::images::run_id());
    use std::io::Write;
    let _ = std::io::stdout().flush();
    match how.as_str() {
        "exit" => {}
        "panic" => panic!("image_probe: panicking on purpose, with the image built"),
        "wait" => {
            let _ = std::io::Read::read_to_end(&mut std::io::stdin(), &mut Vec::new());
        }
        other => {
            eprintln!("usage: image_probe exit|panic|wait (got {other:?})");
            std::process::exit(2);
        }
    }
}
