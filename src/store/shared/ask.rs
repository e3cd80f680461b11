//! Readers ask refreshers for a fresher token (issue #20; contract: "Readers and
//! refreshers").
//!
//! A reader (a machine whose `SFX_STORE_KEY` opens access tokens only) that needs
//! a fresher token than the store holds appends a request to the org's stream
//! `<ns>:req:{<alias>}` and blocks on the org's notice stream `<ns>:tok:{<alias>}`
//! (`XREAD BLOCK`: no polling) until the store holds a token that satisfies it, or
//! `--wait` ends. A request carries no token: the time the token must outlive, the
//! fingerprint of the token the reader saw (so "a token newer than that one" also
//! answers it: a refresh gives what a refresh can give), and after a 401 the
//! dead token's fingerprint (so a refresher refreshes although the stored expiry
//! looks fine). Fingerprints are the first 12 bytes of SHA-256 of the token: they
//! tell tokens apart and reveal nothing of them.
//!
//! A refresher (`sfx watch` with the refresher key) reads the requests of every
//! org it watches with one blocking read ([`SharedStore::read_requests`]), and
//! answers each org's batch with one notice ([`SharedStore::notify`]) after at
//! most one refresh. Both sides judge a request by the same rule
//! ([`Request::satisfied_by`]) on the same stored record, so a request already
//! satisfied costs a notice, not a refresh.
//!
//! Both streams are capped (`MAXLEN ~`), and both keys carry the org's hash tag,
//! so every call here touches one slot (a Redis Cluster serves them too).

use std::collections::HashMap;
use std::time::Duration;

use redis::Value;

use super::SharedStore;
use crate::error::Error;
use crate::store::SecretKind;
use crate::store::metadata::OrgRecord;

/// What a reader needs: agreed with the reader path in the lifecycle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FreshNeed {
    /// Unix seconds the token must outlive.
    pub valid_until: i64,
    /// The fingerprint ([`token_fingerprint`]) of a token Salesforce refused (401).
    pub dead_token_fp: Option<String>,
}

use super::token_fingerprint;

/// Requests kept per org (a reader reads its own right after writing it).
const REQ_MAXLEN: usize = 64;
/// Notices kept per org.
const TOK_MAXLEN: usize = 16;
/// A refresher that starts serves requests made this long before it (readers
/// still waiting on them); older ones are left alone.
pub const SERVE_BACKLOG: Duration = Duration::from_secs(300);

/// One reader's request, as a refresher reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub alias: String,
    /// The stream id (`<server ms>-<n>`).
    pub id: String,
    pub valid_until: i64,
    /// The fingerprint of the token the store held when the reader asked.
    pub seen: Option<String>,
    /// The fingerprint of a token Salesforce refused.
    pub dead: Option<String>,
}

impl Request {
    /// When it was made: the server's milliseconds in its id.
    pub fn made_ms(&self) -> u64 {
        id_ms(&self.id)
    }

    /// Whether the stored token (its known expiry `exp`, unix s, and its
    /// fingerprint) answers this request: it is not the dead one, and it either
    /// outlives what was asked or is newer than the one the reader saw.
    pub fn satisfied_by(&self, exp: Option<i64>, fp: Option<&str>) -> bool {
        satisfied(
            self.valid_until,
            self.seen.as_deref(),
            self.dead.as_deref(),
            exp,
            fp,
        )
    }
}

fn satisfied(
    valid_until: i64,
    seen: Option<&str>,
    dead: Option<&str>,
    exp: Option<i64>,
    fp: Option<&str>,
) -> bool {
    let Some(fp) = fp else { return false };
    if dead == Some(fp) {
        return false;
    }
    seen != Some(fp) || exp.is_some_and(|e| e >= valid_until)
}

/// The best-known expiry of the record's access token, unix seconds: the exact
/// one learned, else `issued_at` + the session timeout (as `expires --offline`).
pub fn known_exp(rec: &OrgRecord) -> Option<i64> {
    if let Some(k) = rec.expiry {
        return Some(k.exp);
    }
    let secs = i64::try_from(rec.session_timeout_secs).ok()?;
    rec.issued_at.and_then(|i| i.checked_add(secs))
}

