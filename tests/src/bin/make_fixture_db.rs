//! Writes a fixture database for the migration test
//! (`bridge_tests::fixture::generate`): `make_fixture_db DIR`, for example
//! `cargo run -p bridge-tests --bin make_fixture_db -- tests/fixtures/main-COMMIT`.
//! Needs Docker. Run it on the commit whose database the fixture should
//! freeze; never overwrite an existing fixture.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let dir = std::env::args_os()
        .nth(1)
        .ok_or_else(|| anyhow::anyhow!("usage: make_fixture_db DIR (a new folder)"))?;
    let manifest = bridge_tests::fixture::generate(std::path::Path::new(&dir)).await?;
    println!("{}", serde_json::to_string_pretty(&manifest)?);
    Ok(())
}
