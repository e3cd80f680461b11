//! The lifecycle's rules, tested directly: a fake clock, an in-memory store
//! (with a journal and a way to lose a compare-and-set race), and the real
//! client against the in-repo fake Salesforce over real HTTP.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use fake_salesforce::{DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, DEFAULT_USERNAME, FakeSalesforce};

use super::expiry::{self, Expiry, Source};
use super::refresh;
use crate::clock::{Clock, FixedClock};
use crate::error::Error;
use crate::salesforce::Client;
use crate::salesforce::http::Http;
use crate::secret::Secret;
use crate::store::memory::MemoryStore;
use crate::store::metadata::{ExactSource, Flow, KnownExpiry, OrgRecord, StoreKind};
use crate::store::{
    Cas, Listing, NewTokens, Org, OrgLock, OrgStore, Remembered, SecretKind, Version, Versioned,
};

const T0: i64 = 1_800_000_000;

fn at(secs: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(secs, 0).unwrap()
}

fn record(alias: &str) -> OrgRecord {
    OrgRecord {
        username: Some(DEFAULT_USERNAME.into()),
        client_id: Some(DEFAULT_CLIENT_ID.into()),
        ..OrgRecord::new(
            alias,
            "https://a.example.com",
            Flow::AuthUrl,
            StoreKind::File,
        )
    }
}

fn known(exp: i64, source: ExactSource) -> Option<KnownExpiry> {
    Some(KnownExpiry {
        exp,
        iat: Some(exp - 7200),
        source,
        checked_at: T0 - 60,
    })
}

// ----- an in-memory store that can lose a race ----------------------------------

/// What these tests watch besides the store: the answers remembered, a rival
/// writer that wins the next compare-and-set, and the token writes made.
#[derive(Default)]
struct Mem {
    remembered: Vec<(String, KnownExpiry)>,
    /// The next write_tokens loses to this writer: (record, access token).
    rival: Option<(OrgRecord, Secret)>,
    writes: usize,
}

/// The in-memory store ([`MemoryStore`]) with [`Mem`] beside it.
#[derive(Default, Clone)]
struct MemStore(Arc<(MemoryStore, Mutex<Mem>)>);

impl MemStore {
    fn with(rec: OrgRecord, secrets: &[(SecretKind, &str)]) -> MemStore {
        let s = MemStore::default();
        let secrets: Vec<(SecretKind, Secret)> =
            secrets.iter().map(|(k, v)| (*k, Secret::new(*v))).collect();
        let refs: Vec<(SecretKind, Option<&Secret>)> =
            secrets.iter().map(|(k, v)| (*k, Some(v))).collect();
        s.store().save_org(&rec, &refs, false).unwrap();
        s
    }
    fn store(&self) -> &MemoryStore {
        &self.0.0
    }
    fn m(&self) -> std::sync::MutexGuard<'_, Mem> {
        self.0.1.lock().unwrap()
    }
    fn org(&self, alias: &str) -> Org {
        self.read(alias).unwrap().unwrap().org
    }
}