/// An org's record, its token's known expiry (unix s) and its fingerprint.
pub type TokenState = (OrgRecord, Option<i64>, Option<String>);

/// How a refresher answered an org's requests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// It stored a new token.
    Refreshed,
    /// The stored token satisfied them: no refresh.
    Fresh,
    /// The refresh failed; `relogin`: only a new login helps.
    Failed { relogin: bool, message: String },
}

impl SharedStore {
    /// How long a reader waits for the refreshers (`--wait`).
    pub(crate) fn reader_wait(&self) -> Duration {
        self.wait()
    }

    fn req_key(&self, alias: &str) -> String {
        self.tagged("req", alias)
    }

    fn tok_key(&self, alias: &str) -> String {
        self.tagged("tok", alias)
    }

    /// The stored record's token state: its known expiry and fingerprint
    /// (`None`, `None` when no token is stored; `Ok(None)`: no such org).
    pub fn token_state(&self, alias: &str) -> Result<Option<TokenState>, Error> {
        let Some((rec, _)) = self.read_org(alias)? else {
            return Ok(None);
        };
        let fp = self
            .secret(&rec, SecretKind::AccessToken)?
            .map(|t| token_fingerprint(&t));
        let exp = known_exp(&rec);
        Ok(Some((rec, exp, fp)))
    }

