//! `sfx store reader-key`: the reader key of the refresher key in `SFX_STORE_KEY`
//! (issue #20). Needs no store and no network: the key is derived on the machine.

use serde_json::{Value, json};

use crate::cli::{StoreArgs, StoreCommand};
use crate::context::Context;
use crate::error::Error;
use crate::output::{Report, Style};
use crate::secret::Secret;
use crate::store::keys::{KEY_VAR, KeyKind, Keys};

pub struct ReaderKeyReport {
    pub reader_key: Secret,
}

impl Report for ReaderKeyReport {
    fn human(&self, _style: &Style) -> String {
        self.reader_key.expose().to_string()
    }

    /// `{"reader_key"}`.
    fn json(&self) -> Value {
        json!({ "reader_key": self.reader_key.expose() })
    }
}

pub fn run(args: &StoreArgs, _ctx: &Context) -> Result<ReaderKeyReport, Error> {
    match &args.command {
        StoreCommand::ReaderKey(_) => reader_key(&std::env::var(KEY_VAR).unwrap_or_default()),
    }
}

/// The reader key of a refresher key; exit 2 for anything else.
pub fn reader_key(value: &str) -> Result<ReaderKeyReport, Error> {
    if value.trim().is_empty() {
        return Err(Error::usage(format!(
            "`sfx store reader-key` prints the reader key of the refresher key in {KEY_VAR}, which is not set"
        )));
    }
    let keys = Keys::from_text(value).map_err(|e| Error::usage(e.to_string()))?;
    if keys.kind == KeyKind::Reader {
        return Err(Error::usage(format!(
            "{KEY_VAR} already holds a reader key; `sfx store reader-key` needs the refresher key it belongs to (a reader key never yields another key)"
        )));
    }
    Ok(ReaderKeyReport {
        reader_key: Secret::new(keys.reader_key.clone()),
    })
}