impl OrgStore for MemStore {
    fn list(&self) -> Result<Listing, Error> {
        self.store().list()
    }
    fn read(&self, alias: &str) -> Result<Option<Versioned>, Error> {
        self.store().read(alias)
    }
    fn secret(&self, org: &Org, kind: SecretKind) -> Result<Option<Secret>, Error> {
        self.store().secret(org, kind)
    }
    fn write_tokens(&self, expected: Version, new: &NewTokens<'_>) -> Result<Cas, Error> {
        if let Some((rec, token)) = self.m().rival.take() {
            // Someone else stores first.
            self.store()
                .save_org(&rec, &[(SecretKind::AccessToken, Some(&token))], false)?;
        }
        let done = self.store().write_tokens(expected, new)?;
        if let Cas::Written(_) = done {
            self.m().writes += 1;
        }
        Ok(done)
    }
    fn put_secret(&self, org: &Org, kind: SecretKind, value: &Secret) -> Result<(), Error> {
        self.store().put_secret(org, kind, value)
    }
    fn update_record(
        &self,
        alias: &str,
        change: &mut dyn FnMut(&mut OrgRecord),
    ) -> Result<bool, Error> {
        self.store().update_record(alias, change)
    }
    fn remember(&self, answers: &[Remembered<'_>]) -> Result<(), Error> {
        self.m()
            .remembered
            .extend(answers.iter().map(|a| (a.alias.to_string(), a.expiry)));
        self.store().remember(answers)
    }
    fn lock(&self, alias: &str) -> Result<OrgLock, Error> {
        self.store().lock(alias)
    }
    fn journal_pending(&self, alias: &str, t: &Secret) -> Result<bool, Error> {
        self.store().journal_pending(alias, t)
    }
    fn journal_begin(&self, alias: &str, t: &Secret) -> Result<bool, Error> {
        self.store().journal_begin(alias, t)
    }
    fn journal_settle(&self, alias: &str) {
        self.store().journal_settle(alias)
    }
    fn save_org(
        &self,
        _r: &OrgRecord,
        _s: &[(SecretKind, Option<&Secret>)],
        _d: bool,
    ) -> Result<Vec<String>, Error> {
        unreachable!("the lifecycle never logs in")
    }
    fn delete_org(&self, _a: &str) -> Result<Option<OrgRecord>, Error> {
        unreachable!("the lifecycle never logs out")
    }
    fn set_default(&self, _a: Option<&str>) -> Result<(), Error> {
        unreachable!("the lifecycle never sets the default")
    }
    fn describe(&self) -> String {
        self.store().describe()
    }
}

// ----- the fake Salesforce and a client -----------------------------------------

struct World {
    sf: FakeSalesforce,
    http: Http,
    clock: Arc<FixedClock>,
}

impl World {
    fn new(now: i64) -> World {
        let clock = Arc::new(FixedClock::at(at(now)));
        World {
            sf: FakeSalesforce::start(),
            http: Http::with_clock(Duration::from_secs(10), 0, clock.clone()),
            clock,
        }
    }
    /// What the fake must see: a token request when `refresh`, else nothing.
    fn expect_refresh(&self, refresh: bool) {
        if refresh {
            self.sf.expect_hit("/services/oauth2/token");
        } else {
            self.sf.expect_no_requests();
        }
    }
    fn client(&self) -> Client<'_> {
        Client { http: &self.http }
    }
    /// A stored org logged in by refresh token at the fake (no access token yet).
    fn org_with_refresh_token(&self) -> (OrgRecord, String) {
        let rt = self
            .sf
            .grant_refresh_token(DEFAULT_CLIENT_ID, DEFAULT_USERNAME);
        let mut rec = record("prod");
        rec.instance_url = self.sf.url();
        rec.has_refresh_token = true;
        rec.has_client_secret = true;
        (rec, rt)
    }
}

// ----- expiry: 0 requests ----------------------------------------------------------

