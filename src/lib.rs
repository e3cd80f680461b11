//! sfx — when does this Salesforce access token expire?
//!
//! The binary (`src/main.rs`) is glue; the work is here, split so that tests and
//! the generators can reach the command definition and the core types:
//!
//! - [`cli`]: what the user typed (clap derive only);
//! - [`app`]: resolves a [`context::Context`], dispatches to [`commands`], renders;
//! - [`salesforce`]: the OAuth client — no clap, no printing;
//! - [`store`]: org metadata file, keychain / file / environment secrets, locks;
//! - [`metrics`]: what `sfx watch --listen` serves (Prometheus metrics, health);
//! - [`sfcli`]: the Salesforce CLI's files, key and lock (import, linked refresh);
//! - [`timefmt`], [`secret`], [`output`]: formatting, redaction, rendering.

pub mod app;
pub mod cli;
pub mod commands;
pub mod context;
pub mod error;
pub mod exit;
pub mod generate;
pub mod limits;
pub mod metrics;
pub mod output;
pub mod salesforce;
pub mod secret;
pub mod sfcli;
pub mod store;
pub mod timefmt;
pub mod tokens;
