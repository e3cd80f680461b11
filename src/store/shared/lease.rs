//! The refresh lease of one org in the shared store.
//!
//! `SET <ns>:lease:<alias> <owner> NX PX <ttl>` with a random owner token; while
//! held, a thread renews it every third of its life (a Lua compare-and-`PEXPIRE`,
//! so only the owner can), and dropping the guard releases it with a Lua
//! compare-and-delete (never someone else's lease). A holder that dies — `kill -9`
//! included — stops renewing, and the org is free again within [`TTL`].
//!
//! A lease alone cannot protect a write after a long pause (Kleppmann, 2016), so
//! the writes it guards are fenced too: new tokens are written by a
//! compare-and-set on the org's version (see the parent module).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use super::SharedStore;
use crate::error::Error;

/// How long a lease lives without renewal: the most a dead holder delays others.
pub const TTL: Duration = Duration::from_secs(10);

/// The longest one renewal may take (connecting included).
const RENEW_BOUND: Duration = Duration::from_secs(2);

const RELEASE: &str = r#"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"#;

// Renewal never shortens a lease stretched over an attempt window.
const RENEW: &str = r#"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[2]) then
    redis.call('PEXPIRE', KEYS[1], ARGV[2])
  end
  return 1
end
return 0
"#;

/// A held lease; dropping it releases the lease.
pub struct Lease {
    store: SharedStore,
    alias: String,
    key: String,
    owner: String,
    stop: Arc<(Mutex<bool>, Condvar)>,
    lost: Arc<AtomicBool>,
    renewer: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Lease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Lease({})", self.key)
    }
}

fn owner_token() -> Result<String, Error> {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b)
        .map_err(|e| Error::Other(format!("cannot draw random bytes from the OS: {e}")))?;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    Ok(format!(
        "{hex}:{}:{}",
        super::hostname(),
        std::process::id()
    ))
}

impl Lease {
    pub(super) fn acquire(
        store: &SharedStore,
        alias: &str,
        wait: Duration,
    ) -> Result<Lease, Error> {
        let key = store.tagged("lease", alias);
        let owner = owner_token()?;
        let ttl_ms = TTL.as_millis() as u64;
        let clock = store.clock();
        let started = clock.instant();
        let mut pause = Duration::from_millis(5);
        let mut told = false;
        loop {
            let got: Option<String> = store.run(|c| {
                redis::cmd("SET")
                    .arg(&key)
                    .arg(&owner)
                    .arg("NX")
                    .arg("PX")
                    .arg(ttl_ms)
                    .query(c)
            })?;
            if got.is_some() {
                break;
            }
            // sfx's leases always expire: a key with no expiry (or of another
            // type) was written by someone else and would block every refresh.
            let ttl: i64 = store.run(|c| redis::cmd("PTTL").arg(&key).query(c))?;
            if ttl == -1 {
                return Err(Error::StoreUnavailable {
                    message: format!(
                        "the refresh lease of org {alias} in the shared store at {} holds a value that never expires, which sfx never writes (the key {key} was written by something else)",
                        store.display()
                    ),
                    hint: Some(format!(
                        "once no sfx is refreshing, remove it (`redis-cli DEL {key}`); check who else writes to this Redis"
                    )),
                    source: None,
                });
            }
            let waited = clock.instant().saturating_duration_since(started);
            if waited >= wait {
                let holder: Option<String> = store
                    .run(|c| redis::cmd("GET").arg(&key).query(c))
                    .ok()
                    .flatten();
                let who = holder
                    .and_then(|h| h.split_once(':').map(|(_, rest)| rest.to_string()))
                    .map(|h| format!("an sfx process on {}", crate::text::sanitize(&h, 80)))
                    .unwrap_or_else(|| "another sfx process".into());
                return Err(Error::StoreUnavailable {
                    message: format!(
                        "{who} has held the refresh lease of org {alias} in the shared store at {} for more than {}, so this one gives up",
                        store.display(),
                        crate::timefmt::humanize(wait)
                    ),
                    hint: Some(format!(
                        "a holder that died frees it within {}; a live one is still refreshing",
                        crate::timefmt::humanize(TTL)
                    )),
                    source: None,
                });
            }
            if !told && waited >= Duration::from_secs(2) {
                told = true;
                store.inner.notes.tell(crate::store::Said::Waiting(&format!(
                    "waiting for another sfx process that holds the refresh lease of org {alias} in the shared store…"
                )));
            }
            clock.sleep(pause.min(wait.saturating_sub(waited)));
            pause = (pause * 2).min(Duration::from_millis(50));
        }
        store
            .inner
            .held
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(alias.to_string(), owner.clone());
        let stop = Arc::new((Mutex::new(false), Condvar::new()));
        let lost = Arc::new(AtomicBool::new(false));
        let renewer = {
            let (store, key, owner, stop, lost) = (
                store.clone(),
                key.clone(),
                owner.clone(),
                stop.clone(),
                lost.clone(),
            );
            std::thread::Builder::new()
                .name("sfx-lease".into())
                .spawn(move || renew_until_stopped(&store, &key, &owner, &stop, &lost))
                .ok()
        };
        Ok(Lease {
            store: store.clone(),
            alias: alias.to_string(),
            key,
            owner,
            stop,
            lost,
            renewer,
        })
    }

