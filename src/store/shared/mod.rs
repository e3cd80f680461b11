//! The shared store: one login for many machines, on a Redis or Valkey server.
//!
//! Chosen with `--store redis://…` / `SFX_STORE` (see [`url`]); every key starts
//! with `SFX_STORE_NAMESPACE` (default `sfx`), written `<ns>` below:
//!
//! | key | type | holds |
//! |---|---|---|
//! | `<ns>:orgs` | set | the aliases of the stored orgs |
//! | `<ns>:default` | string | the default org's alias |
//! | `<ns>:keycheck` | string | a known text sealed with the refresher key: a machine with another key finds out before it writes |
//! | `<ns>:readercheck` | string | a known text sealed with the ACCESS key: a reader finds out whether its key is the store's |
//! | `<ns>:org:{<a>}` | hash | `v` (the org's version), `kid` (the public id of the key its secrets are sealed with), `meta` (the org record as JSON, in clear: alias, user, URLs, expiry, masked token), and `access-token` sealed with the ACCESS key (see [`seal`]) — what readers read |
//! | `<ns>:secret:{<a>}` | hash | `v`, `refresh-token`, `client-secret` sealed with the REFRESH key, and `grant` (the record's flow and key file, sealed with the REFRESH key and bound to the record: what lets a refresher sign a JWT grant for it, since readers can seal access tokens) — refreshers only (a Redis ACL keeps readers out) |
//! | `<ns>:lease:{<a>}` | string, with a TTL | the owner token of the refresh lease (see [`lease`]) |
//! | `<ns>:journal:{<a>}` | string | fingerprint of a rotating refresh token in flight (see `store::journal`) |
//! | `<ns>:inflight:{<a>}` | string, with a TTL | present while a journaled refresh may still reach Salesforce (its attempt window) |
//! | `<ns>:check:{<a>}` | string, with a TTL | a `sfx watch` on some host checked this org recently |
//! | `<ns>:probe:{<random>}` (and `…:set`) | hash, set | scratch keys of the write check a login runs before it sends anything, removed by the same script |
//!
//! Every per-org key carries the hash tag `{<a>}` (aliases never hold braces),
//! so an org's keys share one Redis Cluster slot; no script touches a global key
//! and a per-org key together. Stores written before #20 kept an org in one hash
//! `<ns>:org:<a>` (no braces) with every secret sealed with the refresher key
//! itself: sfx reads it when the new keys are absent, and the first refresher
//! that writes the org moves it to the layout above (see [`write`]).
//!
//! Safety, in one paragraph: a refresh holds the org's lease (`SET … NX PX` with
//! a random owner, renewed every third of its life while the refresh runs,
//! released by a Lua compare-and-delete); new tokens and the metadata are written
//! together by one Lua script that first compares the org's version (a fence: a
//! writer whose lease ended while it was paused cannot overwrite newer tokens);
//! every call is bounded by `--timeout` and any failure is exit 6 naming the
//! store, never a refresh without the lease. The server never sees a secret in
//! clear; metadata stays in clear so `sfx orgs` and `expires --offline` need no key,
//! but each sealed secret authenticates the fields that decide where it goes
//! (see [`seal`]). A rotating refresh stretches its lease over its attempt window
//! and records the window, so a holder paused past its lease never lets another
//! host re-send the token (see `docs/security.md`). Every call ends by one
//! deadline (see `conn`).
//! On a Redis or Valkey cluster each call goes to the node serving its key's
//! slot, redirects followed within that deadline (see `cluster`); an org's keys
//! share one slot through their `{alias}` hash tag.

mod ask;
mod attempt;
pub mod backend;
mod cluster;
mod conn;
mod keycheck;
pub mod lease;
pub mod seal;
mod slots;
pub mod url;
mod write;

use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use redis::RedisError;
use sha2::{Digest, Sha256};