#[test]
fn offline_answers_from_the_record_alone() {
    struct Case {
        name: &'static str,
        expiry: Option<KnownExpiry>,
        issued_at: Option<i64>,
        timeout: u64,
        want: Option<(bool, Source, Option<i64>)>,
    }
    let cases = [
        Case {
            name: "a JWT exp in the future",
            expiry: known(T0 + 600, ExactSource::Jwt),
            issued_at: Some(T0 - 100),
            timeout: 7200,
            want: Some((true, Source::Jwt, Some(T0 + 600))),
        },
        Case {
            name: "a JWT exp one second ago",
            expiry: known(T0 - 1, ExactSource::Jwt),
            issued_at: None,
            timeout: 7200,
            want: Some((false, Source::Jwt, Some(T0 - 1))),
        },
        Case {
            name: "exp == now is already over",
            expiry: known(T0, ExactSource::Jwt),
            issued_at: None,
            timeout: 7200,
            want: Some((false, Source::Jwt, Some(T0))),
        },
        Case {
            name: "cached introspection beats the estimate",
            expiry: known(T0 + 60, ExactSource::Introspection),
            issued_at: Some(T0 - 7000),
            timeout: 7200,
            want: Some((true, Source::Cached, Some(T0 + 60))),
        },
        Case {
            name: "estimate: issued_at + session timeout",
            expiry: None,
            issued_at: Some(T0 - 7100),
            timeout: 7200,
            want: Some((true, Source::Estimate, Some(T0 + 100))),
        },
        Case {
            name: "estimate already past",
            expiry: None,
            issued_at: Some(T0 - 7300),
            timeout: 7200,
            want: Some((false, Source::Estimate, Some(T0 - 100))),
        },
        Case {
            name: "a session timeout that would overflow the clock: unknown exp, not a panic",
            expiry: None,
            issued_at: Some(T0),
            timeout: u64::MAX,
            want: Some((true, Source::Estimate, None)),
        },
        Case {
            name: "nothing known",
            expiry: None,
            issued_at: None,
            timeout: 7200,
            want: None,
        },
    ];
    for c in cases {
        let mut rec = record("prod");
        rec.expiry = c.expiry;
        rec.issued_at = c.issued_at;
        rec.session_timeout_secs = c.timeout;
        let got = expiry::offline(&rec, at(T0))
            .map(|e| (e.active, e.source, e.exp.map(|t| t.timestamp())));
        assert_eq!(got, c.want, "{}", c.name);
    }
}

#[test]
fn outlives_needs_active_and_at_least_the_window() {
    // (active, seconds left, window, outlives)
    let cases = [
        (true, 3600, 300, true),
        (true, 300, 300, true),
        (true, 299, 300, false),
        (true, 0, 0, false),
        (true, -5, 0, false),
        (false, 3600, 300, false),
    ];
    for (active, left, window, want) in cases {
        let e = Expiry {
            active,
            exp: Some(at(T0 + left)),
            iat: None,
            source: Source::Jwt,
            checked_at: None,
            note: None,
        };
        assert_eq!(
            e.outlives(at(T0), Duration::from_secs(window)),
            want,
            "active={active} left={left} window={window}"
        );
    }
    let unknown = Expiry {
        exp: None,
        ..Expiry::estimate(&record("x"), None, at(T0))
    };
    assert!(
        !unknown.outlives(at(T0), Duration::ZERO),
        "unknown never outlives"
    );
}

// ----- expiry: asking the server ------------------------------------------------------

