//! `sfx doctor`: which credential store is in use, and does the OS keychain work?
//!
//! The keychain is tested the only honest way — write, read back and delete one
//! test entry — within the 3 s bound of every keychain call, so `doctor` never
//! hangs. Failures are explained by cause (no D-Bus session, no Secret Service
//! provider, locked, no answer) with the ways out. Nothing else is read: the
//! org list comes from the metadata file, the secrets file is only looked at.

use std::path::PathBuf;

use serde_json::{Value, json};

use crate::cli::DoctorArgs;
use crate::commands::login::migrate::describe;
use crate::context::Context;
use crate::error::Error;
use crate::exit::Exit;
use crate::output::{Report, Style, paint};
use crate::store::file;
use crate::store::keychain::{self, Probe, Trouble};
use crate::store::metadata::StoreKind;
use crate::store::shared::{self, KeyState};

pub struct DoctorReport {
    pub probe: Probe,
    pub home: PathBuf,
    pub file: PathBuf,
    pub file_exists: bool,
    /// Unix permission bits of the secrets file.
    pub file_mode: Option<u32>,
    pub new_logins: StoreKind,
    /// `SFX_CREDENTIAL_STORE=file` chose the file for new logins.
    pub forced_by_env: bool,
    /// (alias, store) of every stored org.
    pub orgs: Vec<(String, StoreKind)>,
    /// Credentials come from the environment: no store is used.
    pub environment: bool,
    /// The shared store, when `--store` / `SFX_STORE` names one (issue #13).
    pub shared: Option<SharedCheck>,
    /// Why the local store under the home is not trusted (issue #24): not the
    /// user's own, or open to others. sfx refuses to use it until fixed.
    pub home_problems: Vec<String>,
    /// The home (or, when it is not there yet, the directory it would be made
    /// in) is on a read-only file system: a valid token is still given, but a
    /// refresh or a new login cannot be stored (exit 6).
    pub home_read_only: bool,
}

/// What `doctor` learned about the shared store.
pub struct SharedCheck {
    pub store: String,
    pub namespace: String,
    /// The probe, or why the store could not be used.
    pub result: Result<shared::Probe, String>,
}

impl SharedCheck {
    fn key_word(k: KeyState) -> &'static str {
        match k {
            KeyState::Works => "works",
            KeyState::Unused => "unused",
            KeyState::Missing => "missing",
            KeyState::Malformed => "malformed",
            KeyState::Wrong => "wrong",
        }
    }

    /// Usable: reachable, and the key opens the store's secrets (or none are sealed yet).
    fn ok(&self) -> bool {
        matches!(&self.result, Ok(p) if matches!(p.key, KeyState::Works | KeyState::Unused))
    }

    fn human(&self, style: &Style) -> Vec<String> {
        let mut lines = vec![format!(
            "Shared store:  {} (keys under `{}:`)",
            self.store, self.namespace
        )];
        match &self.result {
            Err(why) => lines.push(format!(
                "  status:      {}: {why}",
                paint("not usable", comfy_table::Color::Red, style)
            )),
            Ok(p) => {
                let cluster = match p.cluster_nodes {
                    Some(0) => ", cluster".to_string(),
                    Some(n) => format!(", cluster, {n} node{}", if n == 1 { "" } else { "s" }),
                    None => String::new(),
                };
                lines.push(format!(
                    "  status:      {}, {} {}{cluster}, round trip {:.2} ms, {} org{}",
                    paint("reachable", comfy_table::Color::Green, style),
                    p.server,
                    p.version,
                    p.round_trip.as_secs_f64() * 1000.0,
                    p.orgs,
                    if p.orgs == 1 { "" } else { "s" }
                ));
                let key = match p.key {
                    KeyState::Works => paint(
                        "SFX_STORE_KEY works (it opens the store's secrets)",
                        comfy_table::Color::Green,
                        style,
                    ),
                    KeyState::Unused if p.key_kind == Some(shared::KeyKind::Reader) => "SFX_STORE_KEY is a reader key; no refresher has written this store's reader check yet (a refresher's next login or refresh does)".to_string(),
                    KeyState::Unused => "SFX_STORE_KEY is set; nothing is encrypted in this store yet, so the first login sets the store's key".to_string(),
                    KeyState::Missing => paint(
                        "SFX_STORE_KEY is not set: secrets cannot be read or written (`head -c32 /dev/urandom | base64` makes one; every machine needs the same)",
                        comfy_table::Color::Red,
                        style,
                    ),
                    KeyState::Malformed => paint(
                        "SFX_STORE_KEY is not 32 bytes in base64",
                        comfy_table::Color::Red,
                        style,
                    ),
                    KeyState::Wrong => paint(
                        "SFX_STORE_KEY is not the key this store's secrets were encrypted with",
                        comfy_table::Color::Red,
                        style,
                    ),
                };
                lines.push(format!("  key:         {key}"));
                if let Some(kind) = p.key_kind {
                    lines.push(format!(
                        "  key kind:    {}",
                        match kind {
                            shared::KeyKind::Refresher => "refresher (opens every secret; refreshes; `sfx store reader-key` prints its reader key)",
                            shared::KeyKind::Reader => "reader (opens access tokens only; never refreshes: a `sfx watch` with the refresher key serves it)",
                        }
                    ));
                }
            }
        }
        lines
    }

    fn json(&self) -> Value {
        match &self.result {
            Ok(p) => json!({
                "store": self.store,
                "namespace": self.namespace,
                "reachable": true,
                "server": p.server,
                "version": p.version,
                "round_trip_ms": p.round_trip.as_secs_f64() * 1000.0,
                "cluster_nodes": p.cluster_nodes,
                "orgs": p.orgs,
                "key": Self::key_word(p.key),
                "key_kind": p.key_kind.map(shared::KeyKind::as_str),
                "message": Value::Null,
            }),
            Err(why) => json!({
                "store": self.store,
                "namespace": self.namespace,
                "reachable": false,
                "server": Value::Null,
                "version": Value::Null,
                "round_trip_ms": Value::Null,
                "cluster_nodes": Value::Null,
                "orgs": Value::Null,
                "key": Value::Null,
                "key_kind": Value::Null,
                "message": why,
            }),
        }
    }
}