use crate::clock::{Clock, SystemClock};
use crate::error::Error;
use crate::secret::Secret;
use crate::store::SecretKind;
use crate::store::metadata::OrgRecord;
pub use ask::{Answer, FreshNeed, Request, TokenState, no_refresher_answered};
pub use keycheck::reader_refused;
pub use seal::KeyKind;
use seal::{Binding, Keys};
use url::scrub;
pub use url::{StoreChoice, StoreUrl};

/// The variable naming the key prefix.
pub const NAMESPACE_VAR: &str = "SFX_STORE_NAMESPACE";
/// The default key prefix.
pub const DEFAULT_NAMESPACE: &str = "sfx";
/// How long a reader waits for a refresher unless `--wait` says otherwise.
pub const DEFAULT_WAIT: Duration = Duration::from_secs(60);

/// `SFX_STORE_NAMESPACE`, checked by [`check_namespace`].
pub fn namespace_from_env() -> Result<String, Error> {
    check_namespace(&std::env::var(NAMESPACE_VAR).unwrap_or_default())
}

/// 1–64 letters, digits and `. _ -`; empty means the default. No `:`: every key
/// is `<namespace>:…`, so a namespace with a `:` could name another namespace's
/// keys (namespace `a` and org `orgs` → `a:org:orgs`, the org list of namespace
/// `a:org`).
pub fn check_namespace(v: &str) -> Result<String, Error> {
    let v = v.trim();
    if v.is_empty() {
        return Ok(DEFAULT_NAMESPACE.to_string());
    }
    if v.len() > 64
        || !v
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
    {
        return Err(Error::usage(format!(
            "{NAMESPACE_VAR} must be 1–64 letters, digits and . _ - (it prefixes every key sfx writes to the shared store)"
        )));
    }
    Ok(v.to_string())
}

/// The default org's alias, and every org with its version.
pub type Listed = (Option<String>, Vec<(OrgRecord, u64)>);

/// What `sfx doctor` reports about the shared store.
#[derive(Debug, Clone)]
pub struct Probe {
    pub store: String,
    pub server: String,
    pub version: String,
    pub round_trip: Duration,
    /// On a cluster: how many nodes serve its slots.
    pub cluster_nodes: Option<usize>,
    pub orgs: usize,
    pub key: KeyState,
    /// The kind of key in `SFX_STORE_KEY` (`None`: not set or malformed).
    pub key_kind: Option<KeyKind>,
}

/// Whether this machine's `SFX_STORE_KEY` opens the store's secrets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyState {
    /// It opens the store's key check.
    Works,
    /// Set and well-formed; nothing has been sealed in the store yet.
    Unused,
    /// Not set.
    Missing,
    /// Set but malformed.
    Malformed,
    /// Set, but it is not the key the store's secrets were sealed with.
    Wrong,
}

/// A connection to the shared store, opened on first use and reopened after a
/// failure (so a long `sfx watch` survives a server restart). Clones share it.
#[derive(Clone)]
pub struct SharedStore {
    inner: Arc<Inner>,
}

struct Inner {
    url: StoreUrl,
    ns: String,
    timeout: Duration,
    /// How long a reader waits for a refresher (`--wait`, see `ask`).
    wait: Duration,
    /// Idle connections per node, and the slot map of a cluster. A call takes
    /// connections out (or opens them) and puts them back when it succeeded,
    /// so no lock is held across network calls and concurrent callers (watch
    /// workers) never queue behind each other.
    pools: cluster::Pools,
    /// The owner tokens of the leases this process holds, by alias.
    held: Mutex<std::collections::HashMap<String, String>>,
    key: OnceLock<Keys>,
    /// The store's key check as this process verified it (`None`: not yet).
    /// Every write of a sealed value requires it unchanged, in the same Lua
    /// script: a key rotation elsewhere makes this process check its key again
    /// before it seals anything more.
    key_verified: Mutex<Option<Vec<u8>>>,
    /// Where lease waits go (see [`crate::store::Said`]).
    notes: crate::store::Notes,
    /// Paces and bounds every wait: the lease, its renewal, a reader's wait,
    /// the cluster router's back-off.
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for SharedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SharedStore({})", self.inner.url.display())
    }
}

