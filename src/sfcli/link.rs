//! Orgs linked to a login of the Salesforce CLI, and the import that links them.
//!
//! Under refresh-token rotation two tools sharing one login must always send the
//! newest refresh token: a spent one makes Salesforce revoke the whole login. So
//! a linked org's refresh goes like this (the caller holds sfx's org lock):
//!
//! 1. [`before_refresh`]: take sf's own lock on its auth file (held, and kept
//!    fresh, until the refresh is written back, so an `sf` command starting
//!    meanwhile waits and then reads the new token), read sf's refresh token, and
//!    compare its fingerprint with the one sfx remembered: a different one means
//!    sf rotated it since, and sf's is sent; the same one means sfx's copy is at
//!    least as new, and sfx's is sent.
//! 2. [`after_refresh`]: when the token sent is not the one in sf's file any more
//!    (Salesforce rotated it, or an earlier write-back failed), write the new
//!    access and refresh tokens into sf's file, encrypted with sf's key, in sf's
//!    layout, atomically; then remember the new fingerprint.
//!
//! When the link cannot be kept (file gone, key gone, file changed beyond
//! recognition): for an app seen rotating refresh tokens sfx refuses to refresh
//! (its copy may be spent), exit 4; otherwise it says so on stderr and uses its
//! own refresh token, which is as good as sf's.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::crypto::Key;
use super::files::{self, AuthFile, SfLock};
use super::key;
use crate::error::Error;
use crate::salesforce::types::TokenResponse;
use crate::secret::Secret;
use crate::store::SecretKind;
use crate::store::metadata::SfLink;
use crate::store::{Org, OrgStore};

/// A fingerprint of a refresh token for the metadata (never the token).
pub fn fingerprint(token: &Secret) -> String {
    let d = Sha256::digest(token.expose().as_bytes());
    super::crypto::hex_encode(&d[..8])
}

/// Held between the two calls of a linked refresh.
pub struct Linked {
    _lock: SfLock,
    file: AuthFile,
    key: Key,
    /// The refresh token sf's file held before the refresh.
    sf_refresh_token: Secret,
}

fn home_relative(p: &Path) -> String {
    p.display().to_string()
}

/// The link cannot be used: refuse under rotation, else warn and go on unlinked.
fn broken(org: &Org, link: &SfLink, why: &str) -> Result<Option<Linked>, Error> {
    let alias = org.name();
    if org.record.rotates_refresh_token {
        return Err(Error::relogin(
            format!(
                "org {alias} is linked to the Salesforce CLI's login {} but {why}. This app rotates refresh tokens, so sfx's own copy may already be spent by sf, and sfx does not send a refresh token that may be stale (Salesforce would revoke the whole login)",
                link.username
            ),
            format!(
                "if sf still has the login, take it again: `sfx login --from-sf {} --alias {alias}`; otherwise log in again: `sfx login --web --alias {alias}`",
                link.username
            ),
        ));
    }
    crate::messages::warning(&format!(
        "org {alias} is linked to the Salesforce CLI's login {} but {why}; sfx refreshes with its own refresh token (no rotation has been seen, so it is as good as sf's) and cannot pass the result on to sf. `sfx login --from-sf {} --alias {alias}` links it again",
        link.username, link.username
    ));
    Ok(None)
}

/// Why sf's file holds another login than the one sfx linked to, if it does:
/// another connected app (client id), or another org (org id).
fn another_login(org: &Org, file: &AuthFile) -> Option<String> {
    let rec = &org.record;
    if let Some(id) = rec.client_id.as_deref()
        && id != file.client_id
    {
        return Some(format!(
            "a login of another connected app ({})",
            crate::text::sanitize(&file.client_id, 100)
        ));
    }
    if let (Some(mine), Some(theirs)) = (rec.org_id.as_deref(), file.org_id.as_deref())
        && mine.get(..15) != theirs.get(..15)
    {
        return Some(format!(
            "a login of another org ({})",
            crate::text::sanitize(theirs, 20)
        ));
    }
    None
}