#[test]
fn when_an_estimate_is_allowed_and_what_inactive_means() {
    let w = World::new(Utc::now().timestamp());
    let live = w.sf.grant_access_token(DEFAULT_CLIENT_ID, DEFAULT_USERNAME);
    let revoked = w.sf.grant_access_token(DEFAULT_CLIENT_ID, DEFAULT_USERNAME);
    w.sf.revoke_token(&revoked);
    // A live token of another app: this app's introspection calls it inactive.
    w.sf.add_client(fake_salesforce::Client::new("3MVG9other", Some("s")));
    let foreign = w.sf.grant_access_token("3MVG9other", DEFAULT_USERNAME);

    struct Case {
        name: &'static str,
        token: String,
        client_id: bool,
        issued_at: bool,
        want_active: bool,
        want_source: Source,
        introspections: usize,
        userinfos: usize,
    }
    let cases = [
        Case {
            name: "live token: introspection's exp",
            token: live.clone(),
            client_id: true,
            issued_at: false,
            want_active: true,
            want_source: Source::Introspection,
            introspections: 1,
            userinfos: 0,
        },
        Case {
            name: "inactive and userinfo agrees: dead",
            token: revoked.clone(),
            client_id: true,
            issued_at: true,
            want_active: false,
            want_source: Source::Introspection,
            introspections: 1,
            userinfos: 1,
        },
        Case {
            name: "inactive but works (another app's): the estimate",
            token: foreign,
            client_id: true,
            issued_at: true,
            want_active: true,
            want_source: Source::Estimate,
            introspections: 1,
            userinfos: 1,
        },
        Case {
            name: "no client id, issued_at known: estimate without a request",
            token: live.clone(),
            client_id: false,
            issued_at: true,
            want_active: true,
            want_source: Source::Estimate,
            introspections: 0,
            userinfos: 0,
        },
        Case {
            name: "no client id, nothing known: userinfo says alive",
            token: live,
            client_id: false,
            issued_at: false,
            want_active: true,
            want_source: Source::Estimate,
            introspections: 0,
            userinfos: 1,
        },
        Case {
            name: "no client id, nothing known: userinfo says dead",
            token: revoked,
            client_id: false,
            issued_at: false,
            want_active: false,
            want_source: Source::Estimate,
            introspections: 0,
            userinfos: 1,
        },
    ];
    for c in cases {
        let mut rec = record("prod");
        rec.instance_url = w.sf.url();
        rec.has_client_secret = true;
        if !c.client_id {
            rec.client_id = None;
        }
        if c.issued_at {
            rec.issued_at = Some(w.clock.now().timestamp() - 60);
        }
        let store = MemStore::with(rec, &[(SecretKind::ClientSecret, DEFAULT_CLIENT_SECRET)]);
        w.sf.clear_requests();
        let e = expiry::read_or_ask(
            &store,
            &w.client(),
            w.clock.now(),
            &store.org("prod"),
            &Secret::new(c.token),
        )
        .unwrap();
        assert_eq!(
            (e.active, e.source),
            (c.want_active, c.want_source),
            "{}",
            c.name
        );
        assert_eq!(
            w.sf.count("/services/oauth2/introspect"),
            c.introspections,
            "{}",
            c.name
        );
        assert_eq!(
            w.sf.count("/services/oauth2/userinfo"),
            c.userinfos,
            "{}",
            c.name
        );
    }
}

#[test]
fn only_active_introspection_answers_are_remembered() {
    let w = World::new(Utc::now().timestamp());
    let live = Secret::new(w.sf.grant_access_token(DEFAULT_CLIENT_ID, DEFAULT_USERNAME));
    let mut rec = record("prod");
    rec.instance_url = w.sf.url();
    rec.has_client_secret = true;
    let store = MemStore::with(rec, &[(SecretKind::ClientSecret, DEFAULT_CLIENT_SECRET)]);
    let e = expiry::ask_server(
        &store,
        &w.client(),
        w.clock.now(),
        &store.org("prod"),
        &live,
    )
    .unwrap();
    assert_eq!(e.source, Source::Introspection);
    let remembered = store.m().remembered.clone();
    assert_eq!(remembered.len(), 1);
    assert_eq!(remembered[0].1.source, ExactSource::Introspection);
    assert_eq!(
        remembered[0].1.checked_at,
        w.clock.now().timestamp(),
        "checked at the clock's now"
    );
}

// ----- refresh ----------------------------------------------------------------------

#[test]
fn refresh_if_needed_refreshes_only_inside_the_window() {
    // (seconds the stored token has left, --min-valid, refreshes)
    let cases: [(Option<i64>, u64, bool); 5] = [
        (Some(3600), 300, false),
        (Some(300), 300, false),
        (Some(299), 300, true),
        (Some(-10), 0, true),
        (None, 0, true),
    ];
    for (left, min_valid, want) in cases {
        let w = World::new(T0);
        w.expect_refresh(want);
        let (mut rec, rt) = w.org_with_refresh_token();
        rec.expiry = left.and_then(|l| known(T0 + l, ExactSource::Jwt));
        rec.access_token_masked = Some("00D…old".into());
        let store = MemStore::with(
            rec,
            &[
                (SecretKind::RefreshToken, &rt),
                (SecretKind::AccessToken, "00Dold"),
                (SecretKind::ClientSecret, DEFAULT_CLIENT_SECRET),
            ],
        );
        let f = refresh::refresh_if_needed(
            &store,
            &w.client(),
            &*w.clock,
            "prod",
            Duration::from_secs(min_valid),
        )
        .unwrap()
        .unwrap();
        let case = format!("left={left:?} min_valid={min_valid}");
        assert_eq!(f.refreshed.is_some(), want, "{case}");
        assert_eq!(
            w.sf.count_grant("refresh_token"),
            usize::from(want),
            "{case}"
        );
        assert_eq!(f.access_token.expose() == "00Dold", !want, "{case}");
        if want {
            // Stamped with the (fake) clock's time.
            assert_eq!(
                store.org("prod").record.refresh_token_used_at,
                Some(T0),
                "{case}"
            );
        }
    }
}