    /// A reader's way to a fresher token: leave a request for the refreshers
    /// and wait — a blocking read, at most `wait` — until the store holds a token
    /// that satisfies `need`. `Ok(())`: it does (read the org again). Exit 5
    /// when no refresher answered in time, 4 when the refresher says only a new
    /// login helps.
    pub fn ask_refreshers(
        &self,
        alias: &str,
        need: &FreshNeed,
        wait: Duration,
    ) -> Result<(), Error> {
        let clock = self.clock();
        let end = clock.instant() + wait;
        let gone = || {
            Error::relogin(
                format!(
                    "org {alias} is no longer in the shared store at {}",
                    self.display()
                ),
                format!(
                    "log in to it again (with the refresher key): `sfx login --alias {alias} …`"
                ),
            )
        };
        let (tok, req) = (self.tok_key(alias), self.req_key(alias));
        // Where the notices stand before asking: every answer comes after it.
        let mut last: String = self.top_notice(&tok)?.unwrap_or_else(|| "0-0".into());
        let (_, exp, seen) = self.token_state(alias)?.ok_or_else(gone)?;
        let dead = need.dead_token_fp.as_deref();
        // Already there (another refresher was quicker than this reader's look).
        if satisfied(need.valid_until, None, dead, exp, seen.as_deref())
            && exp.is_some_and(|e| e >= need.valid_until)
        {
            return Ok(());
        }
        // A writer may have put the last possible id at the stream's top,
        // which makes every XADD * fail; a watching refresher clears such a
        // stream within a second or so, so try again until the wait ends.
        loop {
            let added = self.run(|c| {
                let r = redis::cmd("XADD")
                    .arg(&req)
                    .arg("MAXLEN")
                    .arg("~")
                    .arg(REQ_MAXLEN)
                    .arg("*")
                    .arg("until")
                    .arg(need.valid_until)
                    .arg("seen")
                    .arg(seen.as_deref().unwrap_or(""))
                    .arg("dead")
                    .arg(dead.unwrap_or(""))
                    .query::<String>(c);
                match r {
                    Err(e) if stream_top_ahead(&e.to_string()) => Ok(false),
                    r => r.map(|_| true),
                }
            })?;
            if added {
                break;
            }
            let left = end.saturating_duration_since(clock.instant());
            if left.is_zero() {
                return Err(no_refresher_answered(alias, wait));
            }
            clock.sleep(left.min(READD_EVERY));
        }
        loop {
            let left = end.saturating_duration_since(clock.instant());
            if left < Duration::from_millis(1) {
                return Err(no_refresher_answered(alias, wait));
            }
            // The server blocks in real time: on a fake clock, read without
            // blocking and let the clock pass the round below.
            let real = clock.waits_are_real();
            let round = left.min(READD_EVERY);
            let block_real = if real { left } else { Duration::ZERO };
            // Its own deadline: the wait, plus a little for the reply to travel.
            let block = u64::try_from(block_real.as_millis())
                .unwrap_or(u64::MAX)
                .max(1);
            let margin = self.timeout().min(Duration::from_millis(500));
            if near_id_end(&last) {
                // A notice id at the end of ids (a writer may give XADD any
                // id; past the last possible one no notice can follow it):
                // look at the token every READD_EVERY instead of waiting on
                // notices that may never come, until a refresher clears it.
                clock.sleep(left.min(READD_EVERY));
                if let Some((_, exp, fp)) = self.token_state(alias)?
                    && satisfied(need.valid_until, seen.as_deref(), dead, exp, fp.as_deref())
                {
                    return Ok(());
                }
                // Cleared (a refresher's notice found no room): back to waiting
                // on notices, all of the new stream's.
                let top = self.top_notice(&tok)?;
                if top.is_none_or(|t| !near_id_end(&t)) {
                    last = "0-0".into();
                }
                continue;
            }
            let v: Value = self.run_within(block_real + margin, |c| {
                let mut cmd = redis::cmd("XREAD");
                cmd.arg("COUNT").arg(TOK_MAXLEN);
                if real {
                    cmd.arg("BLOCK").arg(block);
                }
                cmd.arg("STREAMS").arg(&tok).arg(&last).query(c)
            })?;
            let mut failed = None;
            for stream in streams(&v) {
                for (id, fields) in entries(&stream) {
                    last = id;
                    if fields.get("result").map(String::as_str) == Some("failed") {
                        failed = Some((
                            fields.get("relogin").is_some_and(|r| r == "1"),
                            crate::text::sanitize(
                                fields.get("message").map(String::as_str).unwrap_or(""),
                                400,
                            ),
                        ));
                    }
                }
            }
            if !real && streams(&v).is_empty() {
                clock.sleep(round);
            }
            let (_, exp, fp) = self.token_state(alias)?.ok_or_else(gone)?;
            if satisfied(need.valid_until, seen.as_deref(), dead, exp, fp.as_deref()) {
                return Ok(());
            }
            if let Some((relogin, message)) = failed {
                let message = format!(
                    "the refresher could not refresh org {alias}: {}",
                    message.trim_end_matches('.')
                );
                return Err(if relogin {
                    Error::relogin(
                        message,
                        format!(
                            "log in again on the refresher's machine (with the refresher key): `sfx login --alias {alias} …`"
                        ),
                    )
                } else {
                    Error::network(message)
                });
            }
        }
    }

    /// The id of the newest notice in stream `tok`, if any.
    fn top_notice(&self, tok: &str) -> Result<Option<String>, Error> {
        self.run(|c| {
            let v: Value = redis::cmd("XREVRANGE")
                .arg(tok)
                .arg("+")
                .arg("-")
                .arg("COUNT")
                .arg(1)
                .query(c)?;
            Ok(entries(&v).first().map(|(id, _)| id.clone()))
        })
    }