/// Before refreshing `org`: when it is linked to sf, hold sf's lock on its file
/// and put into `refresh_token` the newest refresh token of the two tools.
/// `None` for orgs that are not linked (nothing happens).
pub fn before_refresh(
    store: &dyn OrgStore,
    org: &Org,
    refresh_token: &mut Secret,
    clock: &dyn crate::clock::Clock,
) -> Result<Option<Linked>, Error> {
    let Some(link) = org.record.sf_link.as_ref().filter(|_| !org.is_env()) else {
        return Ok(None);
    };
    let path = PathBuf::from(&link.file);
    if let Some(dir) = path.parent() {
        files::check_dir(dir)?;
    }
    if !path.is_file() {
        return broken(
            org,
            link,
            &format!(
                "sf's file {} is gone (sf logged out, or the file moved)",
                home_relative(&path)
            ),
        );
    }
    let lock = files::lock(&path, files::LOCK_WAIT, clock)?;
    let file = match AuthFile::read(&path) {
        Ok(Some(f)) => f,
        Ok(None) => {
            return broken(
                org,
                link,
                &format!("sf's file {} is gone", home_relative(&path)),
            );
        }
        Err(e) => return broken(org, link, &e.to_string()),
    };
    if !file.username.eq_ignore_ascii_case(&link.username) {
        return broken(
            org,
            link,
            &format!(
                "sf's file {} now belongs to another user",
                home_relative(&path)
            ),
        );
    }
    if let Some(why) = another_login(org, &file) {
        // sf logged in again (another app, another org): its token is of another
        // login, and sfx's own was never sf's to spend. Taking sf's would send it
        // with sfx's client id and cost sfx its login (issue #24), so sfx keeps
        // and uses its own, and leaves sf's file alone.
        crate::messages::warning(&format!(
            "org {alias} is linked to the Salesforce CLI's login {user}, but sf's file {file} is now {why}: sf logged in again, so the link is broken. sfx refreshes with its own refresh token and no longer writes into sf's file; `sfx login --from-sf {user} --alias {alias}` links to sf's new login instead",
            alias = org.name(),
            user = link.username,
            file = home_relative(&path),
        ));
        return Ok(None);
    }
    let sf_dir = path.parent().unwrap_or_else(|| Path::new("."));
    let key = match key::load(sf_dir) {
        Ok((k, _)) => k,
        // The keychain is there but cannot answer now: not a broken link.
        Err(e @ Error::StoreUnavailable { .. }) => return Err(e),
        Err(e) => return broken(org, link, &e.to_string()),
    };
    let sf_rt = match file.secret(&key, "refreshToken") {
        Ok(Some(t)) => t,
        Ok(None) => {
            return broken(
                org,
                link,
                &format!("sf's file {} has no refresh token", home_relative(&path)),
            );
        }
        Err(why) => {
            return broken(
                org,
                link,
                &format!("sf's file {} cannot be read: {why}", home_relative(&path)),
            );
        }
    };
    if fingerprint(&sf_rt) != link.refresh_token_fingerprint
        && sf_rt.expose() != refresh_token.expose()
    {
        // sf refreshed with rotation since sfx last saw its file: sfx's copy is
        // spent. Keep sf's in sfx's store too, whatever the refresh brings.
        store.put_secret(org, SecretKind::RefreshToken, &sf_rt)?;
        *refresh_token = sf_rt.clone();
    }
    Ok(Some(Linked {
        _lock: lock,
        file,
        key,
        sf_refresh_token: sf_rt,
    }))
}

/// After a refresh of a linked org that sfx stored: write the tokens back into
/// sf's file when sf's refresh token is no longer the current one, then remember
/// its fingerprint. `sent` is the refresh token the request carried.
pub fn after_refresh(
    store: &dyn OrgStore,
    org: &Org,
    linked: Option<Linked>,
    resp: &TokenResponse,
    sent: &Secret,
) -> Result<(), Error> {
    let Some(linked) = linked else {
        return Ok(());
    };
    let current = resp.refresh_token.as_ref().unwrap_or(sent);
    if current.expose() == linked.sf_refresh_token.expose() {
        return remember(store, org, current);
    }
    let path = linked.file.path.clone();
    let failed = |why: String| {
        Error::Other(format!(
            "sfx refreshed org {} and stored the new tokens, but could not write them back into the Salesforce CLI's file {} ({why}); sf's next refresh of this login will fail, and under rotation make Salesforce revoke it. sfx tries again at its next refresh",
            org.name(),
            path.display()
        ))
    };
    let bytes = linked
        .file
        .with_tokens(&linked.key, &resp.access_token, current)
        .map_err(&failed)?;
    files::write_atomic(&path, &bytes).map_err(|e| failed(e.to_string()))?;
    remember(store, org, current)
}

fn remember(store: &dyn OrgStore, org: &Org, current: &Secret) -> Result<(), Error> {
    let fp = fingerprint(current);
    if org
        .record
        .sf_link
        .as_ref()
        .is_some_and(|l| l.refresh_token_fingerprint == fp)
    {
        return Ok(());
    }
    store
        .update_record(org.name(), &mut |r| {
            if let Some(link) = r.sf_link.as_mut() {
                link.refresh_token_fingerprint = fp.clone();
            }
        })
        .map(|_| ())
}