#[test]
fn a_removed_org_is_none_not_a_refresh() {
    let w = World::new(T0);
    w.sf.expect_no_requests();
    let store = MemStore::default();
    let got =
        refresh::refresh_if_needed(&store, &w.client(), &*w.clock, "gone", Duration::ZERO).unwrap();
    assert!(got.is_none());
    assert_eq!(w.sf.count_grant("refresh_token"), 0);
}

#[test]
fn the_rotation_journal_never_replays_a_spent_refresh_token() {
    struct Case {
        name: &'static str,
        /// A refresh with the stored token was begun and never settled.
        pending: bool,
        /// And Salesforce had in fact spent (rotated) it.
        spent: bool,
        ok: bool,
        grants: usize,
    }
    let cases = [
        Case {
            name: "nothing pending: refresh",
            pending: false,
            spent: false,
            ok: true,
            grants: 1,
        },
        Case {
            name: "pending but still active: the earlier request never landed",
            pending: true,
            spent: false,
            ok: true,
            grants: 1,
        },
        Case {
            name: "pending and spent: stop, exit 4, send nothing",
            pending: true,
            spent: true,
            ok: false,
            grants: 0,
        },
    ];
    for c in cases {
        let w = World::new(T0);
        w.sf.update_client(DEFAULT_CLIENT_ID, |cl| cl.rotate_refresh_tokens = true);
        let (mut rec, rt) = w.org_with_refresh_token();
        rec.rotates_refresh_token = true;
        let store = MemStore::with(
            rec,
            &[
                (SecretKind::RefreshToken, &rt),
                (SecretKind::ClientSecret, DEFAULT_CLIENT_SECRET),
            ],
        );
        if c.pending {
            store
                .journal_begin("prod", &Secret::new(rt.clone()))
                .unwrap();
        }
        if c.spent {
            w.sf.revoke_token(&rt);
        }
        w.sf.clear_requests();
        let r = refresh::refresh_now(&store, &w.client(), &*w.clock, &store.org("prod"));
        assert_eq!(r.is_ok(), c.ok, "{}: {:?}", c.name, r.as_ref().err());
        assert_eq!(w.sf.count_grant("refresh_token"), c.grants, "{}", c.name);
        match r {
            Ok(r) => {
                assert!(r.rotated, "{}", c.name);
                assert!(
                    !store
                        .journal_pending("prod", &Secret::new(rt.clone()))
                        .unwrap(),
                    "{}: settled",
                    c.name
                );
                let stored = store
                    .secret(&r.org, SecretKind::RefreshToken)
                    .unwrap()
                    .unwrap();
                assert_ne!(
                    stored.expose(),
                    rt,
                    "{}: the rotated token is stored",
                    c.name
                );
            }
            Err(e) => {
                assert_eq!(e.exit(), crate::exit::Exit::Relogin, "{}", c.name);
                assert!(
                    store
                        .journal_pending("prod", &Secret::new(rt.clone()))
                        .unwrap(),
                    "{}: still unsettled",
                    c.name
                );
            }
        }
    }
}