impl SharedStore {
    /// A store handle; nothing is contacted until the first call. Every call is
    /// bounded by `timeout` (connect, TLS handshake, each read and write).
    pub fn new(url: StoreUrl, ns: String, timeout: Duration) -> Result<SharedStore, Error> {
        install_crypto_provider();
        Ok(SharedStore {
            inner: Arc::new(Inner {
                url,
                ns,
                timeout,
                wait: DEFAULT_WAIT,
                pools: cluster::Pools::default(),
                held: Mutex::new(std::collections::HashMap::new()),
                key: OnceLock::new(),
                key_verified: Mutex::new(None),
                notes: crate::store::Notes::default(),
                clock: Arc::new(SystemClock),
            }),
        })
    }

    /// The store as shown to people (never the password).
    pub fn display(&self) -> String {
        self.inner.url.display()
    }

    pub fn namespace(&self) -> &str {
        &self.inner.ns
    }

    pub fn timeout(&self) -> Duration {
        self.inner.timeout
    }

    /// The same store, its readers waiting up to `wait` for a refresher (`--wait`).
    pub fn with_wait(mut self, wait: Duration) -> SharedStore {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.wait = wait;
        }
        self
    }

    /// The same store, telling lease waits to `notes` (alone it says nothing).
    pub fn with_notes(mut self, notes: crate::store::Notes) -> SharedStore {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.notes = notes;
        }
        self
    }

    /// How long a reader waits for a refresher (`--wait`, default 60 s).
    pub fn wait(&self) -> Duration {
        self.inner.wait
    }

    /// Wait on `clock` (the context's; a test's fake). Like `with_wait`, set
    /// before the handle is shared.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> SharedStore {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.clock = clock;
        }
        self
    }

    /// The clock this store waits on.
    pub fn clock(&self) -> &dyn Clock {
        &*self.inner.clock
    }

    fn k(&self, parts: &[&str]) -> String {
        let mut s = self.inner.ns.clone();
        for p in parts {
            s.push(':');
            s.push_str(p);
        }
        s
    }

    /// A per-org key: `<ns>:<kind>:{<alias>}` (one hash slot per org).
    fn tagged(&self, kind: &str, alias: &str) -> String {
        format!("{}:{kind}:{{{alias}}}", self.inner.ns)
    }

    /// The org's record and access token (readers read it).
    fn org_key(&self, alias: &str) -> String {
        self.tagged("org", alias)
    }

    /// The org's refresh token and client secret (refreshers only).
    fn secret_key(&self, alias: &str) -> String {
        self.tagged("secret", alias)
    }

    /// Where sfx before #20 kept the whole org.
    fn legacy_org_key(&self, alias: &str) -> String {
        self.k(&["org", alias])
    }

    /// The sentence for a failed call: names the store, never the password.
    pub(crate) fn unavailable(&self, e: &RedisError) -> Error {
        let url = &self.inner.url;
        let store = url.display();
        let detail = scrub(&e.to_string(), url);
        let lower = detail.to_ascii_lowercase();
        let what = if let Some(s) = cluster::trouble_sentence(e) {
            format!("failed: {}", scrub(s, url))
        } else if e.code() == Some("NOAUTH") {
            "requires a password, and the store URL gives none".to_string()
        } else if e.kind() == redis::ErrorKind::AuthenticationFailed
            || e.code() == Some("WRONGPASS")
        {
            "refused the user name or password in the store URL".to_string()
        } else if e.is_timeout() {
            format!(
                "did not answer within {} (--timeout)",
                crate::timefmt::flag_duration(self.inner.timeout)
            )
        } else if e.is_connection_refusal() && lower.contains("refused") {
            format!(
                "refused the connection (is a server running at {}?)",
                url.addr()
            )
        } else if url.tls
            && (lower.contains("certificate")
                || lower.contains("tls")
                || lower.contains("handshake")
                || lower.contains("invalidcontenttype")
                || lower.contains("corrupt message"))
        {
            format!("failed the TLS handshake: {detail}")
        } else if lower.contains("in answer to one call") {
            format!("failed: {detail}")
        } else if e.is_io_error() || e.is_connection_dropped() || e.is_connection_refusal() {
            format!("cannot be reached: {detail}")
        } else {
            format!("failed: {detail}")
        };
        Error::StoreUnavailable {
            message: format!("the shared store at {store} {what}"),
            hint: Some(
                "sfx never refreshes without the shared store's lock; check the server and the URL in --store / SFX_STORE (or use --store local)"
                    .into(),
            ),
            source: None,
        }
    }

    // ----- reads ---------------------------------------------------------

    /// The default org's alias, and every org with its version (two round trips).
    pub fn list(&self) -> Result<Listed, Error> {
        let orgs_key = self.k(&["orgs"]);
        let default_key = self.k(&["default"]);
        let (default, aliases): (Option<String>, Vec<String>) = self.run(|c| {
            redis::pipe()
                .cmd("GET")
                .arg(&default_key)
                .cmd("SMEMBERS")
                .arg(&orgs_key)
                .query(c)
        })?;
        let mut aliases = aliases;
        aliases.sort();
        if aliases.is_empty() {
            return Ok((default, Vec::new()));
        }
        let rows: Vec<(Option<Vec<u8>>, Option<u64>)> = self.run(|c| {
            let mut p = redis::pipe();
            for a in &aliases {
                p.cmd("HMGET").arg(self.org_key(a)).arg("meta").arg("v");
            }
            p.query(c)
        })?;
        let mut out = Vec::with_capacity(rows.len());
        for (alias, (meta, v)) in aliases.iter().zip(rows) {
            let (meta, v) = match meta {
                Some(m) => (m, v),
                // Not in the current layout: written by an earlier sfx, or
                // listed but gone (logged out between the two calls).
                None => match self.legacy_meta(alias)? {
                    (Some(m), v) => (m, v),
                    (None, _) => continue,
                },
            };
            out.push((self.parse_record(alias, &meta)?, v.unwrap_or(0)));
        }
        Ok((default, out))
    }

    /// One org and its version; `None` when it is not stored.
    pub fn read_org(&self, alias: &str) -> Result<Option<(OrgRecord, u64)>, Error> {
        let key = self.org_key(alias);
        let (meta, v): (Option<Vec<u8>>, Option<u64>) =
            self.run(|c| redis::cmd("HMGET").arg(&key).arg("meta").arg("v").query(c))?;
        let (meta, v) = match meta {
            Some(m) => (Some(m), v),
            None => self.legacy_meta(alias)?,
        };
        match meta {
            None => Ok(None),
            Some(m) => Ok(Some((self.parse_record(alias, &m)?, v.unwrap_or(0)))),
        }
    }

    /// An org as an sfx before #20 stored it (`<ns>:org:<alias>`).
    fn legacy_meta(&self, alias: &str) -> Result<(Option<Vec<u8>>, Option<u64>), Error> {
        let key = self.legacy_org_key(alias);
        self.run(|c| redis::cmd("HMGET").arg(&key).arg("meta").arg("v").query(c))
    }

    /// The default org's alias.
    pub fn default_alias(&self) -> Result<Option<String>, Error> {
        let key = self.k(&["default"]);
        self.run(|c| redis::cmd("GET").arg(&key).query(c))
    }

    fn parse_record(&self, alias: &str, bytes: &[u8]) -> Result<OrgRecord, Error> {
        // A damaged value in the store is the store's trouble: exit 6, as for
        // any other store failure.
        let damaged = |why: String| Error::StoreUnavailable {
            message: format!(
                "the record of org {} in the shared store at {} is damaged ({})",
                crate::text::sanitize(alias, 100),
                self.display(),
                crate::text::sanitize(&why, 200),
            ),
            hint: Some(format!(
                "log in to it again, or remove it with `sfx logout -o {}`",
                crate::text::sanitize(alias, 100),
            )),
            source: None,
        };
        let mut rec: OrgRecord =
            serde_json::from_slice(bytes).map_err(|e| damaged(e.to_string()))?;
        rec.check(alias).map_err(damaged)?;
        if rec.sf_link.is_some() {
            // sfx never writes a link here (it names files on one machine).
            return Err(damaged(
                "it links to the Salesforce CLI's files, which a shared store never does".into(),
            ));
        }
        Ok(rec)
    }

    /// One secret of an org, opened with `SFX_STORE_KEY` and checked against
    /// `record` — the record the caller will act on (where it sends the secret).
    /// `Ok(None)`: none stored.
    pub fn secret(&self, record: &OrgRecord, kind: SecretKind) -> Result<Option<Secret>, Error> {
        let alias = record.alias.as_str();
        let field = kind.as_str();
        let k = self.key()?;
        if kind != SecretKind::AccessToken && k.kind == KeyKind::Reader {
            return Err(reader_refused(&format!(
                "open the {} of org {alias}",
                field.replace('-', " ")
            )));
        }
        let org_key = self.org_key(alias);
        let key = if kind == SecretKind::AccessToken {
            org_key.clone()
        } else {
            self.secret_key(alias)
        };
        let (current, raw): (bool, Option<Vec<u8>>) = self.run(|c| {
            redis::pipe()
                .cmd("EXISTS")
                .arg(&org_key)
                .cmd("HGET")
                .arg(&key)
                .arg(field)
                .query(c)
        })?;
        let raw = if current {
            raw
        } else {
            let legacy = self.legacy_org_key(alias);
            self.run(|c| redis::cmd("HGET").arg(&legacy).arg(field).query(c))?
        };
        let Some(raw) = raw else { return Ok(None) };
        if !current && k.kind == KeyKind::Reader {
            return Err(self.unconverted(alias));
        }
        let binding = Binding::of(&self.inner.ns, record);
        match k.open_bound(&binding, field, &raw) {
            Some((plain, _)) => String::from_utf8(plain)
                .map(|s| Some(Secret::new(s)))
                .map_err(|_| self.tampered(alias)),
            None => Err(self.not_opened(
                alias,
                &format!("the {} of org {alias}", field.replace('-', " ")),
            )),
        }
    }

    /// Whether a holder of the refresher key stored this record as it is: what
    /// lets a refresher re-run a grant that opens no refresh token or client
    /// secret (the JWT bearer flow signs with a key file on its own disk). The
    /// `grant` field of the org's secret hash, sealed with the REFRESH key and
    /// bound to the record, names the flow and the key file; an org an earlier
    /// sfx stored is vouched for by its access token sealed with the refresher
    /// key itself. An access token sealed with the ACCESS key vouches for
    /// nothing: every reader holds that key.
    pub fn vouched(&self, record: &OrgRecord) -> Result<bool, Error> {
        let alias = record.alias.as_str();
        let k = self.key()?;
        if k.kind == KeyKind::Reader {
            return Err(reader_refused(&format!("re-run the grant of org {alias}")));
        }
        let org_key = self.org_key(alias);
        let sec = self.secret_key(alias);
        let field = SecretKind::AccessToken.as_str();
        let (current, grant, at): (bool, Option<Vec<u8>>, Option<Vec<u8>>) = self.run(|c| {
            redis::pipe()
                .cmd("EXISTS")
                .arg(&org_key)
                .cmd("HGET")
                .arg(&sec)
                .arg(write::GRANT)
                .cmd("HGET")
                .arg(&org_key)
                .arg(field)
                .query(c)
        })?;
        let binding = Binding::of(&self.inner.ns, record);
        if let (true, Some(g)) = (current, grant) {
            let Some((plain, _)) = k.open_bound(&binding, write::GRANT, &g) else {
                return Err(self.not_opened(alias, &format!("the record of org {alias}")));
            };
            if plain != write::grant_text(record).into_bytes() {
                return Err(self.tampered(alias));
            }
            return Ok(true);
        }
        let at = if current {
            at
        } else {
            let legacy = self.legacy_org_key(alias);
            self.run(|c| redis::cmd("HGET").arg(&legacy).arg(field).query(c))?
        };
        let Some(raw) = at else { return Ok(false) };
        match k.open_bound(&binding, field, &raw) {
            // Sealed with the ACCESS key, which readers hold too.
            Some((_, seal::Form::Derived)) => Ok(false),
            Some(_) => Ok(true),
            None => Err(self.not_opened(alias, &format!("the access token of org {alias}"))),
        }
    }

    // ----- doctor --------------------------------------------------------

    /// Reachable, round trip, server version, whether the key works.
    pub fn probe(&self) -> Result<Probe, Error> {
        let started = self.clock().instant();
        self.run(|c| redis::cmd("PING").query::<String>(c))?;
        let round_trip = self.clock().instant().saturating_duration_since(started);
        let info: String = self.run(|c| redis::cmd("INFO").arg("server").query(c))?;
        let field = |name: &str| {
            info.lines()
                .find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix(':')))
                .map(|v| crate::text::sanitize(v.trim(), 40))
        };
        let (server, version) = match field("valkey_version") {
            Some(v) => ("Valkey".to_string(), v),
            None => (
                "Redis".to_string(),
                field("redis_version").unwrap_or_else(|| "?".into()),
            ),
        };
        let cluster_nodes = self.cluster_nodes()?;
        let orgs_key = self.k(&["orgs"]);
        let orgs: usize = self.run(|c| redis::cmd("SCARD").arg(&orgs_key).query(c))?;
        let key = if self.inner.key.get().is_none()
            && std::env::var(seal::KEY_VAR)
                .unwrap_or_default()
                .trim()
                .is_empty()
        {
            KeyState::Missing
        } else {
            self.key_state_now()
        };
        let key_kind = self.key().ok().map(|k| k.kind);
        Ok(Probe {
            store: self.display(),
            server,
            version,
            round_trip,
            cluster_nodes,
            orgs,
            key,
            key_kind,
        })
    }
}

