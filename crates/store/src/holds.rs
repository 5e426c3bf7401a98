//! Legal holds: an object that something depends on byte for byte (the artifact of a
//! registered model version) is held, and a held object can be neither overwritten nor
//! deleted. Holds are placed inside the caller's transaction, after checking that the object
//! is exactly the one the caller recorded, so the two cannot drift apart.

use nimbus_core::clock;
use nimbus_meta::sqlx::{self, Any, Executor, Row, Transaction};

use crate::StoreError;

/// The first holder of an object, if it has any.
pub async fn holder<'e, E>(executor: E, bucket: &str, key: &str) -> Result<Option<String>, sqlx::Error>
where
    E: Executor<'e, Database = Any>,
{
    let row =
        sqlx::query("SELECT holder FROM object_holds WHERE bucket = $1 AND object_key = $2 ORDER BY holder LIMIT 1")
            .bind(bucket)
            .bind(key)
            .fetch_optional(executor)
            .await?;
    row.map(|r| r.try_get("holder")).transpose()
}

/// Places a hold by `holder` on `bucket/key`, which must exist and hash to `sha256`; part of
/// the caller's transaction. `for_update` is [`nimbus_meta::Db::for_update`].
pub async fn hold(
    tx: &mut Transaction<'static, Any>,
    for_update: &str,
    bucket: &str,
    key: &str,
    sha256: &str,
    holder: &str,
) -> Result<(), StoreError> {
    let found: Option<String> =
        sqlx::query(&format!("SELECT sha256 FROM objects WHERE bucket = $1 AND object_key = $2{for_update}"))
            .bind(bucket)
            .bind(key)
            .fetch_optional(&mut **tx)
            .await?
            .map(|r| r.try_get("sha256"))
            .transpose()?;
    match found {
        None => return Err(StoreError::NoSuchKey { bucket: bucket.to_string(), key: key.to_string() }),
        Some(found) if found != sha256 => {
            let (bucket, key, expected) = (bucket.to_string(), key.to_string(), sha256.to_string());
            return Err(StoreError::Changed { bucket, key, expected, found });
        }
        Some(_) => {}
    }
    sqlx::query(
        "INSERT INTO object_holds (bucket, object_key, holder, created_ms) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (bucket, object_key, holder) DO NOTHING",
    )
    .bind(bucket)
    .bind(key)
    .bind(holder)
    .bind(clock::now_ms())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use crate::StoreError;
    use crate::tests::store;

    #[tokio::test]
    async fn a_held_object_cannot_change_until_nothing_holds_it() {
        let (_dir, s) = store().await;
        s.create_bucket("models").await.unwrap();
        let info = s.put("models", "m.json", Bytes::from_static(b"v1"), "application/json").await.unwrap();
        let mut tx = s.db().write().await.unwrap();
        let e = super::hold(&mut tx.tx, "", "models", "m.json", &"0".repeat(64), "x").await.unwrap_err();
        assert!(matches!(e, StoreError::Changed { .. }), "{e}");
        super::hold(&mut tx.tx, "", "models", "m.json", &info.sha256, "model group g version 1").await.unwrap();
        tx.commit().await.unwrap();

        let e = s.put("models", "m.json", Bytes::from_static(b"v2"), "application/json").await.unwrap_err();
        assert_eq!(
            e.to_string(),
            "object s3://models/m.json is the artifact of model group g version 1 and cannot be overwritten or \
             deleted; write to a new key instead"
        );
        assert!(matches!(s.delete("models", "m.json").await, Err(StoreError::Held { .. })));
        assert_eq!(s.get("models", "m.json").await.unwrap().1, Bytes::from_static(b"v1"));
        s.put("models", "other.json", Bytes::from_static(b"v2"), "application/json").await.unwrap();
    }
}