/// The refresh token to hand out for a linked org (`token --auth-url`): sf's
/// when sf rotated it since, else sfx's own. Holds sf's lock only while reading.
pub fn current_refresh_token(
    store: &dyn OrgStore,
    org: &Org,
    stored: Secret,
    clock: &dyn crate::clock::Clock,
) -> Result<Secret, Error> {
    let mut rt = stored;
    drop(before_refresh(store, org, &mut rt, clock)?);
    Ok(rt)
}

/// A login of sf, decrypted, ready to store in sfx.
pub struct Imported {
    pub path: PathBuf,
    /// The sf alias `name` was (when it was one).
    pub sf_alias: Option<String>,
    pub username: String,
    pub instance_url: String,
    pub login_url: Option<String>,
    pub org_id: Option<String>,
    pub client_id: String,
    pub client_secret: Option<Secret>,
    /// `None` for an access-token or JWT bearer login of sf.
    pub refresh_token: Option<Secret>,
    pub access_token: Secret,
    /// sf's `privateKey`: the key file of a JWT bearer login (`sf org login jwt`).
    pub private_key: Option<PathBuf>,
    pub key_version: &'static str,
}

impl Imported {
    /// The link kept with sf's file; only a login with a refresh token has one
    /// (nothing else is shared, or written back).
    pub fn link(&self) -> Option<SfLink> {
        self.refresh_token.as_ref().map(|rt| SfLink {
            file: self.path.display().to_string(),
            username: self.username.clone(),
            refresh_token_fingerprint: fingerprint(rt),
        })
    }
}

/// Read sf's login `name` (an sf alias or a username): no network, nothing written.
pub fn import(name: &str) -> Result<Imported, Error> {
    let dir = files::sf_dir()?;
    let aliases = files::aliases(&dir)?;
    let (sf_alias, username) = match aliases.iter().find(|(a, _)| a == name) {
        Some((a, u)) => (Some(a.clone()), u.clone()),
        None => (None, name.to_string()),
    };
    let path = files::auth_path(&dir, &username)?;
    let shown = crate::text::sanitize(name, 100);
    let Some(file) = AuthFile::read(&path)? else {
        return Err(Error::relogin(
            format!(
                "the Salesforce CLI has no login called `{shown}` (no such alias in {}, no file {})",
                dir.join("alias.json").display(),
                path.display()
            ),
            "`sfx login --from-sf` lists the logins sf has; `sf org list` shows them in sf",
        ));
    };
    let damaged = |why: String| {
        Error::Other(format!(
            "{} is not a Salesforce CLI auth file sfx can use ({why}); sfx wrote nothing",
            path.display()
        ))
    };
    if !file.username.eq_ignore_ascii_case(&username) {
        return Err(damaged(format!(
            "it names the user `{}`",
            crate::text::sanitize(&file.username, 100)
        )));
    }
    let instance_url = file
        .instance_url
        .as_deref()
        .ok_or_else(|| damaged("it has no instanceUrl".into()))
        .and_then(|u| {
            crate::salesforce::url::base_url(u, "its instanceUrl")
                .map_err(|e| damaged(e.to_string()))
        })?;
    let login_url = file
        .login_url
        .as_deref()
        .map(|u| {
            crate::salesforce::url::base_url(u, "its loginUrl").map_err(|e| damaged(e.to_string()))
        })
        .transpose()?;
    let (key, _src) = key::load(&dir)?;
    let secret = |field: &str| file.secret(&key, field).map_err(&damaged);
    // No refresh token: an `sf org login access-token` or `sf org login jwt`
    // login (issue #21). The caller decides what it becomes in sfx.
    let refresh_token = secret("refreshToken")?;
    let private_key = file
        .fields
        .get("privateKey")
        .and_then(|v| v.as_str())
        .filter(|p| !p.is_empty())
        .map(std::path::PathBuf::from);
    let access_token =
        secret("accessToken")?.ok_or_else(|| damaged("it has no accessToken".into()))?;
    let client_secret = secret("clientSecret")?;
    Ok(Imported {
        path,
        sf_alias,
        username: file.username.clone(),
        instance_url,
        login_url,
        org_id: file.org_id.clone(),
        client_id: file.client_id.clone(),
        client_secret,
        refresh_token,
        access_token,
        private_key,
        key_version: key.version(),
    })
}
