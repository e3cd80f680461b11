//! Writes to the shared store: the compare-and-set of an org (record and sealed
//! secrets in one Lua script, the store's key check compared in the same step),
//! one secret on its own, removal, the default mark.

use super::seal::Binding;
use super::{Cas, Expect, SharedStore};
use crate::error::Error;
use crate::secret::Secret;
use crate::store::SecretKind;
use crate::store::metadata::OrgRecord;

impl SharedStore {
    // ----- writes --------------------------------------------------------

    /// Write an org's record and secrets in one step, only if its version is
    /// `expect` (the compare-and-set that fences stale writers). `None` in
    /// `secrets` deletes that secret; kinds not named are kept.
    pub fn write(
        &self,
        record: &OrgRecord,
        secrets: &[(SecretKind, Option<&Secret>)],
        expect: Expect,
    ) -> Result<Cas, Error> {
        // The store's key check changed since this process verified its key (a
        // key rotation): verify again — which refuses a key that is no longer
        // the store's — and write once more.
        for _ in 0..3 {
            if let Some(done) = self.write_once(record, secrets, expect)? {
                return Ok(done);
            }
            self.key_verified_reset();
        }
        Err(self.wrong_key("the store's key check"))
    }

    fn write_once(
        &self,
        record: &OrgRecord,
        secrets: &[(SecretKind, Option<&Secret>)],
        expect: Expect,
    ) -> Result<Option<Cas>, Error> {
        let alias = record.alias.as_str();
        if record.sf_link.is_some() {
            // The link is a file on one machine: the others could never keep it.
            return Err(Error::usage(format!(
                "org {alias} is linked to the Salesforce CLI's files on this machine, which other machines cannot read or update; keep it in the local store, or give the shared store a login of its own (`sfx login … --alias {alias}` with SFX_STORE set)"
            )));
        }
        let key = if secrets.iter().any(|(_, s)| s.is_some()) {
            Some(self.verify_key_for_write()?)
        } else {
            None
        };
        let meta = serde_json::to_string(record)
            .map_err(|e| Error::Other(format!("cannot encode the org record: {e}")))?;
        let binding = Binding::of(&self.inner.ns, record);
        let mut fields: Vec<(&str, String)> = Vec::new();
        for (kind, value) in secrets {
            let sealed = match (value, key) {
                (Some(v), Some(k)) => {
                    k.seal_bound(&binding, kind.as_str(), v.expose().as_bytes())?
                }
                _ => String::new(),
            };
            fields.push((kind.as_str(), sealed));
        }
        // The secrets this write keeps are sealed with the record they were
        // written with: when this record changes what they bind (a new instance
        // URL after a refresh, a new login over an old one), or they are still in
        // the form older sfx wrote, seal them again for the new record — at the
        // version they were read at.
        let mut expect = expect;
        let kept: Vec<SecretKind> = SecretKind::ALL
            .into_iter()
            .filter(|k| !secrets.iter().any(|(n, _)| n == k))
            .collect();
        if !kept.is_empty() {
            let org_key = self.org_key(alias);
            let mut got: Vec<Option<Vec<u8>>> = self.run(|c| {
                let mut cmd = redis::cmd("HMGET");
                cmd.arg(&org_key).arg("v").arg("meta");
                for k in &kept {
                    cmd.arg(k.as_str());
                }
                cmd.query(c)
            })?;
            let values = got.split_off(2.min(got.len()));
            let cur_v: u64 = got
                .first()
                .cloned()
                .flatten()
                .and_then(|v| String::from_utf8(v).ok())
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            let old_meta = got.get(1).cloned().flatten();
            if let Expect::Version(v) = expect
                && v != cur_v
            {
                return Ok(Some(Cas::Conflict(cur_v)));
            }
            let old_binding = old_meta
                .as_deref()
                .and_then(|m| self.parse_record(alias, m).ok())
                .map(|r| Binding::of(&self.inner.ns, &r));
            let mut resealed = false;
            for (kind, raw) in kept.iter().zip(values) {
                let Some(raw) = raw else { continue };
                let bound = raw.starts_with(b"v2:");
                let unchanged = old_binding.as_ref() == Some(&binding);
                if bound && unchanged {
                    continue;
                }
                let k = match self.verify_key_for_write() {
                    Ok(k) => k,
                    // Only converting an older value whose record is unchanged: a
                    // writer without a usable key leaves it for the next one.
                    Err(_) if unchanged => continue,
                    Err(e) => return Err(e),
                };
                let opened = old_binding
                    .as_ref()
                    .and_then(|ob| k.open_bound(ob, kind.as_str(), &raw));
                match (opened, expect) {
                    (Some((plain, _)), _) => {
                        fields.push((
                            kind.as_str(),
                            k.seal_bound(&binding, kind.as_str(), &plain)?,
                        ));
                    }
                    // A new login replaces what it cannot vouch for.
                    (None, Expect::Any) => fields.push((kind.as_str(), String::new())),
                    (None, Expect::Version(_)) => {
                        return Err(self.not_opened(
                            alias,
                            &format!("the {} of org {alias}", kind.as_str().replace('-', " ")),
                        ));
                    }
                }
                resealed = true;
            }
            if resealed && expect == Expect::Any && old_meta.is_some() {
                expect = Expect::Version(cur_v);
            }
        }
        let expected = match expect {
            Expect::Version(v) => v.to_string(),
            Expect::Any => "*".to_string(),
        };
        // Sealing anything: only while the store's key check is the one verified.
        let check = if fields.iter().any(|(_, v)| !v.is_empty()) {
            self.verify_key_for_write()?;
            self.verified_check().unwrap_or_default()
        } else {
            Vec::new()
        };
        let script = redis::Script::new(CAS_SCRIPT);
        let (ok, v): (i64, u64) = self.run(|c| {
            let mut inv = script.prepare_invoke();
            inv.key(self.org_key(alias))
                .key(self.k(&["orgs"]))
                .key(self.k(&["keycheck"]))
                .arg(&expected)
                .arg(alias)
                .arg(&meta)
                .arg(&check);
            for (f, val) in &fields {
                inv.arg(*f).arg(val);
            }
            inv.invoke(c)
        })?;
        Ok(match ok {
            1 => Some(Cas::Written(v)),
            -1 => None,
            _ => Some(Cas::Conflict(v)),
        })
    }

