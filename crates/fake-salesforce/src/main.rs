//! The `fake-salesforce` binary: see [`fake_salesforce::cli_main`].

fn main() {
    fake_salesforce::cli_main();
}
