//! `sfx introspect`: the introspection endpoint's answer about the access (or
//! refresh) token, every field shown, times as local, UTC and relative. One request.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};

use crate::cli::IntrospectArgs;
use crate::context::Context;
use crate::error::Error;
use crate::exit::Exit;
use crate::output::{Report, Style};
use crate::salesforce::{ClientCreds, Introspected};
use crate::store::SecretKind;
use crate::text::sanitize;
use crate::timefmt;

/// JSON: the endpoint's object as received, plus `exp_at`, `iat_at`, `nbf_at`
/// (RFC 3339) where the numeric field exists.
pub struct IntrospectReport {
    pub answer: Map<String, Value>,
    pub now: DateTime<Utc>,
    pub org: String,
    pub which: &'static str,
    /// The introspected token, masked (`00D5g…Q9f2`): human output names it
    /// (contract, "Masked tokens").
    pub masked: String,
}

impl Report for IntrospectReport {
    fn human(&self, style: &Style) -> String {
        let mut t = crate::output::table(&["FIELD", "VALUE"], style);
        for (k, v) in &self.answer {
            let text = match v {
                Value::String(s) => sanitize(s, 300),
                other => sanitize(&other.to_string(), 300),
            };
            let text = if matches!(k.as_str(), "exp" | "iat" | "nbf") {
                match timefmt::parse_epoch_value(v) {
                    Some(at) => format!(
                        "{} · {} · {}",
                        timefmt::local(at),
                        timefmt::rfc3339(at),
                        timefmt::relative(at, self.now)
                    ),
                    None => text,
                }
            } else {
                text
            };
            t.add_row(vec![sanitize(k, 60), text]);
        }
        format!(
            "{} token {} of {}:\n{}",
            self.which,
            sanitize(&self.masked, 20),
            self.org,
            crate::output::table::trimmed(&t)
        )
    }

    fn json(&self) -> Value {
        let mut v = self.answer.clone();
        for (field, key) in [("exp", "exp_at"), ("iat", "iat_at"), ("nbf", "nbf_at")] {
            if let Some(at) = v.get(field).and_then(timefmt::parse_epoch_value) {
                v.insert(key.to_string(), json!(timefmt::rfc3339(at)));
            }
        }
        Value::Object(v)
    }

    fn exit(&self) -> Exit {
        if self.answer.get("active").and_then(Value::as_bool) == Some(true) {
            Exit::Ok
        } else {
            Exit::Expired
        }
    }

    fn notes(&self) -> Vec<String> {
        if self.exit() == Exit::Expired {
            vec!["note: inactive — the token is expired or revoked, or belongs to another connected app (introspection answers inactive for those too; `sfx expires` tells them apart)".into()]
        } else {
            vec![]
        }
    }
}

pub fn run(args: &IntrospectArgs, ctx: &Context) -> Result<IntrospectReport, Error> {
    let org = ctx.org()?;
    let (kind, which, hint) = if args.refresh {
        (SecretKind::RefreshToken, "refresh", "refresh_token")
    } else {
        (SecretKind::AccessToken, "access", "access_token")
    };
    let Some(client_id) = org.record.client_id.clone() else {
        return Err(Error::Other(format!(
            "introspection needs the connected app's client id, and org {} has none (it was imported from an access token alone); set SFX_CLIENT_ID, or import it with --client-id",
            org.name()
        )));
    };
    let Some(token) = ctx.secret(&org, kind)? else {
        return Err(if args.refresh {
            Error::relogin(
                format!("org {} has no refresh token to introspect", org.name()),
                crate::lifecycle::relogin_hint(&org),
            )
        } else {
            Error::Expired(format!(
                "org {} has no access token yet; `sfx refresh` or `sfx token` mints one",
                org.name()
            ))
        });
    };
    let secret = ctx.secret(&org, SecretKind::ClientSecret)?;
    let creds = ClientCreds {
        id: &client_id,
        secret: secret.as_ref(),
    };
    let answer = match ctx
        .client()
        .introspect(&org.record.instance_url, &token, hint, creds)?
    {
        Introspected::Answer(map) => map,
        Introspected::ClientRejected(why) => {
            return Err(Error::Server {
                message: format!("the introspection endpoint rejected the client credentials of org {}: {why}", org.name()),
                hint: Some("if the connected app has a consumer secret, log in again with it (SFX_CLIENT_SECRET or --client-secret-stdin)".into()),
            });
        }
    };
    let now = ctx.now();
    if !args.refresh
        && let (Some(true), Some(exp)) = (
            answer.get("active").and_then(Value::as_bool),
            answer.get("exp").and_then(timefmt::parse_epoch_value),
        )
    {
        let e = crate::lifecycle::Expiry {
            active: true,
            exp: Some(exp),
            iat: answer.get("iat").and_then(timefmt::parse_epoch_value),
            source: crate::lifecycle::Source::Introspection,
            checked_at: Some(now),
            note: None,
        };
        crate::lifecycle::expiry::remember(ctx.orgs(), &[(&org, &token, &e)]);
    }
    Ok(IntrospectReport {
        answer,
        now,
        org: org.name().to_string(),
        which,
        masked: token.mask(),
    })
}
