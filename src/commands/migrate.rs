//! `sfx login --migrate`: move a stored org's secrets between the secrets file
//! (`--insecure-storage`) and the OS keychain without a new OAuth login.
//!
//! The target is where a new login would store: the keychain, or the file with
//! `--insecure-storage` / `SFX_CREDENTIAL_STORE=file`. Order, so that a crash at
//! any point loses nothing: copy every secret into the target, read each back,
//! switch the org's metadata to the target, then delete the old copies. Rerunning
//! after a crash finishes the job. The org lock is held throughout, so a
//! concurrent `sfx refresh` never writes into the store being left.

use std::path::PathBuf;

use serde_json::{Value, json};

use crate::cli::LoginArgs;
use crate::context::Context;
use crate::error::Error;
use crate::output::{Report, Style};
use crate::secret::Secret;
use crate::store::metadata::StoreKind;
use crate::store::{SecretKind, file, keychain};

pub struct MigrateReport {
    pub org: String,
    pub from: StoreKind,
    pub to: StoreKind,
    pub moved: bool,
    pub file: PathBuf,
    pub notes: Vec<String>,
}

/// "the OS keychain (Secret Service)" or "the secrets file /…/secrets.json".
pub fn describe(kind: StoreKind, file: &std::path::Path) -> String {
    match kind {
        StoreKind::Keychain => format!("the OS keychain ({})", keychain::short_name()),
        StoreKind::File => format!("the secrets file {}", file.display()),
        StoreKind::Env => "the environment".to_string(),
    }
}

impl Report for MigrateReport {
    fn human(&self, _style: &Style) -> String {
        if self.moved {
            format!(
                "Moved the secrets of org {} from {} to {}; the old copies are deleted.",
                self.org,
                describe(self.from, &self.file),
                describe(self.to, &self.file)
            )
        } else {
            format!(
                "The secrets of org {} are already in {}; nothing to move.",
                self.org,
                describe(self.to, &self.file)
            )
        }
    }

    /// `{"org","from","to","moved"}` (`from`/`to`: `keychain|file`).
    fn json(&self) -> Value {
        json!({
            "org": self.org,
            "from": self.from.as_str(),
            "to": self.to.as_str(),
            "moved": self.moved,
        })
    }

    fn notes(&self) -> Vec<String> {
        self.notes.clone()
    }
}

const ALL_NONE: [(SecretKind, Option<&Secret>); 3] = [
    (SecretKind::RefreshToken, None),
    (SecretKind::AccessToken, None),
    (SecretKind::ClientSecret, None),
];

pub fn run(args: &LoginArgs, ctx: &Context) -> Result<MigrateReport, Error> {
    if ctx.env_org.is_some() {
        return Err(Error::usage(
            "credentials are set in the environment (SFX_AUTH_URL, SFX_REFRESH_TOKEN or SFX_ACCESS_TOKEN) and nothing is stored for them; unset them to move a stored org",
        ));
    }
    let to = ctx.store_for_new_login(args.insecure_storage);
    let file = ctx.store.home.join(file::FILE_NAME);
    let picked = ctx.org()?;
    let _lock = ctx.store.org_lock(picked.name())?;
    // Read again under the lock: a refresh may have just finished.
    let org = ctx
        .store
        .read()?
        .orgs
        .get(picked.name())
        .cloned()
        .map(|record| crate::context::Org { record, env: None })
        .ok_or_else(|| {
            Error::relogin(
                format!("org {} was logged out meanwhile", picked.name()),
                crate::lifecycle::relogin_hint(&picked),
            )
        })?;
    let alias = org.record.alias.clone();
    let from = org.record.store;
    let mut report = MigrateReport {
        org: alias.clone(),
        from,
        to,
        moved: false,
        file,
        notes: Vec::new(),
    };
    if from == to {
        // Finish a move that stopped after the switch: a file copy left behind.
        // (The keychain is not opened for nothing when the org lives in the file.)
        if to == StoreKind::Keychain {
            ctx.store.backend(StoreKind::File).put(&alias, &ALL_NONE)?;
        }
        return Ok(report);
    }

    let mut secrets: Vec<(SecretKind, Option<Secret>)> = Vec::new();
    for kind in SecretKind::ALL {
        secrets.push((kind, ctx.secret(&org, kind)?));
    }
    let target = ctx.store.backend(to);
    let changes: Vec<(SecretKind, Option<&Secret>)> =
        secrets.iter().map(|(k, v)| (*k, v.as_ref())).collect();
    target.put(&alias, &changes)?;
    for (kind, value) in &secrets {
        let Some(value) = value else { continue };
        let back = target.get(&alias, *kind)?;
        if back.as_ref().map(Secret::expose) != Some(value.expose()) {
            return Err(Error::StoreUnavailable {
                message: format!(
                    "{} did not give back the {} just written for org {alias}; nothing was moved",
                    describe(to, &report.file),
                    kind.as_str().replace('-', " ")
                ),
                hint: Some("`sfx doctor` shows whether the keychain works".into()),
            });
        }
    }
    ctx.store.update(|meta| match meta.orgs.get_mut(&alias) {
        Some(rec) => {
            rec.store = to;
            Ok(())
        }
        None => Err(Error::relogin(
            format!("org {alias} was logged out meanwhile"),
            crate::lifecycle::relogin_hint(&org),
        )),
    })?;
    if let Err(e) = ctx.store.backend(from).put(&alias, &ALL_NONE) {
        let retry = match to {
            StoreKind::Keychain => format!("run `sfx login --migrate -o {alias}` again to retry"),
            _ => format!(
                "delete the keychain entries of service `{}` named `{alias}:…` by hand",
                keychain::SERVICE
            ),
        };
        report.notes.push(format!(
            "warning: the secrets are moved, but the old copies in {} could not be deleted ({e}); {retry}",
            describe(from, &report.file)
        ));
    }
    report.moved = true;
    Ok(report)
}
