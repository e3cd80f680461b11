//! `sfx login --migrate`: move a stored org's secrets between the secrets file
//! (`--insecure-storage`) and the OS keychain without a new OAuth login.
//!
//! The target is where a new login would store: the keychain, or the file with
//! `--insecure-storage` / `SFX_CREDENTIAL_STORE=file`. Order, so that a crash at
//! any point loses nothing: copy every secret into the target, read each back,
//! switch the org's metadata to the target, then delete the old copies. Rerunning
//! after a crash finishes the job. The org lock is held throughout, so a
//! concurrent `sfx refresh` never writes into the store being left.
//!
//! `--to shared` / `--to local` (issue #13) move an org between this machine's
//! store and the shared store named by `--store` / `SFX_STORE`, in the same
//! order: write the record and every secret into the target, read each secret
//! back, then delete the org from the source. Both the local lock and the shared
//! lease are held (always in that order), so no refresh on any machine writes
//! into the store being left. Rerunning after a crash finishes the job.

use std::path::PathBuf;

use serde_json::{Value, json};

use crate::cli::{LoginArgs, MigrateTo};
use crate::context::Context;
use crate::error::Error;
use crate::output::{Report, Style};
use crate::secret::Secret;
use crate::store::local::delete_secrets;
use crate::store::metadata::StoreKind;
use crate::store::{SecretKind, file, keychain};

pub struct MigrateReport {
    pub org: String,
    pub from: StoreKind,
    pub to: StoreKind,
    pub moved: bool,
    pub file: PathBuf,
    pub notes: Vec<String>,
    /// The shared store, as shown (for moves in and out of it).
    pub shared: Option<String>,
}

impl MigrateReport {
    fn place(&self, kind: StoreKind) -> String {
        match (kind, &self.shared) {
            (StoreKind::Shared, Some(s)) => format!("the shared store at {s}"),
            _ => describe(kind, &self.file),
        }
    }
}

/// "the OS keychain (Secret Service)" or "the secrets file /…/secrets.json".
pub fn describe(kind: StoreKind, file: &std::path::Path) -> String {
    match kind {
        StoreKind::Keychain => format!("the OS keychain ({})", keychain::short_name()),
        StoreKind::File => format!("the secrets file {}", file.display()),
        StoreKind::Env => "the environment".to_string(),
        StoreKind::Shared => "the shared store".to_string(),
    }
}

impl Report for MigrateReport {
    fn human(&self, _style: &Style) -> String {
        if self.moved {
            format!(
                "Moved the secrets of org {} from {} to {}; the old copies are deleted.",
                self.org,
                self.place(self.from),
                self.place(self.to)
            )
        } else {
            format!(
                "The secrets of org {} are already in {}; nothing to move.",
                self.org,
                self.place(self.to)
            )
        }
    }

    /// `{"org","from","to","moved"}` (`from`/`to`: `keychain|file|shared`).
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

pub fn run(args: &LoginArgs, ctx: &Context) -> Result<MigrateReport, Error> {
    ctx.refuse_reader(
        "move orgs into or out of the shared store (that moves their refresh tokens)",
    )?;
    if ctx.env_org.is_some() {
        return Err(Error::usage(
            "credentials are set in the environment (SFX_AUTH_URL, SFX_REFRESH_TOKEN or SFX_ACCESS_TOKEN) and nothing is stored for them; unset them to move a stored org",
        ));
    }
    if let Some(to) = args.to {
        return between(args, ctx, to);
    }
    if ctx.backends().shared.is_some() {
        return Err(Error::usage(
            "with a shared store, say which way to move: `sfx login --migrate --to shared` (this machine's store → the shared store) or `--to local` (the shared store → this machine's)",
        ));
    }
    let to = ctx.store_for_new_login(args.insecure_storage);
    let local = ctx.backends().local;
    let file = local.home.join(file::FILE_NAME);
    let picked = ctx.org()?;
    let _lock = local.org_lock(picked.name())?;
    // Read again under the lock: a refresh may have just finished.
    let org = local
        .read()?
        .orgs
        .get(picked.name())
        .map(|record| crate::context::Org {
            record: (**record).clone(),
            env: None,
        })
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
        shared: None,
    };
    if from == to {
        // Finish a move that stopped after the switch: a file copy left behind.
        // (The keychain is not opened for nothing when the org lives in the file.)
        if to == StoreKind::Keychain {
            delete_secrets(local.backend(StoreKind::File), &alias)?;
        }
        return Ok(report);
    }