    /// Whether the lease was lost (a renewal found another owner or none).
    pub fn lost(&self) -> bool {
        self.lost.load(Ordering::Relaxed)
    }
}

/// Renew every TTL/3 on a connection of its own (opened only when the first
/// renewal is due, so short refreshes cost no second connection).
fn renew_until_stopped(
    store: &SharedStore,
    key: &str,
    owner: &str,
    stop: &(Mutex<bool>, Condvar),
    lost: &AtomicBool,
) {
    let every = TTL / 3;
    let ttl_ms = TTL.as_millis() as u64;
    let script = redis::Script::new(RENEW);
    // Each renewal ends well inside the lease, whatever --timeout says: a
    // renewal that waited longer than the lease could never save it.
    let bound = store.timeout().min(RENEW_BOUND);
    let clock = store.clock();
    let (m, cv) = stop;
    let mut stopped = m.lock().unwrap_or_else(|p| p.into_inner());
    loop {
        let deadline = clock.instant() + every;
        while !*stopped {
            let left = deadline.saturating_duration_since(clock.instant());
            if left.is_zero() {
                break;
            }
            stopped = crate::clock::wait_timeout(clock, cv, stopped, left).0;
        }
        if *stopped {
            return;
        }
        // On a connection of the store's (routed to the lease's node on a
        // cluster), opened when the first renewal is due.
        let renewed = store.run_within(bound, |c| {
            script.key(key).arg(owner).arg(ttl_ms).invoke::<i64>(c)
        });
        match renewed {
            Ok(1) => {}
            Ok(_) => {
                lost.store(true, Ordering::Relaxed);
                return;
            }
            // The store is unreachable: try again next time on a new connection.
            Err(_) => {}
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        {
            let (m, cv) = &*self.stop;
            *m.lock().unwrap_or_else(|p| p.into_inner()) = true;
            cv.notify_all();
        }
        if let Some(t) = self.renewer.take() {
            let _ = t.join();
        }
        {
            let mut held = self
                .store
                .inner
                .held
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            if held.get(&self.alias) == Some(&self.owner) {
                held.remove(&self.alias);
            }
        }
        if self.lost() {
            return;
        }
        let script = redis::Script::new(RELEASE);
        // If this fails, the lease ends by itself within TTL.
        let _ = self
            .store
            .run(|c| script.key(&self.key).arg(&self.owner).invoke::<i64>(c));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::FakeClock;

    fn store(clock: &Arc<FakeClock>) -> (super::super::backend::tests::Server, SharedStore) {
        let srv = super::super::backend::tests::server();
        let url = match super::super::url::parse(
            Some(&format!("redis://:pw@127.0.0.1:{}", srv.1)),
            "--store",
        )
        .unwrap()
        {
            super::super::StoreChoice::Shared(u) => u,
            super::super::StoreChoice::Local => unreachable!(),
        };
        let s = SharedStore::new(url, "lease".into(), Duration::from_secs(2))
            .unwrap()
            .with_clock(clock.clone());
        (srv, s)
    }

    fn fake() -> Arc<FakeClock> {
        Arc::new(FakeClock::at(chrono::Utc::now()))
    }

    /// A held lease is renewed every third of its life on the store's clock:
    /// three renewals carry it past its TTL (10 s of fake time in
    /// milliseconds), and it is still this process's.
    #[test]
    fn a_held_lease_is_renewed_every_third_of_its_life() {
        let clock = fake();
        let (_srv, s) = store(&clock);
        let lease = Lease::acquire(&s, "a", Duration::from_secs(60)).unwrap();
        assert!(clock.slept().is_empty(), "a free lease is taken at once");
        // About to expire in Redis: a renewal gives it its whole life back.
        let key = s.tagged("lease", "a");
        let _: i64 = s
            .run(|c| redis::cmd("PEXPIRE").arg(&key).arg(300).query(c))
            .unwrap();
        let real = std::time::Instant::now();
        while clock.slept().len() < 4 {
            assert!(
                real.elapsed() < Duration::from_secs(20),
                "no renewals: {:?}",
                clock.slept()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        let slept = clock.slept();
        assert!(slept.iter().all(|d| *d == TTL / 3), "{slept:?}");
        assert!(
            clock.elapsed() > TTL,
            "past the unrenewed life of the lease"
        );
        assert!(!lease.lost());
        let (owner, pttl): (Option<String>, i64) = s
            .run(|c| {
                let o = redis::cmd("GET").arg(&key).query(c)?;
                let t = redis::cmd("PTTL").arg(&key).query(c)?;
                Ok((o, t))
            })
            .unwrap();
        assert_eq!(owner.as_deref(), Some(lease.owner.as_str()));
        assert!(pttl > 1_000 && pttl <= TTL.as_millis() as i64, "{pttl}");
        drop(lease);
        let gone: Option<String> = s.run(|c| redis::cmd("GET").arg(&key).query(c)).unwrap();
        assert_eq!(gone, None, "released on drop");
    }

    /// Another holder keeps the lease: the waiter gives up after exactly its
    /// wait (a minute of fake time), naming the holder's host, looking again at
    /// 5, 10, 20, 40 ms and then every 50 ms.
    #[test]
    fn a_waiter_gives_up_after_exactly_its_wait() {
        let clock = fake();
        let (_srv, s) = store(&clock);
        let key = s.tagged("lease", "a");
        let _: () = s
            .run(|c| {
                redis::cmd("SET")
                    .arg(&key)
                    .arg("00ff:otherhost:4242")
                    .arg("PX")
                    .arg(600_000)
                    .query(c)
            })
            .unwrap();
        let wait = Duration::from_secs(60);
        let err = Lease::acquire(&s, "a", wait).err().unwrap();
        assert_eq!(err.exit(), crate::exit::Exit::StoreUnavailable);
        let msg = err.to_string();
        assert!(
            msg.contains("an sfx process on otherhost:4242 has held the refresh lease of org a")
                && msg.contains("for more than 1m"),
            "{msg}"
        );
        assert_eq!(clock.elapsed(), wait);
        let slept = clock.slept();
        let ms = Duration::from_millis;
        assert_eq!(slept[..5], [ms(5), ms(10), ms(20), ms(40), ms(50)]);
        // Every 50 ms after that; the last pause only up to the bound.
        let (last, middle) = slept[4..].split_last().unwrap();
        assert!(middle.iter().all(|d| *d == ms(50)));
        assert!(*last <= ms(50));
        // The holder's lease was left alone.
        let still: Option<String> = s.run(|c| redis::cmd("GET").arg(&key).query(c)).unwrap();
        assert_eq!(still.as_deref(), Some("00ff:otherhost:4242"));
    }
}