    /// A refresher's read of requests: every org in `from` (alias → the last id
    /// seen, updated here), blocking up to `block` when none is waiting.
    pub fn read_requests(
        &self,
        from: &mut HashMap<String, String>,
        block: Duration,
    ) -> Result<Vec<Request>, Error> {
        if from.is_empty() {
            self.clock().sleep(block);
            return Ok(Vec::new());
        }
        let aliases: Vec<String> = from.keys().cloned().collect();
        let ms = u64::try_from(block.as_millis()).unwrap_or(u64::MAX).max(1);
        // The server blocks in real time: on a fake clock, read without
        // blocking and let the clock pass `block` when nothing came.
        let real = self.clock().waits_are_real();
        let v: Value = self.run_within(block + self.timeout(), |c| {
            let mut cmd = redis::cmd("XREAD");
            cmd.arg("COUNT").arg(REQ_MAXLEN);
            if real {
                cmd.arg("BLOCK").arg(ms);
            }
            cmd.arg("STREAMS");
            for a in &aliases {
                cmd.arg(self.req_key(a));
            }
            for a in &aliases {
                cmd.arg(&from[a]);
            }
            cmd.query(c)
        })?;
        if !real && streams(&v).is_empty() {
            self.clock().sleep(block);
        }
        let prefix = self.k(&["req", ""]);
        let mut out = Vec::new();
        let mut poisoned = Vec::new();
        for stream in streams(&v) {
            let Some(name) = stream_name(&stream) else {
                continue;
            };
            let Some(alias) = name
                .strip_prefix(&prefix)
                .and_then(|r| r.strip_prefix('{'))
                .and_then(|r| r.strip_suffix('}'))
            else {
                continue;
            };
            if !from.contains_key(alias) {
                continue;
            }
            for (id, f) in entries(&stream) {
                from.insert(alias.to_string(), id.clone());
                if near_id_end(&id) && !poisoned.iter().any(|a| a == alias) {
                    // Near the last possible id every request soon fails: the
                    // stream is cleared below (the requests read are still
                    // served).
                    poisoned.push(alias.to_string());
                }
                let fp = |name: &str| {
                    f.get(name)
                        .filter(|s| !s.is_empty() && s.len() <= 64)
                        .cloned()
                };
                let Some(valid_until) = f.get("until").and_then(|u| u.parse().ok()) else {
                    continue;
                };
                out.push(Request {
                    alias: alias.to_string(),
                    id,
                    valid_until,
                    seen: fp("seen"),
                    dead: fp("dead"),
                });
            }
        }
        for alias in poisoned {
            let key = self.req_key(&alias);
            self.run(|c| redis::cmd("DEL").arg(&key).query::<()>(c))?;
            from.insert(alias, self.requests_since_backlog()?);
        }
        Ok(out)
    }

    /// Where a refresher that starts now begins reading requests: those of the
    /// last `SERVE_BACKLOG` (stream ids are the server's milliseconds; this
    /// machine's clock stands in for it, so no command beyond reads and writes
    /// of the streams is needed — a skew of seconds only shifts the window).
    pub fn requests_since_backlog(&self) -> Result<String, Error> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let ms = now.saturating_sub(SERVE_BACKLOG).as_millis();
        Ok(format!("{ms}-0"))
    }

    /// Tell the org's waiting readers how their requests were answered.
    pub fn notify(&self, alias: &str, answer: &Answer) -> Result<(), Error> {
        let tok = self.tok_key(alias);
        let added = self.add_notice(&tok, answer)?;
        if added.as_deref().is_none_or(near_id_end) {
            // The stream is at the end of ids (a writer gave XADD such an id):
            // clear it, so notices flow again.
            self.run(|c| redis::cmd("DEL").arg(&tok).query::<()>(c))?;
            self.add_notice(&tok, answer)?;
        }
        Ok(())
    }

    /// The new notice's id; `Ok(None)`: the stream's top id leaves no room.
    fn add_notice(&self, tok: &str, answer: &Answer) -> Result<Option<String>, Error> {
        self.run(|c| {
            let mut cmd = redis::cmd("XADD");
            cmd.arg(tok).arg("MAXLEN").arg("~").arg(TOK_MAXLEN).arg("*");
            match answer {
                Answer::Refreshed => cmd.arg("result").arg("refreshed"),
                Answer::Fresh => cmd.arg("result").arg("fresh"),
                Answer::Failed { relogin, message } => cmd
                    .arg("result")
                    .arg("failed")
                    .arg("relogin")
                    .arg(if *relogin { "1" } else { "0" })
                    .arg("message")
                    .arg(crate::text::sanitize(message, 400)),
            };
            match cmd.query::<String>(c) {
                Err(e) if stream_top_ahead(&e.to_string()) => Ok(None),
                r => r.map(Some),
            }
        })
    }
}

/// Whether XADD * failed because the stream has no id left after its top.
fn stream_top_ahead(e: &str) -> bool {
    e.contains("equal or smaller") || e.contains("exhausted the last possible ID")
}

