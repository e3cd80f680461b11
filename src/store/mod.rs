//! Where orgs live, behind one interface: [`OrgStore`].
//!
//! The token lifecycle ([`crate::lifecycle`]) asks an `&dyn OrgStore` for
//! everything it needs — list orgs, read one with a version, read a secret,
//! write new tokens only if the version is unchanged, the per-org refresh lock
//! and the refresh journal — and never asks which backend it has. Backends:
//!
//! - [`local`]: the metadata file [`metadata`] (`orgs.json`) plus, per org, the
//!   OS [`keychain`] or the secrets [`file`](mod@file); [`lock`] and [`journal`]
//!   files under `<sfx home>/locks/`; [`atomic`] writes; a large store's
//!   [`journaled`] updates;
//! - [`env`](mod@env): the org given by `SFX_AUTH_URL` / `SFX_REFRESH_TOKEN` /
//!   `SFX_ACCESS_TOKEN`, held in memory; it writes nothing anywhere;
//! - [`shared`]: a Redis/Valkey server shared by many machines (`--store redis://…`):
//!   secrets sealed with `SFX_STORE_KEY`, a lease per org, compare-and-set writes;
//! - [`memory`]: everything in this process (tests).
//!
//! Commands see one `&dyn OrgStore` (`Context::orgs`); what differs between
//! backends is a method of the trait (`describe`, `persistent`, `claim_check`,
//! `ready_to_save`, …), never a branch on the backend (tests/layers.rs).

pub mod applog;
pub mod atomic;
pub mod cache;
#[cfg(test)]
pub mod contract;
pub mod env;
pub mod file;
pub mod journal;
pub mod journaled;
pub mod keychain;
pub mod local;
pub mod lock;
pub mod memory;
pub mod metadata;
pub mod shared;
pub mod trust;

pub use local::{LocalStore, default_home, ensure_private_dir, refresh_lock_wait};

use crate::error::Error;
use crate::secret::Secret;
use metadata::{KnownExpiry, OrgRecord, StoreKind};

/// The secrets kept per org.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretKind {
    AccessToken,
    RefreshToken,
    ClientSecret,
}

impl SecretKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SecretKind::AccessToken => "access-token",
            SecretKind::RefreshToken => "refresh-token",
            SecretKind::ClientSecret => "client-secret",
        }
    }

    pub const ALL: [SecretKind; 3] = [
        SecretKind::RefreshToken,
        SecretKind::AccessToken,
        SecretKind::ClientSecret,
    ];
}

/// One secrets backend of the local store (keychain or file). "Nothing stored"
/// is `Ok(None)`; "cannot use the store" is `Err(Error::StoreUnavailable)`.
pub trait SecretStore {
    fn get(&self, alias: &str, kind: SecretKind) -> Result<Option<Secret>, Error>;
    /// Apply changes in the order given (`None` deletes).
    fn put(&self, alias: &str, changes: &[(SecretKind, Option<&Secret>)]) -> Result<(), Error>;
}

/// Credentials given through the environment (CI): nothing is read or written on disk.
#[derive(Debug, Clone)]
pub struct EnvCreds {
    pub access_token: Option<Secret>,
    pub refresh_token: Option<Secret>,
    pub client_secret: Option<Secret>,
    /// Whether they came as `SFX_AUTH_URL` (then a rotated refresh token is
    /// handed back as a new `SFX_AUTH_URL`).
    pub from_auth_url: bool,
}

/// An org to act on: its record, plus the secrets when they came from the environment.
#[derive(Debug, Clone)]
pub struct Org {
    pub record: OrgRecord,
    pub env: Option<EnvCreds>,
}

impl Org {
    pub fn name(&self) -> &str {
        &self.record.alias
    }
    pub fn is_env(&self) -> bool {
        self.env.is_some()
    }
}

/// Which state of an org a reader saw. Opaque: compare it, hand it back to
/// [`OrgStore::write_tokens`], nothing else. (Local: a digest of the record;
/// memory: a counter; a shared store: its own revision number.)
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Version(pub u64);

/// An org as read, with the version it was read at.
#[derive(Debug, Clone)]
pub struct Versioned {
    pub org: Org,
    pub version: Version,
}

/// Every org, metadata only.
#[derive(Debug, Clone, Default)]
pub struct Listing {
    /// The alias marked default, if any (and if it still exists).
    pub default: Option<String>,
    /// Sorted by alias.
    pub orgs: Vec<Org>,
}