#[test]
fn a_lost_compare_and_set_uses_the_winners_token() {
    let w = World::new(T0);
    let (rec, rt) = w.org_with_refresh_token();
    let store = MemStore::with(
        rec.clone(),
        &[
            (SecretKind::RefreshToken, &rt),
            (SecretKind::ClientSecret, DEFAULT_CLIENT_SECRET),
        ],
    );
    let mut winner = rec;
    winner.access_token_masked = Some("00D…win".into());
    winner.issued_at = Some(T0);
    store.m().rival = Some((winner, Secret::new("00Dwinner")));
    let r = refresh::refresh_now(&store, &w.client(), &*w.clock, &store.org("prod")).unwrap();
    assert!(r.by_other);
    assert_eq!(r.access_token.expose(), "00Dwinner");
    assert_eq!(r.org.record.access_token_masked.as_deref(), Some("00D…win"));
    assert_eq!(store.m().writes, 0, "the loser wrote nothing");
}

#[test]
fn orgs_that_cannot_refresh_say_log_in_again_without_a_request() {
    // (flow, has a refresh token, client id)
    let cases = [
        (Flow::Password, false, true),
        (Flow::AccessToken, false, true),
        (Flow::Web, true, false),
        (Flow::Jwt, false, true),
        (Flow::ClientCredentials, false, true),
    ];
    for (flow, has_rt, client_id) in cases {
        let w = World::new(T0);
        w.sf.expect_no_requests();
        let mut rec = record("prod");
        rec.instance_url = w.sf.url();
        rec.flow = flow;
        rec.has_refresh_token = has_rt;
        if !client_id {
            rec.client_id = None;
        }
        let store = MemStore::with(rec, &[(SecretKind::RefreshToken, "5Aep-x")]);
        let e =
            refresh::refresh_now(&store, &w.client(), &*w.clock, &store.org("prod")).unwrap_err();
        assert_eq!(e.exit(), crate::exit::Exit::Relogin, "{flow:?}");
        assert!(
            e.hint().is_some_and(|h| h.contains("sfx login")),
            "{flow:?}: {:?}",
            e.hint()
        );
        assert!(w.sf.requests().is_empty(), "{flow:?}");
    }
}

#[test]
fn after_a_401_a_token_stored_meanwhile_is_used_else_one_refresh() {
    // (the token the store holds, the token Salesforce rejected, refreshes)
    let cases = [("00Dnewer", "00Dold", false), ("00Dold", "00Dold", true)];
    for (stored, sent, want) in cases {
        let w = World::new(T0);
        w.expect_refresh(want);
        let (mut rec, rt) = w.org_with_refresh_token();
        // Looks fresh for hours: only the 401 says otherwise.
        rec.expiry = known(T0 + 7000, ExactSource::Jwt);
        rec.access_token_masked = Some("00D…x".into());
        let store = MemStore::with(
            rec,
            &[
                (SecretKind::RefreshToken, &rt),
                (SecretKind::AccessToken, stored),
                (SecretKind::ClientSecret, DEFAULT_CLIENT_SECRET),
            ],
        );
        let f = refresh::refresh_unless_replaced(
            &store,
            &w.client(),
            &*w.clock,
            "prod",
            &Secret::new(sent),
        )
        .unwrap()
        .unwrap();
        let case = format!("stored={stored} sent={sent}");
        assert_eq!(f.refreshed.is_some(), want, "{case}");
        assert_eq!(
            w.sf.count_grant("refresh_token"),
            usize::from(want),
            "{case}"
        );
        if want {
            assert_ne!(f.access_token.expose(), sent, "{case}");
        } else {
            assert_eq!(f.access_token.expose(), stored, "{case}");
        }
    }
    let w = World::new(T0);
    w.sf.expect_no_requests();
    let gone = refresh::refresh_unless_replaced(
        &MemStore::default(),
        &w.client(),
        &*w.clock,
        "gone",
        &Secret::new("00Dx"),
    )
    .unwrap();
    assert!(gone.is_none());
}
