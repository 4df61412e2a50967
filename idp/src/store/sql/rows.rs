//! Rows as every SQL store keeps them: a JSON document in a `data` column,
//! its secret fields sealed as the store's [`Sealing`] says, with the row's
//! key columns as the sealing's associated data. Written once for the
//! SQLite stores ([`super::SqlStore`]) and PostgreSQL
//! (`native::PostgresStore`), so both seal and open exactly alike.

use super::values::{decode, from_doc, SqlValue};
use crate::authorize::PendingFlow;
use crate::error::{Error, Result, StorageCause, StorageError};
use crate::registration::Registration;
use crate::store::seal::{RowId, Seal, Sealing};
use crate::store::Provider;
use serde::Serialize;
use serde_json::Value;

/// The secret fields of each table's rows.
pub(crate) const PROVIDER_SECRETS: &[&str] = &[
    "/grant/tokens",
    "/grant/client/client_secret",
    "/grant/kind/assertion",
    "/grant/kind/id_token",
    "/grant/kind/idp/client/client_secret",
];
pub(crate) const FLOW_SECRETS: &[&str] = &[
    "/verifier",
    "/client/client_secret",
    "/dpop",
    "/device/device_code",
];
pub(crate) const REGISTRATION_SECRETS: &[&str] =
    &["/client/client_secret", "/management/access_token"];

/// The tables whose rows hold secrets: name, key columns, secret fields.
pub(crate) const SEALED_TABLES: [(&str, &[&str], &[&str]); 3] = [
    ("idp_providers", &["owner", "key"], PROVIDER_SECRETS),
    ("idp_flows", &["state"], FLOW_SECRETS),
    (
        "idp_registrations",
        &["issuer", "redirect_uri"],
        REGISTRATION_SECRETS,
    ),
];

/// A row's identity, the associated data of its sealed fields.
pub(crate) fn row_id(table: &str, keys: &[&str]) -> RowId {
    RowId::new(table, keys)
}

/// A row's `data`, its secret fields sealed.
pub(crate) fn encode(
    sealing: &Sealing,
    value: &impl Serialize,
    id: &RowId,
    paths: &[&str],
) -> Result<String> {
    let mut doc = serde_json::to_value(value).map_err(|e| {
        StorageError::with_source(StorageCause::Corrupt, "could not encode a row", e)
    })?;
    sealing.seal(&mut doc, id, paths)?;
    Ok(doc.to_string())
}

/// A row's document with its sealed fields opened (those that cannot be
/// opened are null), and why any could not.
pub(crate) fn open(
    sealing: &Sealing,
    data: &SqlValue,
    id: &RowId,
    paths: &[&str],
) -> Result<(Value, Option<String>)> {
    let mut doc: Value = decode(data)?;
    let failed = sealing.open(&mut doc, id, paths);
    Ok((doc, failed))
}

/// A provider row; a grant whose secrets cannot be opened reads as having no
/// tokens, saying why.
pub(crate) fn provider(
    sealing: &Sealing,
    owner: &str,
    key: &str,
    data: &SqlValue,
) -> Result<Provider> {
    let id = row_id("idp_providers", &[owner, key]);
    let (doc, failed) = open(sealing, data, &id, PROVIDER_SECRETS)?;
    let mut p: Provider = from_doc(doc)?;
    if let (Some(reason), Some(g)) = (failed, p.grant.as_mut()) {
        g.tokens = None;
        g.unreadable = Some(reason);
    }
    Ok(p)
}

/// A flow row; one whose secrets cannot be opened is an error (the login
/// must start again).
pub(crate) fn flow(sealing: &Sealing, state: &str, data: &SqlValue) -> Result<PendingFlow> {
    let (doc, failed) = open(sealing, data, &row_id("idp_flows", &[state]), FLOW_SECRETS)?;
    if let Some(reason) = failed {
        return Err(Error::storage(
            StorageCause::NoKey,
            format!(
                "this authorization's stored secrets cannot be decrypted: {reason}; start it again"
            ),
        ));
    }
    from_doc(doc)
}

/// A registration row; one whose client secret cannot be read is none (the
/// client is registered again).
pub(crate) fn registration(
    sealing: &Sealing,
    issuer: &str,
    redirect_uri: &str,
    data: &SqlValue,
) -> Result<Option<Registration>> {
    let id = row_id("idp_registrations", &[issuer, redirect_uri]);
    match open(sealing, data, &id, REGISTRATION_SECRETS)? {
        (_, Some(_)) => Ok(None),
        (doc, None) => from_doc(doc).map(Some),
    }
}

/// A row sealed again under the current key, when its secrets are in plain
/// text or under an older key and can be opened; `None` when it is current
/// or cannot be opened.
pub(crate) fn resealed(
    sealing: &Sealing,
    data: &SqlValue,
    id: &RowId,
    paths: &[&str],
) -> Result<Option<String>> {
    let (mut doc, failed) = open(sealing, data, id, paths)?;
    let stale = decode::<Value>(data).is_ok_and(|d| sealing.status(&d, paths) == Seal::Stale);
    if failed.is_some() || !stale {
        return Ok(None);
    }
    sealing.seal(&mut doc, id, paths)?;
    Ok(Some(doc.to_string()))
}