/// What a compare-and-set write did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cas {
    /// Written; the org is now at this version.
    Written(Version),
    /// Someone wrote the org (or removed it) since the version given: nothing
    /// was written. Re-read and use the winner's state.
    Conflict,
}

/// New tokens for an org and the record that goes with them.
pub struct NewTokens<'a> {
    /// The whole record after the change (`issued_at`, masked token, expiry, …).
    pub record: &'a OrgRecord,
    pub access_token: &'a Secret,
    /// `Some` when Salesforce rotated the refresh token.
    pub refresh_token: Option<&'a Secret>,
}

/// An introspection answer worth remembering for `--offline`: stored only if
/// the org's current access token is still the one asked about.
pub struct Remembered<'a> {
    pub alias: &'a str,
    /// The masked access token the answer is about.
    pub masked: String,
    pub expiry: KnownExpiry,
}

/// What a store has to say while it works, handed up to its caller (no store
/// prints): the command layer shows it through `crate::messages`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Said<'a> {
    /// Waiting for another holder of a lock or lease (said once per wait,
    /// after two seconds): `sfx: {line}`.
    Waiting(&'a str),
    /// Worth knowing (secrets going to the unencrypted file): `sfx: note: {text}`.
    Note(&'a str),
}

/// Whoever hears what a store says.
type Listener = dyn Fn(Said<'_>) + Send + Sync;

/// Where a store's [`Said`] goes; by default nowhere (a store in a test).
#[derive(Clone, Default)]
pub struct Notes(Option<std::sync::Arc<Listener>>);

impl Notes {
    /// Hand every note to `f`.
    pub fn to(f: impl Fn(Said<'_>) + Send + Sync + 'static) -> Notes {
        Notes(Some(std::sync::Arc::new(f)))
    }

    pub fn tell(&self, said: Said<'_>) {
        if let Some(f) = &self.0 {
            f(said);
        }
    }
}

/// A held per-org refresh lock; dropping it releases the lock.
pub struct OrgLock {
    _held: Option<Box<dyn Send>>,
}

impl OrgLock {
    /// Wrap whatever releases the lock when dropped.
    pub fn new(held: impl Send + 'static) -> OrgLock {
        OrgLock {
            _held: Some(Box::new(held)),
        }
    }
    /// A lock with nothing to release (a store no other process shares).
    pub fn none() -> OrgLock {
        OrgLock { _held: None }
    }
}

/// Everything the token lifecycle needs from wherever orgs live.
///
/// Shared by threads (`sfx watch` workers), so `Send + Sync`. Every method is
/// time-bounded by the backend. Results: "nothing stored" is `Ok(None)` (or
/// `Ok(false)`, an empty list), an expected answer; a store that cannot be used
/// (locked keychain, unreadable file, unreachable server) is
/// `Err(Error::StoreUnavailable)` (exit 6); a damaged record is another `Err`.
/// No method prints.
pub trait OrgStore: Send + Sync {
    /// Every org with the default mark: metadata only, never opens a keychain
    /// or reads a secret.
    fn list(&self) -> Result<Listing, Error>;

    /// One org by alias (not username) and the version it was read at;
    /// `Ok(None)` when no such org is stored. Metadata only.
    fn read(&self, alias: &str) -> Result<Option<Versioned>, Error>;

    /// One secret of an org; `Ok(None)` when the store holds none. Callers
    /// decide whether a missing secret the metadata promised is an error.
    fn secret(&self, org: &Org, kind: SecretKind) -> Result<Option<Secret>, Error>;

    /// Whether a holder of the refresher key stored this record as it is, so
    /// a grant that opens no stored secret (JWT bearer) may be signed for it.
    /// Stores only this machine writes vouch by holding the access token.
    fn vouched(&self, org: &Org) -> Result<bool, Error> {
        Ok(self.secret(org, SecretKind::AccessToken)?.is_some())
    }

    /// Store new tokens and their record, only if the org is still at
    /// `expected`: otherwise write nothing and return [`Cas::Conflict`] (also
    /// when the org was removed). A rotated refresh token is written before the
    /// access token, and both before the record, so a crash never leaves a
    /// record pointing at tokens that are not stored. The record keeps
    /// whatever the default mark was.
    fn write_tokens(&self, expected: Version, new: &NewTokens<'_>) -> Result<Cas, Error>;

    /// Store one secret of an existing org as it is, outside any refresh: no
    /// version check, the record unchanged (the version too). For a refresh
    /// token another tool rotated (the Salesforce CLI, see
    /// [`crate::sfcli::link`]), kept before it is sent.
    fn put_secret(&self, org: &Org, kind: SecretKind, value: &Secret) -> Result<(), Error>;

    /// Change an org's record in place (metadata only; the version changes).
    /// `Ok(false)` when the org is not stored.
    fn update_record(
        &self,
        alias: &str,
        change: &mut dyn FnMut(&mut OrgRecord),
    ) -> Result<bool, Error>;

    /// Cache introspection answers (one write for all): each only where the
    /// org's current masked access token equals [`Remembered::masked`].
    /// Best effort for callers; a store with no cache may do nothing.
    fn remember(&self, answers: &[Remembered<'_>]) -> Result<(), Error>;

    /// Take the org's refresh lock, waiting a bounded time for another holder
    /// (then `Err(StoreUnavailable)` naming the holder). Held until the guard
    /// drops. Two aliases never share a lock.
    fn lock(&self, alias: &str) -> Result<OrgLock, Error>;

    /// Was a rotating refresh with this refresh token begun and never settled?
    /// (Caller holds the org lock.) Only a fingerprint is kept, never the token.
    fn journal_pending(&self, alias: &str, refresh_token: &Secret) -> Result<bool, Error>;

    /// Record that a rotating refresh with this token is about to be sent.
    /// `Ok(true)` when recorded; `Ok(false)` from a store that keeps no journal
    /// (its process holds the only copy of the token, so nothing can be replayed).
    fn journal_begin(&self, alias: &str, refresh_token: &Secret) -> Result<bool, Error>;

    /// The refresh is settled (its answer stored, or it certainly never took
    /// effect). Best effort: never fails.
    fn journal_settle(&self, alias: &str);

    /// Just before a journaled refresh is sent (shared store, issue #19): check
    /// that this process still holds the org's lease, stretch the lease over the
    /// whole attempt window, and record until when the attempt may still reach
    /// Salesforce. `Ok(false)`: the lease is gone, so nothing may be sent. A store
    /// whose lock cannot lapse while its holder lives (the local store) has
    /// nothing to record.
    fn attempt_begin(&self, _alias: &str, _window: std::time::Duration) -> Result<bool, Error> {
        Ok(true)
    }

    /// How long an earlier attempt, journaled and unsettled, may still reach
    /// Salesforce (`None`: it cannot any more).
    fn attempt_in_flight(&self, _alias: &str) -> Result<Option<std::time::Duration>, Error> {
        Ok(None)
    }

    /// Whether this process still holds the org's lease (always, for a lock
    /// that cannot lapse).
    fn lease_held(&self, _alias: &str) -> Result<bool, Error> {
        Ok(true)
    }

    /// Store an org from a login: its secrets (`None` deletes that kind), then
    /// its record (replacing any), optionally marking it the default. Returns
    /// warnings worth showing (e.g. old copies in another backend left behind).
    fn save_org(
        &self,
        record: &OrgRecord,
        secrets: &[(SecretKind, Option<&Secret>)],
        make_default: bool,
    ) -> Result<Vec<String>, Error>;

    /// Remove an org: its secrets, then its record (and the default mark if it
    /// was the default). `Ok(None)` when it was not stored.
    fn delete_org(&self, alias: &str) -> Result<Option<OrgRecord>, Error>;

    /// Mark an org the default (`None` clears the mark).
    fn set_default(&self, alias: Option<&str>) -> Result<(), Error>;

    /// Whether this store was opened with a reader key (the shared store, issue
    /// #20): it opens metadata and access tokens only, takes no lease, and never
    /// refreshes — it asks the refreshers instead ([`OrgStore::ask_refreshers`]).
    fn is_reader(&self) -> bool {
        false
    }

    /// A reader's way to a fresher token: ask the refreshers and wait for a token
    /// that satisfies `need`. `Ok(())`: read the org again. Only a reader's
    /// store is ever asked.
    fn ask_refreshers(&self, alias: &str, _need: &shared::FreshNeed) -> Result<(), Error> {
        Err(Error::Other(format!(
            "org {alias}: only a shared store opened with a reader key asks refreshers"
        )))
    }

    /// The store in words, for messages: "the local store", "the shared store
    /// at …".
    fn describe(&self) -> String;

    /// Where the store is when other machines share it (its address, no
    /// password); `None` for a store of this machine or this process.
    fn shared_at(&self) -> Option<String> {
        None
    }

    /// Whether what is written here outlives this process. `false` for the
    /// environment's org: nothing is stored, so a rotated refresh token must be
    /// handed back to the caller, and an answer is not worth remembering.
    fn persistent(&self) -> bool {
        true
    }

    /// How to get a live token for `org` again, when this store has its own
    /// answer (the environment's org: put a new token there); `None`: the
    /// usual refresh or login.
    fn renew_hint(&self, _org: &Org) -> Option<String> {
        None
    }

    /// Claim the next check of an org's token for `hold` (several watchers
    /// on one shared store, issue #13: the first to claim asks Salesforce, the
    /// others take the answer it stores, which it stores at once). `Ok(true)`:
    /// this process checks — always, for a store no other host watches.
    fn claim_check(&self, _alias: &str, _hold: std::time::Duration) -> Result<bool, Error> {
        Ok(true)
    }

    /// Whether the stored orgs may have changed since `seen`, a cheap reading
    /// this updates (the local store: the newest modification time of
    /// `orgs.json` and its journal). `None`: the
    /// store cannot tell cheaply; list it to find out.
    fn changed_since(&self, _seen: &mut Option<std::time::SystemTime>) -> Option<bool> {
        None
    }

    /// Before a login sends anything (and before a person spends effort in a
    /// browser): can an org whose secrets go to `kind` be saved here? Read,
    /// locked, reachable, the right key — whatever this store needs.
    fn ready_to_save(&self, _kind: StoreKind) -> Result<(), Error> {
        Ok(())
    }

    /// Every org's record by alias and the default mark, as one value: shared,
    /// not copied, where the store keeps a parse (the local store, issue #16),
    /// so take what is needed from it rather than clone it. Metadata only.
    fn snapshot(&self) -> Result<std::sync::Arc<metadata::Metadata>, Error> {
        let listing = self.list()?;
        Ok(std::sync::Arc::new(metadata::Metadata {
            version: 1,
            default: listing.default,
            orgs: listing
                .orgs
                .into_iter()
                .map(|o| (o.record.alias.clone(), std::sync::Arc::new(o.record)))
                .collect(),
        }))
    }

    /// Readers' requests this store carries, for a refresher to serve (a
    /// shared store opened with the refresher key, issue #20); `None` for any
    /// other store.
    fn serves_readers(&self) -> Option<&dyn ServesReaders> {
        None
    }
}

/// A store whose readers ask refreshers for fresher tokens (the shared store,
/// issue #20): what a refresher's `sfx watch` reads and answers.
pub trait ServesReaders: Send + Sync {
    /// Where reading starts for an org newly watched: after the requests a
    /// reader may still be waiting on.
    fn requests_since_backlog(&self) -> Result<String, Error>;

    /// Requests for the orgs in `from` (alias → where to read from, updated),
    /// blocking at most `block`.
    fn read_requests(
        &self,
        from: &mut std::collections::HashMap<String, String>,
        block: std::time::Duration,
    ) -> Result<Vec<Request>, Error>;

    /// Tell an org's waiting readers the answer.
    fn notify(&self, alias: &str, answer: &Answer) -> Result<(), Error>;

    /// An org's record, its token's known expiry and fingerprint (what a
    /// request is judged against); `None` when it is not stored.
    fn token_state(&self, alias: &str) -> Result<Option<shared::TokenState>, Error>;
}

pub use shared::{Answer, FreshNeed, Request, TokenState};

/// The keys of a shared store (`sfx store reader-key`, issue #20).
pub mod keys {
    pub use super::shared::KeyKind;
    pub use super::shared::seal::{KEY_VAR, Keys};
}

/// Which backend kind holds an org's secrets: for messages only.
pub fn describe_kind(kind: StoreKind) -> &'static str {
    match kind {
        StoreKind::Keychain => "OS keychain",
        StoreKind::File => "secrets file",
        StoreKind::Env => "environment",
        StoreKind::Shared => "shared store",
    }
}