/// rustls needs one process-wide crypto provider; sfx uses ring (as ureq does).
fn install_crypto_provider() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// A token's fingerprint as the store keeps it (the journal, a reader's request
/// after a 401): the first 12 bytes of its SHA-256, in hex. Never the token.
pub fn token_fingerprint(token: &Secret) -> String {
    fingerprint(token)
}

fn fingerprint(token: &Secret) -> String {
    let digest = Sha256::digest(token.expose().as_bytes());
    digest[..12].iter().map(|b| format!("{b:02x}")).collect()
}

/// A name for this machine in lease owners and watch claims (diagnostics only).
pub(crate) fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .or_else(|| std::env::var("COMPUTERNAME").ok())
        .map(|h| crate::text::sanitize(h.trim(), 64))
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "host".into())
}

#[cfg(test)]
mod namespace_tests {
    use super::check_namespace;

    #[test]
    fn a_namespace_is_plain_and_cannot_reach_into_another() {
        assert_eq!(check_namespace("").unwrap(), "sfx");
        assert_eq!(check_namespace(" team-a.prod_1 ").unwrap(), "team-a.prod_1");
        for bad in ["a:org", "a b", "ns\u{202e}", &"x".repeat(65), "é"] {
            let e = check_namespace(bad).unwrap_err();
            assert_eq!(e.exit(), crate::exit::Exit::Usage, "{bad}");
            assert!(e.to_string().contains("SFX_STORE_NAMESPACE"), "{e}");
        }
    }
}