impl DoctorReport {
    /// The keychain is needed: an org lives there, or new logins would go there.
    pub fn needs_keychain(&self) -> bool {
        !self.environment
            && (self.new_logins == StoreKind::Keychain
                || self.orgs.iter().any(|(_, s)| *s == StoreKind::Keychain))
    }

    fn advice(&self, t: &Trouble) -> Vec<String> {
        let mut out = Vec::new();
        match t {
            Trouble::NoSession => out.push(
                "On a desktop, run sfx inside your graphical session (over SSH, the session's D-Bus is not reachable). On a server, start a private keyring: `dbus-run-session -- sh -c 'printf %s \"$KEYRING_PASSWORD\" | gnome-keyring-daemon --unlock --components=secrets >/dev/null; exec sfx …'`.".to_string(),
            ),
            Trouble::NoProvider => out.push(
                "Install and start a Secret Service provider, e.g. GNOME Keyring (`apt install gnome-keyring`; `gnome-keyring-daemon --unlock --components=secrets` reads the keyring password on stdin).".to_string(),
            ),
            Trouble::Locked | Trouble::NoAnswer => out.push(if cfg!(target_os = "macos") {
                "Unlock the login keychain (Keychain Access, or `security unlock-keychain`), then run `sfx doctor` again.".to_string()
            } else {
                "Unlock the keyring from your desktop session; on a headless host, GNOME Keyring unlocks with `gnome-keyring-daemon --replace --unlock --components=secrets` (password on stdin).".to_string()
            }),
            Trouble::Other(_) => {}
        }
        out.push("Or keep secrets in a 0600 file: `sfx login --insecure-storage …` (or SFX_CREDENTIAL_STORE=file).".to_string());
        out.push("Or, in CI, give the credentials through the environment: SFX_AUTH_URL, SFX_REFRESH_TOKEN or SFX_ACCESS_TOKEN (nothing is stored).".to_string());
        out
    }
}