    /// Store one secret of an existing org as it is: no version change, the
    /// record untouched (`false`: the org is not stored).
    pub fn put_secret(
        &self,
        record: &OrgRecord,
        kind: SecretKind,
        value: &Secret,
    ) -> Result<bool, Error> {
        let binding = Binding::of(&self.inner.ns, record);
        let alias = record.alias.as_str();
        for _ in 0..3 {
            let key = self.verify_key_for_write()?;
            let check = self.verified_check().unwrap_or_default();
            let sealed = key.seal_bound(&binding, kind.as_str(), value.expose().as_bytes())?;
            let script = redis::Script::new(PUT_SECRET_SCRIPT);
            let n: i64 = self.run(|c| {
                script
                    .key(self.org_key(alias))
                    .key(self.k(&["keycheck"]))
                    .arg(kind.as_str())
                    .arg(&sealed)
                    .arg(&check)
                    .invoke(c)
            })?;
            if n != -1 {
                return Ok(n == 1);
            }
            self.key_verified_reset();
        }
        Err(self.wrong_key("the store's key check"))
    }

    /// Remove an org (record, secrets, journal; the default mark if it was the
    /// default). `false` when it was not stored.
    pub fn delete(&self, alias: &str) -> Result<bool, Error> {
        let script = redis::Script::new(DELETE_SCRIPT);
        let n: i64 = self.run(|c| {
            script
                .key(self.org_key(alias))
                .key(self.k(&["orgs"]))
                .key(self.k(&["default"]))
                .key(self.k(&["journal", alias]))
                .arg(alias)
                .invoke(c)
        })?;
        Ok(n == 1)
    }

    /// Mark the default org (`None` clears the mark).
    pub fn set_default(&self, alias: Option<&str>) -> Result<(), Error> {
        let key = self.k(&["default"]);
        self.run(|c| match alias {
            Some(a) => redis::cmd("SET").arg(&key).arg(a).query::<()>(c),
            None => redis::cmd("DEL").arg(&key).query::<()>(c),
        })
    }
}

/// Compare-and-set of an org: KEYS = org hash, orgs set, key check; ARGV =
/// expected version (or `*`), alias, record JSON, the key check the writer
/// verified (empty: it seals nothing), then field/value pairs (an empty value
/// deletes). `{-1, v}`: the key check changed (verify the key again).
const CAS_SCRIPT: &str = r#"
local cur = tonumber(redis.call('HGET', KEYS[1], 'v') or '0')
if ARGV[4] ~= '' and redis.call('GET', KEYS[3]) ~= ARGV[4] then
  return {-1, cur}
end
if ARGV[1] ~= '*' and cur ~= tonumber(ARGV[1]) then
  return {0, cur}
end
redis.call('HSET', KEYS[1], 'meta', ARGV[3])
for i = 5, #ARGV, 2 do
  if ARGV[i + 1] == '' then
    redis.call('HDEL', KEYS[1], ARGV[i])
  else
    redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
  end
end
local nv = redis.call('HINCRBY', KEYS[1], 'v', 1)
redis.call('SADD', KEYS[2], ARGV[2])
return {1, nv}
"#;

/// Remove an org: KEYS = org hash, orgs set, default, journal; ARGV = alias.
const DELETE_SCRIPT: &str = r#"
local existed = redis.call('DEL', KEYS[1])
redis.call('SREM', KEYS[2], ARGV[1])
redis.call('DEL', KEYS[4])
if redis.call('GET', KEYS[3]) == ARGV[1] then
  redis.call('DEL', KEYS[3])
end
return existed
"#;

/// Set one field of an existing org hash: KEYS = org hash, key check; ARGV =
/// field, value, the key check the writer verified (`-1`: it changed).
const PUT_SECRET_SCRIPT: &str = r#"
if redis.call('GET', KEYS[2]) ~= ARGV[3] then
  return -1
end
if redis.call('EXISTS', KEYS[1]) == 0 then
  return 0
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return 1
"#;
