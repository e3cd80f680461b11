//! The lease, the journal and the attempt window of a refresh, and the claims of
//! `sfx watch` on several hosts.

use std::time::Duration;

use super::{SharedStore, fingerprint, hostname, lease};
use crate::error::Error;
use crate::secret::Secret;

impl SharedStore {
    // ----- lease, journal, watch claims ------------------------------------

    /// Hold the org's refresh lease, waiting at most `wait` for another holder.
    pub fn lease(&self, alias: &str, wait: Duration) -> Result<lease::Lease, Error> {
        lease::Lease::acquire(self, alias, wait)
    }

    fn journal_key(&self, alias: &str) -> String {
        self.tagged("journal", alias)
    }

    /// Was a rotating refresh with this refresh token started and never settled?
    pub fn journal_pending(&self, alias: &str, token: &Secret) -> Result<bool, Error> {
        let key = self.journal_key(alias);
        let mut v: Option<String> = self.run(|c| redis::cmd("GET").arg(&key).query(c))?;
        if v.is_none() {
            // Left by an sfx before #20 (its key had no hash tag).
            let old = self.k(&["journal", alias]);
            v = self.run(|c| redis::cmd("GET").arg(&old).query(c))?;
        }
        Ok(v.as_deref() == Some(fingerprint(token).as_str()))
    }

    /// Record that a refresh with this token is about to be sent.
    pub fn journal_begin(&self, alias: &str, token: &Secret) -> Result<(), Error> {
        let key = self.journal_key(alias);
        let fp = fingerprint(token);
        self.run(|c| redis::cmd("SET").arg(&key).arg(&fp).query::<()>(c))
    }

    /// The refresh is settled. Best effort, as locally: a left-over entry only
    /// costs one introspection request next time.
    pub fn journal_settle(&self, alias: &str) {
        let key = self.journal_key(alias);
        let inflight = self.tagged("inflight", alias);
        let _ = self.run(|c| redis::cmd("DEL").arg(&key).arg(&inflight).query::<()>(c));
    }

    /// The owner token of the lease this process holds on `alias`, if any.
    fn held_owner(&self, alias: &str) -> Option<String> {
        self.inner
            .held
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(alias)
            .cloned()
    }

    /// See [`crate::store::OrgStore::attempt_begin`]: one Lua script checks the
    /// lease is ours, stretches it to `window` and records the attempt's window
    /// in `<ns>:inflight:<alias>` (expiring by the server's clock, so hosts'
    /// clocks need not agree).
    pub fn attempt_begin(&self, alias: &str, window: Duration) -> Result<bool, Error> {
        let Some(owner) = self.held_owner(alias) else {
            return Ok(false);
        };
        let ms = window.as_millis().clamp(1, u64::MAX as u128) as u64;
        let script = redis::Script::new(BEGIN_ATTEMPT_SCRIPT);
        let n: i64 = self.run(|c| {
            script
                .key(self.tagged("lease", alias))
                .key(self.tagged("inflight", alias))
                .arg(&owner)
                .arg(ms)
                .invoke(c)
        })?;
        Ok(n == 1)
    }

    /// How long an earlier journaled attempt may still reach Salesforce.
    pub fn attempt_in_flight(&self, alias: &str) -> Result<Option<Duration>, Error> {
        let key = self.tagged("inflight", alias);
        let ms: i64 = self.run(|c| redis::cmd("PTTL").arg(&key).query(c))?;
        Ok((ms > 0).then(|| Duration::from_millis(ms as u64)))
    }

    /// Whether this process still holds `alias`'s lease.
    pub fn lease_held(&self, alias: &str) -> Result<bool, Error> {
        let Some(owner) = self.held_owner(alias) else {
            return Ok(false);
        };
        let key = self.tagged("lease", alias);
        let current: Option<String> = self.run(|c| redis::cmd("GET").arg(&key).query(c))?;
        Ok(current.as_deref() == Some(owner.as_str()))
    }

    /// For `sfx watch` on several hosts: claim this org's next check for `window`.
    /// `false` when another watcher checked it within that window (then this one
    /// re-reads the shared record instead of asking Salesforce).
    pub fn claim_check(&self, alias: &str, window: Duration) -> Result<bool, Error> {
        let key = self.tagged("check", alias);
        let ms = window.as_millis().clamp(1, u64::MAX as u128) as u64;
        let owner = format!("{}@{}", std::process::id(), hostname());
        let set: Option<String> = self.run(|c| {
            redis::cmd("SET")
                .arg(&key)
                .arg(&owner)
                .arg("NX")
                .arg("PX")
                .arg(ms)
                .query(c)
        })?;
        Ok(set.is_some())
    }
}

/// Begin an attempt: KEYS = lease, inflight; ARGV = owner, window (ms). The
/// lease must be ours; it is stretched to the window (never shortened).
const BEGIN_ATTEMPT_SCRIPT: &str = r#"
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return 0
end
if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[2]) then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
redis.call('SET', KEYS[2], '1', 'PX', ARGV[2])
return 1
"#;