impl Report for DoctorReport {
    fn human(&self, style: &Style) -> String {
        let mut lines = vec![format!("OS keychain:   {}", keychain::backend_name())];
        match &self.probe.result {
            Ok(()) => lines.push(format!(
                "  status:      {} (a test entry was written, read back and deleted in {} ms)",
                paint("works", comfy_table::Color::Green, style),
                self.probe.elapsed.as_millis()
            )),
            Err(t) => {
                lines.push(format!(
                    "  status:      {}: {}",
                    paint("not usable", comfy_table::Color::Red, style),
                    t.sentence()
                ));
                lines.push("  what to do:".to_string());
                for a in self.advice(t) {
                    lines.push(format!("    - {a}"));
                }
            }
        }
        lines.push(format!(
            "Secrets file:  {} ({})",
            self.file.display(),
            match self.file_mode {
                Some(m) => format!("exists, mode {m:04o}"),
                None if self.file_exists => "exists".to_string(),
                None => "not created".to_string(),
            }
        ));
        lines.push(format!(
            "New logins:    {}{}",
            describe(self.new_logins, &self.file),
            if self.forced_by_env {
                " (SFX_CREDENTIAL_STORE=file)"
            } else if self.new_logins == StoreKind::Keychain {
                " (`--insecure-storage` chooses the file)"
            } else {
                ""
            }
        ));
        if let Some(sh) = &self.shared {
            lines.extend(sh.human(style));
        }
        if !self.home_problems.is_empty() {
            lines.push(format!(
                "Home:          {} {}",
                self.home.display(),
                paint(
                    "not trusted: sfx refuses to use it",
                    comfy_table::Color::Red,
                    style
                )
            ));
            for p in &self.home_problems {
                lines.push(format!("  - {p}"));
            }
        }
        if self.home_read_only {
            lines.push(format!(
                "Home:          {} {}",
                self.home.display(),
                paint(
                    "is on a read-only file system: a valid token is still given, but a refresh or a new login is refused (exit 6)",
                    comfy_table::Color::Red,
                    style
                )
            ));
        }
        if self.environment {
            lines.push("Environment:   SFX_AUTH_URL, SFX_REFRESH_TOKEN or SFX_ACCESS_TOKEN is set: commands use it and read or write no store".to_string());
        }
        if self.orgs.is_empty() {
            lines.push(format!(
                "Orgs:          none stored (under {})",
                self.home.display()
            ));
        } else {
            lines.push(format!("Orgs:          (under {})", self.home.display()));
            for (alias, store) in &self.orgs {
                lines.push(format!(
                    "  {alias}: secrets in {}",
                    describe(*store, &self.file)
                ));
            }
        }
        if self.probe.result.is_ok() && self.new_logins == StoreKind::Keychain {
            for (alias, store) in &self.orgs {
                if *store == StoreKind::File {
                    lines.push(format!(
                        "Tip: `sfx login --migrate -o {alias}` moves the secrets of {alias} into the keychain and deletes the file copies."
                    ));
                }
            }
        }
        lines.join("\n")
    }

    /// `{"keychain":{"backend","name","status","works","message","elapsed_ms"},
    /// "file":{"path","exists","mode"},"new_logins","orgs":[{"org","store"}],
    /// "environment","needs_keychain"}`; `status` is
    /// `ok|no_dbus_session|no_provider|locked|no_answer|error`.
    fn json(&self) -> Value {
        let (status, message) = match &self.probe.result {
            Ok(()) => ("ok", Value::Null),
            Err(t) => (t.code(), json!(t.sentence())),
        };
        json!({
            "keychain": {
                "backend": keychain::backend_id(),
                "name": keychain::backend_name(),
                "status": status,
                "works": self.probe.result.is_ok(),
                "message": message,
                "elapsed_ms": self.probe.elapsed.as_millis() as u64,
            },
            "file": {
                "path": self.file.display().to_string(),
                "exists": self.file_exists,
                "mode": self.file_mode.map(|m| format!("{m:04o}")),
            },
            "new_logins": self.new_logins.as_str(),
            "orgs": self.orgs.iter().map(|(a, s)| json!({"org": a, "store": s.as_str()})).collect::<Vec<_>>(),
            "environment": self.environment,
            "needs_keychain": self.needs_keychain(),
            "shared": self.shared.as_ref().map(SharedCheck::json),
            "home": {
                "path": self.home.display().to_string(),
                "trusted": self.home_problems.is_empty(),
                "problems": self.home_problems,
                "writable": !self.home_read_only,
            },
        })
    }

