//! How the `bridge` executable is linked (`bridge/build.rs`).

use anyhow::Context;

/// Where glibc 2.36 or later is what the build links against, `bridge` is
/// linked with packed relative relocations: its dynamic section has a
/// `DT_RELR` entry, so start-up reads kilobytes of relocations, not the
/// ~870 KB of `.rela.dyn` that each idle server kept resident.
#[test]
fn the_bridge_packs_its_relative_relocations_on_glibc_2_36_or_later() -> anyhow::Result<()> {
    let features = std::fs::read_to_string("/usr/include/features.h").unwrap_or_default();
    let define = |name: &str| -> Option<u32> {
        features.lines().find_map(|l| {
            let mut w = l.split_whitespace();
            (w.next()? == "#define" && w.next()? == name).then(|| w.next()?.parse().ok())?
        })
    };
    let glibc = define("__GLIBC__").zip(define("__GLIBC_MINOR__"));
    if glibc.is_none_or(|v| v < (2, 36)) {
        eprintln!(
            "SKIP: this machine's glibc headers say {glibc:?}, before 2.36: no DT_RELR expected"
        );
        return Ok(());
    }
    let bridge = bridge_tests::bin("bridge");
    let out = std::process::Command::new("readelf")
        .arg("--dynamic")
        .arg(&bridge)
        .output()
        .context("running readelf (binutils, which linking needs anyway)")?;
    let dynamic = String::from_utf8_lossy(&out.stdout);
    assert!(
        dynamic.contains("(RELR)"),
        "{} has no DT_RELR entry:\n{dynamic}",
        bridge.display()
    );
    Ok(())
}
