//! Writes to the shared store: the compare-and-set of an org (record and sealed
//! secrets in one Lua script, the store's key check compared in the same step),
//! one secret on its own, removal, the default mark.

use super::seal::{Binding, Keys};
use super::{SharedStore, reader_refused};
use crate::error::Error;
use crate::secret::Secret;
use crate::store::metadata::OrgRecord;
use crate::store::{Cas, SecretKind, Version};

impl SharedStore {
    // ----- writes --------------------------------------------------------

    /// Write an org's record and secrets in one step, only if its version is
    /// `expect` (the compare-and-set that fences stale writers; version 0: the
    /// org does not exist), or whatever is there with `None` (a login replaces
    /// an org). `None` in `secrets` deletes that secret; kinds not named are
    /// kept.
    pub fn write(
        &self,
        record: &OrgRecord,
        secrets: &[(SecretKind, Option<&Secret>)],
        expect: Option<Version>,
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
        expect: Option<Version>,
    ) -> Result<Option<Cas>, Error> {
        let alias = record.alias.as_str();
        if record.sf_link.is_some() {
            // The link is a file on one machine: the others could never keep it.
            return Err(Error::usage(format!(
                "org {alias} is linked to the Salesforce CLI's files on this machine, which other machines cannot read or update; keep it in the local store, or give the shared store a login of its own (`sfx login … --alias {alias}` with SFX_STORE set)"
            )));
        }
        if self.is_reader() {
            return Err(reader_refused(&format!(
                "write org {alias} to the shared store"
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
        let cur = self.current(alias)?;
        let cur_v = cur.version;
        if let Some(v) = expect
            && v.0 != cur_v
        {
            return Ok(Some(Cas::Conflict));
        }
        // The secrets this write keeps are sealed with the record they were
        // written with: when this record changes what they bind (a new instance
        // URL after a refresh, a new login over an old one), or they are still in
        // a form older sfx wrote (sealed with the refresher key itself, in the
        // one hash of the layout before #20), seal them again for the new record
        // — at the version they were read at.
        let mut expect = expect;
        let old_binding = cur
            .meta
            .as_deref()
            .and_then(|m| self.parse_record(alias, m).ok())
            .map(|r| Binding::of(&self.inner.ns, &r));
        let unchanged = old_binding.as_ref() == Some(&binding);
        let mut resealed = false;
        for (kind, raw) in &cur.secrets {
            if secrets.iter().any(|(n, _)| n == kind) {
                continue;
            }
            let Some(raw) = raw else { continue };
            if Keys::is_current(raw) && unchanged && !cur.legacy {
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
                .and_then(|ob| k.open_bound(ob, kind.as_str(), raw));
            match (opened, expect) {
                (Some((plain, _)), _) => {
                    fields.push((
                        kind.as_str(),
                        k.seal_bound(&binding, kind.as_str(), &plain)?,
                    ));
                }
                // A new login replaces what it cannot vouch for.
                (None, None) => fields.push((kind.as_str(), String::new())),
                (None, Some(_)) => {
                    return Err(self.not_opened(
                        alias,
                        &format!("the {} of org {alias}", kind.as_str().replace('-', " ")),
                    ));
                }
            }
            resealed = true;
        }
        if resealed && expect.is_none() && cur.meta.is_some() {
            expect = Some(Version(cur_v));
        }
        let expected = match expect {
            Some(v) => v.0.to_string(),
            None => "*".to_string(),
        };
        let sealing = fields.iter().any(|(_, v)| !v.is_empty());
        if cur.legacy && !sealing && cur.secrets.iter().any(|(_, r)| r.is_some()) {
            // An org of an earlier sfx, and no key here to convert its secrets:
            // change its record where it is (the next refresher converts it).
            return self.write_legacy_record(alias, &expected, &meta).map(Some);
        }
        if cur_v == 0 {
            // Listed before it exists: a writer that dies in between leaves an
            // alias that lists as nothing, never an org nobody can find.
            let orgs = self.k(&["orgs"]);
            self.run(|c| redis::cmd("SADD").arg(&orgs).arg(alias).query::<()>(c))?;
        }
        let kid = if sealing {
            let k = self.verify_key_for_write()?;
            // What vouches for the record to a refresher: sealed with the
            // REFRESH key, which readers do not hold (see `vouched`).
            fields.push((
                GRANT,
                k.seal_bound(&binding, GRANT, grant_text(record).as_bytes())?,
            ));
            let id = k.id.clone();
            if !self.key_check_unchanged()? {
                return Ok(None);
            }
            id
        } else {
            String::new()
        };
        let (ok, v): (i64, u64) = self.run(|c| {
            let script = redis::Script::new(CAS_SCRIPT);
            let mut inv = script.prepare_invoke();
            inv.key(self.org_key(alias)).key(self.secret_key(alias));
            if cur.legacy {
                // Only a store written by an earlier sfx gets here: one server,
                // never a cluster (earlier versions could not use one).
                inv.key(self.legacy_org_key(alias))
                    .key(self.k(&["journal", alias]))
                    .key(self.tagged("journal", alias));
            }
            inv.arg(&expected).arg(&meta).arg(&kid);
            for (f, val) in &fields {
                inv.arg(*f).arg(val);
            }
            inv.invoke(c)
        })?;
        Ok(match ok {
            1 => Some(Cas::Written(Version(v))),
            -1 => None,
            _ => Some(Cas::Conflict),
        })
    }

    /// The org as stored now: its version, record and sealed secrets, from the
    /// current layout or, when absent there, the one before #20.
    fn current(&self, alias: &str) -> Result<Current, Error> {
        let org = self.org_key(alias);
        let sec = self.secret_key(alias);
        let (o, s): (Fields, Fields) = self.run(|c| {
            redis::pipe()
                .cmd("HMGET")
                .arg(&org)
                .arg("v")
                .arg("meta")
                .arg("access-token")
                .cmd("HMGET")
                .arg(&sec)
                .arg("refresh-token")
                .arg("client-secret")
                .query(c)
        })?;
        let at = |v: &[Option<Vec<u8>>], i: usize| v.get(i).cloned().flatten();
        let version = |v: Option<Vec<u8>>| {
            v.and_then(|v| String::from_utf8(v).ok())
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0)
        };
        if at(&o, 0).is_some() {
            return Ok(Current {
                version: version(at(&o, 0)),
                meta: at(&o, 1),
                secrets: vec![
                    (SecretKind::AccessToken, at(&o, 2)),
                    (SecretKind::RefreshToken, at(&s, 0)),
                    (SecretKind::ClientSecret, at(&s, 1)),
                ],
                legacy: false,
            });
        }
        let legacy = self.legacy_org_key(alias);
        let l: Vec<Option<Vec<u8>>> = self.run(|c| {
            redis::cmd("HMGET")
                .arg(&legacy)
                .arg("v")
                .arg("meta")
                .arg("access-token")
                .arg("refresh-token")
                .arg("client-secret")
                .query(c)
        })?;
        Ok(Current {
            version: version(at(&l, 0)),
            meta: at(&l, 1),
            secrets: vec![
                (SecretKind::AccessToken, at(&l, 2)),
                (SecretKind::RefreshToken, at(&l, 3)),
                (SecretKind::ClientSecret, at(&l, 4)),
            ],
            legacy: at(&l, 0).is_some(),
        })
    }

    /// Whether the store's key check is still the one this process verified (a
    /// key rotation elsewhere makes it check its key again before it seals
    /// anything more). A call of its own: the key check is a global key, and no
    /// script touches a global key and an org's keys together (a cluster keeps
    /// them in different slots); the org's `kid`, compared in the write's own
    /// script, covers an org whose secrets another key sealed.
    fn key_check_unchanged(&self) -> Result<bool, Error> {
        let kc = self.k(&["keycheck"]);
        let now: Option<Vec<u8>> = self.run(|c| redis::cmd("GET").arg(&kc).query(c))?;
        Ok(now.is_some() && now == self.verified_check())
    }

    /// A record-only compare-and-set on an org in the layout before #20.
    fn write_legacy_record(&self, alias: &str, expected: &str, meta: &str) -> Result<Cas, Error> {
        let key = self.legacy_org_key(alias);
        let (ok, v): (i64, u64) = self.run(|c| {
            redis::Script::new(LEGACY_RECORD_SCRIPT)
                .key(&key)
                .arg(expected)
                .arg(meta)
                .invoke(c)
        })?;
        Ok(if ok == 1 {
            Cas::Written(Version(v))
        } else {
            Cas::Conflict
        })
    }

    /// Store one secret of an existing org as it is: no version change, the
    /// record untouched (`false`: the org is not stored in the current layout).
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
            if !self.key_check_unchanged()? {
                self.key_verified_reset();
                continue;
            }
            let sealed = key.seal_bound(&binding, kind.as_str(), value.expose().as_bytes())?;
            let target = if kind == SecretKind::AccessToken {
                self.org_key(alias)
            } else {
                self.secret_key(alias)
            };
            let script = redis::Script::new(PUT_SECRET_SCRIPT);
            let n: i64 = self.run(|c| {
                script
                    .key(self.org_key(alias))
                    .key(&target)
                    .arg(kind.as_str())
                    .arg(&sealed)
                    .arg(&key.id)
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
        if self.is_reader() {
            return Err(reader_refused(&format!(
                "remove org {alias} from the shared store"
            )));
        }
        let script = redis::Script::new(DELETE_SCRIPT);
        let n: i64 = self.run(|c| {
            script
                .key(self.org_key(alias))
                .key(self.secret_key(alias))
                .key(self.tagged("journal", alias))
                .invoke(c)
        })?;
        // An org an earlier sfx stored; each key on its own (another slot).
        let legacy: i64 =
            self.run(|c| redis::cmd("DEL").arg(self.legacy_org_key(alias)).query(c))?;
        self.run(|c| {
            redis::cmd("DEL")
                .arg(self.k(&["journal", alias]))
                .query::<()>(c)
        })?;
        let orgs = self.k(&["orgs"]);
        self.run(|c| redis::cmd("SREM").arg(&orgs).arg(alias).query::<()>(c))?;
        let default = self.k(&["default"]);
        self.run(|c| {
            redis::Script::new(CLEAR_DEFAULT_SCRIPT)
                .key(&default)
                .arg(alias)
                .invoke::<()>(c)
        })?;
        Ok(n == 1 || legacy == 1)
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

/// The field of an org's secret hash that vouches for its record to a
/// refresher (sealed with the REFRESH key, bound to the record).
pub(super) const GRANT: &str = "grant";

/// What the `grant` field seals: the record's flow and key file, which decide
/// what a refresher signs and with which key (the binding covers where it goes
/// and for whom).
pub(super) fn grant_text(record: &OrgRecord) -> String {
    serde_json::json!([record.flow, record.key_file]).to_string()
}

/// Values of some fields of a hash (`None`: absent).
type Fields = Vec<Option<Vec<u8>>>;

/// An org as stored now (see [`SharedStore::current`]).
struct Current {
    version: u64,
    meta: Option<Vec<u8>>,
    secrets: Vec<(SecretKind, Option<Vec<u8>>)>,
    /// In the layout before #20 (`<ns>:org:<alias>`).
    legacy: bool,
}

/// Compare-and-set of an org: KEYS = org hash, secret hash (and, to convert
/// an org of an earlier sfx: its hash before #20, its journal before #20, its
/// journal now); ARGV = expected version (or `*`), record JSON, the id of the
/// key the writer seals with (empty: it seals nothing), then field/value pairs
/// (an empty value deletes; refresh-token, client-secret and grant go to the
/// secret hash). `{-1, v}`: the org's secrets are sealed with another key (verify the
/// key again). Converting: the old hash is the org's version while the new one
/// does not exist; on success it is removed, and a journal entry is carried
/// over (a refresh an earlier sfx left unsettled is still checked first).
const CAS_SCRIPT: &str = r#"
local cur = tonumber(redis.call('HGET', KEYS[1], 'v') or '0')
local convert = #KEYS > 2 and redis.call('EXISTS', KEYS[1]) == 0
if convert then
  cur = tonumber(redis.call('HGET', KEYS[3], 'v') or '0')
end
if ARGV[3] ~= '' then
  local kid = redis.call('HGET', KEYS[1], 'kid')
  if kid and kid ~= ARGV[3] then
    return {-1, cur}
  end
end
if ARGV[1] ~= '*' and cur ~= tonumber(ARGV[1]) then
  return {0, cur}
end
if convert then
  local j = redis.call('GET', KEYS[4])
  if j and redis.call('EXISTS', KEYS[5]) == 0 then
    redis.call('SET', KEYS[5], j)
  end
  redis.call('DEL', KEYS[3])
  redis.call('DEL', KEYS[4])
end
redis.call('HSET', KEYS[1], 'meta', ARGV[2])
if ARGV[3] ~= '' then
  redis.call('HSET', KEYS[1], 'kid', ARGV[3])
end
for i = 4, #ARGV, 2 do
  local h = KEYS[1]
  if ARGV[i] == 'refresh-token' or ARGV[i] == 'client-secret' or ARGV[i] == 'grant' then
    h = KEYS[2]
  end
  if ARGV[i + 1] == '' then
    redis.call('HDEL', h, ARGV[i])
  else
    redis.call('HSET', h, ARGV[i], ARGV[i + 1])
  end
end
local nv = cur + 1
redis.call('HSET', KEYS[1], 'v', nv)
if redis.call('HEXISTS', KEYS[2], 'refresh-token') == 1 or redis.call('HEXISTS', KEYS[2], 'client-secret') == 1 or redis.call('HEXISTS', KEYS[2], 'grant') == 1 then
  redis.call('HSET', KEYS[2], 'v', nv)
else
  redis.call('DEL', KEYS[2])
end
return {1, nv}
"#;

/// A record-only compare-and-set on an org stored before #20: KEYS = its hash;
/// ARGV = expected version (or `*`), record JSON.
const LEGACY_RECORD_SCRIPT: &str = r#"
local cur = tonumber(redis.call('HGET', KEYS[1], 'v') or '0')
if ARGV[1] ~= '*' and cur ~= tonumber(ARGV[1]) then
  return {0, cur}
end
redis.call('HSET', KEYS[1], 'meta', ARGV[2])
return {1, redis.call('HINCRBY', KEYS[1], 'v', 1)}
"#;

/// Remove an org: KEYS = org hash, secret hash, journal. 1: it existed.
const DELETE_SCRIPT: &str = r#"
local existed = redis.call('DEL', KEYS[1])
redis.call('DEL', KEYS[2])
redis.call('DEL', KEYS[3])
return existed
"#;

/// Clear the default mark if it names this org: KEYS = default; ARGV = alias.
const CLEAR_DEFAULT_SCRIPT: &str = r#"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
end
return 0
"#;

/// Set one secret of an existing org: KEYS = org hash, the hash the secret
/// lives in; ARGV = field, value, the id of the writer's key (`-1`: the org's
/// secrets are sealed with another key).
const PUT_SECRET_SCRIPT: &str = r#"
if redis.call('EXISTS', KEYS[1]) == 0 then
  return 0
end
local kid = redis.call('HGET', KEYS[1], 'kid')
if kid and kid ~= ARGV[3] then
  return -1
end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
if KEYS[2] ~= KEYS[1] then
  redis.call('HSET', KEYS[2], 'v', redis.call('HGET', KEYS[1], 'v'))
end
return 1
"#;