    fn exit(&self) -> Exit {
        if (self.probe.result.is_err() && self.needs_keychain())
            || (!self.environment && self.shared.as_ref().is_some_and(|s| !s.ok()))
            || (!self.environment && self.shared.is_none() && !self.home_problems.is_empty())
            || (!self.environment && self.shared.is_none() && self.home_read_only)
        {
            Exit::StoreUnavailable
        } else {
            Exit::Ok
        }
    }

    fn notes(&self) -> Vec<String> {
        let mut notes = match &self.probe.result {
            Err(t) if self.needs_keychain() => vec![format!(
                "error: the OS keychain is not usable: {}",
                t.sentence()
            )],
            _ => Vec::new(),
        };
        if !self.environment && self.shared.is_none() && !self.home_problems.is_empty() {
            notes.push(format!(
                "error: sfx does not use the store under {}: it is not yours and private ({})",
                self.home.display(),
                self.home_problems.join("; ")
            ));
        }
        if !self.environment && self.shared.is_none() && self.home_read_only {
            notes.push(format!(
                "error: the sfx home {} is on a read-only file system: sfx cannot refresh a token or store a login there; give sfx a writable home (SFX_HOME), or make this one writable",
                self.home.display()
            ));
        }
        if let Some(sh) = self
            .shared
            .as_ref()
            .filter(|s| !s.ok() && !self.environment)
        {
            notes.push(match &sh.result {
                Err(why) => format!("error: {why}"),
                Ok(p) => format!(
                    "error: the shared store at {}: SFX_STORE_KEY {}",
                    sh.store,
                    SharedCheck::key_word(p.key)
                ),
            });
        }
        notes
    }
}

pub fn run(_args: &DoctorArgs, ctx: &Context) -> Result<DoctorReport, Error> {
    // doctor is about the backends: it names them.
    let backends = ctx.backends();
    let file = backends.local.home.join(file::FILE_NAME);
    let shared = backends.shared.map(|s| SharedCheck {
        store: s.display(),
        namespace: s.namespace().to_string(),
        result: s.probe().map_err(|e| e.to_string()),
    });
    let home_problems = crate::store::local::trust_problems(&backends.local.home);
    // The orgs of the store in use (a shared store that cannot be listed: none;
    // one that failed its probe is not asked again, so --timeout bounds doctor
    // as it bounds every other command; a home that is not trusted is not read).
    let probe_failed = shared.as_ref().is_some_and(|s| s.result.is_err());
    let orgs = match backends.shared {
        Some(_) if probe_failed => Vec::new(),
        None if !home_problems.is_empty() => Vec::new(),
        Some(s) => crate::store::OrgStore::list(s)
            .map(|l| l.orgs)
            .unwrap_or_default()
            .into_iter()
            .map(|o| (o.record.alias, o.record.store))
            .collect(),
        None => backends
            .local
            .read()?
            .orgs
            .values()
            .map(|r| (r.alias.clone(), r.store))
            .collect(),
    };
    Ok(DoctorReport {
        probe: keychain::probe(),
        home: backends.local.home.clone(),
        file_exists: file.is_file(),
        file_mode: file_mode(&file),
        file,
        new_logins: ctx.store_for_new_login(false),
        forced_by_env: ctx.file_store_forced,
        orgs,
        environment: ctx.env_org.is_some(),
        shared,
        home_problems,
        home_read_only: read_only(&backends.local.home),
    })
}

/// Is `dir` (or the nearest directory above it that exists) on a read-only
/// file system? Asked of the file system (`statvfs`), with nothing written.
#[cfg(unix)]
fn read_only(dir: &std::path::Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let Some(there) = dir.ancestors().find(|p| p.exists()) else {
        return false;
    };
    let Ok(c) = std::ffi::CString::new(there.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: a valid C string and a zeroed out-parameter that statvfs fills.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    (unsafe { libc::statvfs(c.as_ptr(), &mut st) }) == 0 && st.f_flag & libc::ST_RDONLY != 0
}

#[cfg(not(unix))]
fn read_only(_dir: &std::path::Path) -> bool {
    false
}

#[cfg(unix)]
fn file_mode(p: &std::path::Path) -> Option<u32> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p)
        .ok()
        .map(|m| m.permissions().mode() & 0o777)
}

#[cfg(not(unix))]
fn file_mode(_p: &std::path::Path) -> Option<u32> {
    None
}
