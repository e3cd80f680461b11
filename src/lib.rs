//! sfx — when does this Salesforce access token expire?
//!
//! The binary (`src/main.rs`) is glue; the work is here, split so that tests and
//! the generators can reach the command definition and the core types:
//!
//! - [`cli`]: what the user typed (clap derive only);
//! - [`app`]: resolves a [`context::Context`], dispatches to [`commands`], renders;
//! - [`salesforce`]: the OAuth client — no clap, no printing but the `-v` trace;
//! - [`metrics`]: what `sfx watch --listen` serves (Prometheus metrics, health);
//! - [`lifecycle`]: the token rules (expiry, refresh) over a store, a client and a clock;
//! - [`store`]: where orgs live, one interface ([`store::OrgStore`]) over the
//!   local (metadata file + keychain or secrets file) and environment backends;
//! - [`sfcli`]: the Salesforce CLI's files, key and lock (import, linked refresh);
//! - [`clock`]: time as an input;
//! - [`messages`]: the one owner of stderr (notes, prompts, traces, the error);
//! - [`backoff`]: exponential back-off with jitter (HTTP retries, watch);
//! - [`limits`]: the range of every duration and the size of every input;
//! - [`timefmt`], [`secret`], [`text`], [`output`]: formatting, redaction,
//!   sanitising, rendering.

pub mod app;
pub mod backoff;
pub mod cli;
pub mod clock;
pub mod commands;
pub mod context;
pub mod error;
pub mod exit;
#[doc(hidden)]
pub mod fuzzing;
pub mod generate;
pub mod lifecycle;
pub mod limits;
pub mod messages;
pub mod metrics;
pub mod output;
pub mod salesforce;
pub mod secret;
pub mod sfcli;
pub mod store;
pub mod text;
pub mod timefmt;
