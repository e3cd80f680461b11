//! A reader asks the refreshers for a fresher token (issue #20).
//!
//! A reader key cannot refresh: where the lifecycle would refresh, a reader calls
//! [`SharedStore::ask_refreshers`] and then reads the org again. The request
//! path (a request on `<ns>:req:{<alias>}`, the answer on `<ns>:tok:{<alias>}`)
//! and `sfx watch` serving it are built separately; until then no refresher
//! ever answers.

use std::time::Duration;

use super::SharedStore;
use crate::error::Error;

/// What a reader needs from the refreshers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FreshNeed {
    /// Unix seconds the token must outlive.
    pub valid_until: i64,
    /// The fingerprint of a token that got a 401 (the refresher refreshes even
    /// though the stored expiry looks fine).
    pub dead_token_fp: Option<String>,
}

/// How long a reader waits when nothing says otherwise (`--wait`).
pub const DEFAULT_WAIT: Duration = Duration::from_secs(60);

impl SharedStore {
    /// How long a reader waits for the refreshers (`--wait`; the serve part of
    /// #20 sets it).
    pub(crate) fn reader_wait(&self) -> Duration {
        DEFAULT_WAIT
    }

    /// Ask the refreshers for a token of `alias` that satisfies `need`, and wait
    /// up to `wait` until one is stored. `Ok(())`: the store now holds one (read
    /// the org again). No answer → exit 5.
    pub fn ask_refreshers(
        &self,
        alias: &str,
        need: &FreshNeed,
        wait: Duration,
    ) -> Result<(), Error> {
        let _ = need;
        Err(no_refresher_answered(alias, wait))
    }
}

/// Exit 5: nobody with the refresher key answered within `wait`.
pub fn no_refresher_answered(alias: &str, wait: Duration) -> Error {
    Error::network(format!(
        "no refresher answered within {} when this reader asked for a fresher token of org {}: SFX_STORE_KEY holds a reader key, which never refreshes by itself; a `sfx watch` with the refresher key serves readers (run one at a fixed address, e.g. `sfx watch --all` as a service)",
        crate::timefmt::humanize(wait),
        crate::text::sanitize(alias, 100)
    ))
}
