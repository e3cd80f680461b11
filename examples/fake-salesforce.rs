//! Runs the fake Salesforce OAuth server standalone (`cargo run --example fake-salesforce`).
fn main() {
    fake_salesforce::cli_main();
}
