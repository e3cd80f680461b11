//! Working with the Salesforce CLI (`sf`): read its logins, share them, and keep
//! both tools working when Salesforce rotates refresh tokens. No clap, no printing
//! (apart from the one-line warning of a broken link, see [`link`]).
//!
//! - [`files`]: `~/.sfdx/alias.json`, `~/.sfdx/<username>.json`, sf's file lock;
//! - [`key`]: where sf keeps its encryption key (OS keychain or `key.json`);
//! - [`crypto`]: sf's AES-256-GCM in both key versions;
//! - [`link`]: the two calls of the refresh path for orgs linked to sf, and the import.
//!
//! sf's directory is `$HOME/.sfdx`, as sf finds it (Node's `os.homedir()`); tests
//! point `HOME` at a temporary directory, so no other override exists.

pub mod crypto;
pub mod files;
pub mod key;
pub mod link;