    let mut secrets: Vec<(SecretKind, Option<Secret>)> = Vec::new();
    for kind in SecretKind::ALL {
        secrets.push((kind, ctx.secret(&org, kind)?));
    }
    let target = local.backend(to);
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
                source: None,
            });
        }
    }
    local.update(|meta| match meta.orgs.get_mut(&alias) {
        Some(rec) => {
            std::sync::Arc::make_mut(rec).store = to;
            Ok(())
        }
        None => Err(Error::relogin(
            format!("org {alias} was logged out meanwhile"),
            crate::lifecycle::relogin_hint(&org),
        )),
    })?;
    if let Err(e) = delete_secrets(local.backend(from), &alias) {
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

/// Move an org between this machine's store and the shared store.
fn between(args: &LoginArgs, ctx: &Context, to: MigrateTo) -> Result<MigrateReport, Error> {
    use crate::store::OrgStore;
    use crate::store::{Cas, Version};
    let Some(shared) = ctx.backends().shared else {
        return Err(Error::usage(
            "--migrate --to needs a shared store: set SFX_STORE (or --store) to redis://… (rediss:// for TLS)",
        ));
    };
    let local = ctx.backends().local;
    let local_kind = ctx.local_kind_for_new_login(args.insecure_storage);
    // Which org: chosen in the store it leaves.
    let source: &dyn OrgStore = match to {
        MigrateTo::Shared => local,
        MigrateTo::Local => shared,
    };
    let listing = source.list()?;
    let was_default = listing.default.clone();
    let alias = crate::context::select(listing, ctx.wanted())?.record.alias;
    // Local lock first, then the shared lease (the same order both ways).
    let _local_lock = OrgStore::lock(local, &alias)?;
    let _lease = OrgStore::lock(shared, &alias)?;
    let gone = |alias: &str| {
        Error::relogin(
            format!("org {alias} was logged out meanwhile"),
            format!("`sfx orgs` lists what {} holds", ctx.store_name()),
        )
    };
    let org = source.read(&alias)?.ok_or_else(|| gone(&alias))?.org;
    let from = org.record.store;
    let target_kind = match to {
        MigrateTo::Shared => StoreKind::Shared,
        MigrateTo::Local => local_kind,
    };
    let mut report = MigrateReport {
        org: alias.clone(),
        from,
        to: target_kind,
        moved: false,
        file: local.home.join(file::FILE_NAME),
        notes: Vec::new(),
        shared: Some(shared.display()),
    };
    let mut secrets: Vec<(SecretKind, Option<Secret>)> = Vec::new();
    for kind in SecretKind::ALL {
        secrets.push((kind, crate::lifecycle::secret(source, &org, kind)?));
    }
    let changes: Vec<(SecretKind, Option<&Secret>)> =
        secrets.iter().map(|(k, v)| (*k, v.as_ref())).collect();
    let mut record = org.record.clone();
    record.store = target_kind;
    let target: &dyn OrgStore = match to {
        MigrateTo::Shared => shared,
        MigrateTo::Local => local,
    };
    // Already there (a rerun after a crash): only identical secrets finish the move.
    if let Some(there) = target.read(&alias)? {
        for (kind, value) in &secrets {
            let back = target.secret(&there.org, *kind)?;
            if back.as_ref().map(Secret::expose) != value.as_ref().map(Secret::expose) {
                return Err(Error::usage(format!(
                    "org {alias} is in both stores with different credentials; log it out of one first (`sfx logout -o {alias}`, with or without SFX_STORE)"
                )));
            }
        }
    } else {
        match to {
            MigrateTo::Shared => {
                if let Cas::Conflict = shared.write(&record, &changes, Some(Version(0)))? {
                    return Err(Error::Other(format!(
                        "org {alias} appeared in the shared store meanwhile; nothing was moved"
                    )));
                }
            }
            MigrateTo::Local => {
                local.save_org(&record, &changes, false)?;
            }
        }
        // Read every secret back from the target before deleting anything.
        let Some(there) = target.read(&alias)? else {
            return Err(Error::StoreUnavailable {
                message: format!(
                    "{} did not give back org {alias} just written; nothing was deleted",
                    report.place(target_kind)
                ),
                hint: None,
                source: None,
            });
        };
        for (kind, value) in &secrets {
            let Some(value) = value else { continue };
            let back = target.secret(&there.org, *kind)?;
            if back.as_ref().map(Secret::expose) != Some(value.expose()) {
                return Err(Error::StoreUnavailable {
                    message: format!(
                        "{} did not give back the {} just written for org {alias}; nothing was deleted",
                        report.place(target_kind),
                        kind.as_str().replace('-', " ")
                    ),
                    hint: Some("`sfx doctor` shows whether the stores work".into()),
                    source: None,
                });
            }
        }
    }
    if was_default.as_deref() == Some(alias.as_str()) && target.list()?.default.is_none() {
        target.set_default(Some(&alias))?;
    }
    match to {
        MigrateTo::Shared => {
            local.delete_org(&alias)?;
        }
        MigrateTo::Local => {
            shared.delete(&alias)?;
        }
    }
    report.moved = true;
    Ok(report)
}