/// The milliseconds part of a stream id.
fn id_ms(id: &str) -> u64 {
    id.split('-')
        .next()
        .and_then(|m| m.parse().ok())
        .unwrap_or(0)
}

/// Whether a stream id is in the last millisecond there is: a writer may give
/// XADD any id, and from there a stream soon has no room for another entry
/// (at `u64::MAX-u64::MAX` it has none). Ids merely ahead of the clock do no
/// harm (`XADD *` continues from the top), so they are left alone.
fn near_id_end(id: &str) -> bool {
    id_ms(id) == u64::MAX
}
/// How often a reader tries again to leave its request while the request
/// stream is at the last possible id (until a refresher clears it).
const READD_EVERY: Duration = Duration::from_millis(200);

/// Exit 5: nobody with the refresher key answered within `wait`.
pub fn no_refresher_answered(alias: &str, wait: Duration) -> Error {
    Error::network(format!(
        "no refresher answered within {} for org {}: this machine's SFX_STORE_KEY is a reader key, which never refreshes by itself; a `sfx watch --all` running with the refresher key (SFX_STORE_KEY) serves readers — run one at a fixed address, or wait longer with --wait",
        crate::timefmt::flag_duration(wait),
        crate::text::sanitize(alias, 100)
    ))
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::BulkString(b) => String::from_utf8(b.clone()).ok(),
        Value::SimpleString(s) => Some(s.clone()),
        _ => None,
    }
}

/// The streams of an XREAD reply (`[[name, entries], …]`, or a RESP3 map).
fn streams(v: &Value) -> Vec<Value> {
    match v {
        Value::Array(items) => items.clone(),
        Value::Map(pairs) => pairs
            .iter()
            .map(|(k, v)| Value::Array(vec![k.clone(), v.clone()]))
            .collect(),
        _ => Vec::new(),
    }
}

fn stream_name(stream: &Value) -> Option<String> {
    match stream {
        Value::Array(p) if p.len() == 2 => text(&p[0]),
        _ => None,
    }
}

/// The entries of one stream of an XREAD reply, or of an XRANGE reply.
fn entries(v: &Value) -> Vec<(String, HashMap<String, String>)> {
    let list = match v {
        Value::Array(p) if p.len() == 2 && matches!(p[0], Value::BulkString(_)) => &p[1],
        other => other,
    };
    let Value::Array(items) = list else {
        return Vec::new();
    };
    items
        .iter()
        .filter_map(|e| {
            let Value::Array(pair) = e else { return None };
            let id = text(pair.first()?)?;
            let mut fields = HashMap::new();
            if let Some(Value::Array(kv)) = pair.get(1) {
                for c in kv.chunks(2) {
                    if let [k, v] = c
                        && let (Some(k), Some(v)) = (text(k), text(v))
                    {
                        fields.insert(k, v);
                    }
                }
            }
            Some((id, fields))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_is_answered_by_a_token_that_outlives_it_or_is_newer() {
        let r = |seen: Option<&str>, dead: Option<&str>| Request {
            alias: "a".into(),
            id: "1700000000000-0".into(),
            valid_until: 1000,
            seen: seen.map(Into::into),
            dead: dead.map(Into::into),
        };
        // The same token, too short: not yet.
        assert!(!r(Some("x"), None).satisfied_by(Some(999), Some("x")));
        // The same token, long enough.
        assert!(r(Some("x"), None).satisfied_by(Some(1000), Some("x")));
        // A newer token, whatever its length (a refresh gives what it gives).
        assert!(r(Some("x"), None).satisfied_by(Some(10), Some("y")));
        // The dead token never, however long it looks.
        assert!(!r(Some("x"), Some("x")).satisfied_by(Some(5000), Some("x")));
        assert!(r(Some("x"), Some("x")).satisfied_by(Some(5000), Some("z")));
        // No token stored: never.
        assert!(!r(None, None).satisfied_by(Some(5000), None));
        assert_eq!(r(None, None).made_ms(), 1_700_000_000_000);
    }
}
