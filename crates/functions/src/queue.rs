//! Asynchronous invocations (`X-Amz-Invocation-Type: Event`): the event is written to the
//! metadata database before the caller gets its 202, so it survives a restart, and runs in the
//! background.
//!
//! Each server runs one worker that takes due events with a lease (its instance id and a time
//! past the function's timeout), so servers sharing a database never run one event twice at
//! once, and a server that died leaves its events to the others when the lease ends (its own
//! are released at its next start). As Lambda does, a failed attempt (a function error or a
//! timeout) is retried `async_retries` times (default 2) with a growing delay
//! (`async_retry_delay_s`, then twice that); a throttled attempt waits and is not counted.
//! What still fails is kept with its error (`nimbus functions failures NAME`). The queue is
//! bounded: past [`MAX_QUEUED`] waiting events of one function the caller gets 429.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use nimbus_core::clock;
use nimbus_meta::sqlx::{self, Row};
use serde::Serialize;

use crate::function::{Call, InvokeError};
use crate::{Functions, FunctionsError};

/// Largest event payload, as Lambda's asynchronous invocations allow.
pub const MAX_EVENT_BYTES: usize = 256 * 1024;

/// Most events one function may have waiting; more are refused with 429.
pub const MAX_QUEUED: i64 = 1000;

/// Events run at once by one server, across functions.
const PARALLEL: usize = 16;

/// How often the worker looks for due events when nothing woke it.
const POLL: Duration = Duration::from_millis(250);

/// How long to wait before trying a throttled event again.
const THROTTLED_DELAY_MS: i64 = 1000;

/// Why an event was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// The function has [`MAX_QUEUED`] events waiting.
    #[error("Rate Exceeded: function {0} has {MAX_QUEUED} asynchronous events waiting; retry later")]
    Full(String),
    /// The payload is larger than [`MAX_EVENT_BYTES`].
    #[error("{0}")]
    TooLarge(String),
    /// The payload is not text.
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Meta(#[from] nimbus_meta::MetaError),
}

impl From<sqlx::Error> for QueueError {
    fn from(e: sqlx::Error) -> Self {
        QueueError::Meta(e.into())
    }
}

/// An event that used up its attempts.
#[derive(Clone, Debug, Serialize)]
pub struct FailedEvent {
    pub id: String,
    pub qualifier: String,
    pub attempts: i64,
    /// The last attempt's error document (`{"errorMessage", "errorType"}`).
    pub error: serde_json::Value,
    /// The request id of the last attempt (its START … REPORT lines in the function's log).
    pub request_id: Option<String>,
    /// The event as it was sent.
    pub payload: String,
    pub created: String,
    pub failed: String,
}

/// One claimed event.
struct Claimed {
    id: String,
    function: String,
    /// `$LATEST`, a version or an alias: resolved at each attempt, so an alias's weights
    /// apply per attempt.
    qualifier: String,
    payload: String,
    attempts: i64,
}

impl Functions {
    /// Accepts an event for `function` (already known to exist): written before this returns.
    pub async fn enqueue(&self, function: &str, qualifier: &str, payload: &[u8]) -> Result<String, QueueError> {
        if payload.len() > MAX_EVENT_BYTES {
            return Err(QueueError::TooLarge(format!(
                "the event is {} bytes; asynchronous invocations take at most {MAX_EVENT_BYTES} bytes",
                payload.len()
            )));
        }
        let text = std::str::from_utf8(payload)
            .map_err(|_| QueueError::Invalid("the event must be UTF-8 JSON text".into()))?;
        let db = &self.inner.db;
        let mut tx = db.write().await?;
        let waiting: i64 =
            sqlx::query("SELECT COUNT(*) AS n FROM function_events WHERE function_name = $1 AND status = 'queued'")
                .bind(function)
                .fetch_one(&mut *tx.tx)
                .await?
                .try_get("n")?;
        if waiting >= MAX_QUEUED {
            return Err(QueueError::Full(function.to_string()));
        }
        let id = nimbus_core::new_id();
        let now = clock::now_ms();
        sqlx::query(
            "INSERT INTO function_events (id, function_name, qualifier, payload, status, attempts, due_ms, owner, \
             lease_until_ms, last_error, last_request_id, created_ms, updated_ms) \
             VALUES ($1, $2, $3, $4, 'queued', 0, $5, NULL, 0, NULL, NULL, $5, $5)",
        )
        .bind(&id)
        .bind(function)
        .bind(qualifier)
        .bind(text)
        .bind(now)
        .execute(&mut *tx.tx)
        .await?;
        tx.commit().await?;
        self.inner.queue_wake.notify_one();
        Ok(id)
    }

    /// The events of `function` that used up their attempts, newest first.
    pub async fn failures(&self, function: &str, limit: i64) -> Result<Vec<FailedEvent>, FunctionsError> {
        let rows = sqlx::query(
            "SELECT id, qualifier, attempts, last_error, last_request_id, payload, created_ms, updated_ms \
             FROM function_events WHERE function_name = $1 AND status = 'failed' ORDER BY updated_ms DESC LIMIT $2",
        )
        .bind(function)
        .bind(limit)
        .fetch_all(self.inner.db.pool())
        .await
        .map_err(nimbus_meta::MetaError::from)?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let get = |c: &str| r.try_get::<String, _>(c).map_err(nimbus_meta::MetaError::from);
            let error: Option<String> = r.try_get("last_error").map_err(nimbus_meta::MetaError::from)?;
            out.push(FailedEvent {
                id: get("id")?,
                qualifier: get("qualifier")?,
                attempts: r.try_get("attempts").map_err(nimbus_meta::MetaError::from)?,
                error: error.and_then(|e| serde_json::from_str(&e).ok()).unwrap_or(serde_json::Value::Null),
                request_id: r.try_get("last_request_id").map_err(nimbus_meta::MetaError::from)?,
                payload: get("payload")?,
                created: clock::rfc3339(r.try_get("created_ms").map_err(nimbus_meta::MetaError::from)?),
                failed: clock::rfc3339(r.try_get("updated_ms").map_err(nimbus_meta::MetaError::from)?),
            });
        }
        Ok(out)
    }

    /// Events of `function` waiting to run (or running).
    pub async fn queued(&self, function: &str) -> Result<i64, FunctionsError> {
        let n: i64 =
            sqlx::query("SELECT COUNT(*) AS n FROM function_events WHERE function_name = $1 AND status = 'queued'")
                .bind(function)
                .fetch_one(self.inner.db.pool())
                .await
                .and_then(|r| r.try_get("n"))
                .map_err(nimbus_meta::MetaError::from)?;
        Ok(n)
    }

    /// Starts this server's worker; `owner` is the server's instance id. Events this instance
    /// held before a restart are released first: nothing of this instance runs them now.
    pub async fn start_queue(&self, owner: String) -> Result<(), FunctionsError> {
        let released = self
            .inner
            .db
            .write_one(
                sqlx::query(
                    "UPDATE function_events SET owner = NULL, lease_until_ms = 0 WHERE owner = $1 AND status = 'queued'",
                )
                .bind(owner.clone()),
            )
            .await?;
        if released > 0 {
            tracing::info!(
                events = released,
                "asynchronous events of the previous run of this server are queued again"
            );
        }
        let weak = Arc::downgrade(&self.inner);
        let slots = Arc::new(tokio::sync::Semaphore::new(PARALLEL));
        tokio::spawn(async move {
            loop {
                let Some(inner) = weak.upgrade() else { return };
                let functions = Functions { inner };
                let wake = functions.inner.clone();
                match functions.claim(&owner, slots.available_permits()).await {
                    Ok(claimed) => {
                        for event in claimed {
                            let Ok(permit) = slots.clone().try_acquire_owned() else { break };
                            let f = functions.clone();
                            tokio::spawn(async move {
                                let _permit = permit;
                                f.run_event(event).await;
                            });
                        }
                    }
                    Err(e) => tracing::warn!("cannot read the asynchronous event queue: {e}"),
                }
                drop(functions);
                tokio::select! {
                    _ = wake.queue_wake.notified() => {}
                    _ = tokio::time::sleep(POLL) => {}
                }
            }
        });
        Ok(())
    }

    /// Takes up to `room` due events with a lease.
    async fn claim(&self, owner: &str, room: usize) -> Result<Vec<Claimed>, QueueError> {
        if room == 0 {
            return Ok(Vec::new());
        }
        let now = clock::now_ms();
        let rows = sqlx::query(
            "SELECT id, function_name, qualifier, payload, attempts FROM function_events \
             WHERE status = 'queued' AND due_ms <= $1 AND lease_until_ms < $1 ORDER BY due_ms LIMIT $2",
        )
        .bind(now)
        .bind(room as i64)
        .fetch_all(self.inner.db.pool())
        .await?;
        let mut claimed = Vec::new();
        for r in rows {
            let event = Claimed {
                id: r.try_get("id")?,
                function: r.try_get("function_name")?,
                qualifier: r.try_get("qualifier")?,
                payload: r.try_get("payload")?,
                attempts: r.try_get("attempts")?,
            };
            let timeout_s = self.resolve(&event.function, Some(&event.qualifier)).map_or(60.0, |f| f.spec.timeout_s);
            let lease_until = now + ((timeout_s + 60.0) * 1000.0) as i64;
            let won = self
                .inner
                .db
                .write_one(
                    sqlx::query(
                        "UPDATE function_events SET owner = $1, lease_until_ms = $2 \
                         WHERE id = $3 AND status = 'queued' AND lease_until_ms < $4",
                    )
                    .bind(owner.to_string())
                    .bind(lease_until)
                    .bind(event.id.clone())
                    .bind(now),
                )
                .await?;
            if won == 1 {
                claimed.push(event);
            }
        }
        Ok(claimed)
    }

    /// Runs one claimed event and records what came of it.
    async fn run_event(&self, event: Claimed) {
        let now = clock::now_ms;
        let function = match self.resolve(&event.function, Some(&event.qualifier)) {
            Ok(f) => f,
            Err(e) => {
                let message = match e {
                    FunctionsError::NotFound(_) => {
                        format!("function {} was deleted before the event ran", event.function)
                    }
                    other => format!("{other} (the event was sent to {}:{})", event.function, event.qualifier),
                };
                let error = serde_json::json!({ "errorMessage": message, "errorType": "ResourceNotFoundException" });
                self.settle(
                    &event.id,
                    Settle::Failed { attempts: event.attempts, error: error.to_string(), request_id: None },
                )
                .await;
                return;
            }
        };
        let call = Call::new();
        let result = function.invoke_event(&call, Bytes::from(event.payload.clone())).await;
        let settle = match result {
            Ok(_) => Settle::Done,
            Err(InvokeError::Throttled { .. } | InvokeError::Busy { .. }) => {
                Settle::Retry { attempts: event.attempts, due_ms: now() + THROTTLED_DELAY_MS, error: None }
            }
            Err(e) => {
                let attempts = event.attempts + 1;
                let error = String::from_utf8_lossy(&e.payload()).into_owned();
                let retries = i64::from(function.spec.async_retries);
                if attempts <= retries {
                    let delay_ms =
                        (function.spec.async_retry_delay_s * 1000.0 * f64::from(1u32 << (attempts - 1))) as i64;
                    function.logs.push(
                        now(),
                        [format!(
                            "asynchronous event {} failed (attempt {attempts} of {}); retrying in {:.1} s",
                            event.id,
                            retries + 1,
                            delay_ms as f64 / 1000.0
                        )],
                    );
                    Settle::Retry { attempts, due_ms: now() + delay_ms, error: Some((error, call.request_id.clone())) }
                } else {
                    function.logs.push(
                        now(),
                        [format!(
                            "asynchronous event {} failed {attempts} time(s) and is kept in `nimbus functions failures {}`",
                            event.id, event.function
                        )],
                    );
                    Settle::Failed { attempts, error, request_id: Some(call.request_id.clone()) }
                }
            }
        };
        self.settle(&event.id, settle).await;
    }

    async fn settle(&self, id: &str, settle: Settle) {
        let now = clock::now_ms();
        let statement = match settle {
            Settle::Done => sqlx::query("DELETE FROM function_events WHERE id = $1").bind(id.to_string()),
            Settle::Retry { attempts, due_ms, error } => {
                let (error, request_id) = error.unzip();
                sqlx::query(
                    "UPDATE function_events SET attempts = $1, due_ms = $2, owner = NULL, lease_until_ms = 0, \
                     last_error = COALESCE($3, last_error), last_request_id = COALESCE($4, last_request_id), \
                     updated_ms = $5 WHERE id = $6",
                )
                .bind(attempts)
                .bind(due_ms)
                .bind(error)
                .bind(request_id)
                .bind(now)
                .bind(id.to_string())
            }
            Settle::Failed { attempts, error, request_id } => sqlx::query(
                "UPDATE function_events SET status = 'failed', attempts = $1, owner = NULL, lease_until_ms = 0, \
                 last_error = $2, last_request_id = $3, updated_ms = $4 WHERE id = $5",
            )
            .bind(attempts)
            .bind(error)
            .bind(request_id)
            .bind(now)
            .bind(id.to_string()),
        };
        if let Err(e) = self.inner.db.write_one(statement).await {
            // The lease runs out and the event is taken again: at least once, as Lambda.
            tracing::error!(event = id, "cannot record the outcome of an asynchronous event: {e}");
        }
    }
}

/// What to record for an event after an attempt.
enum Settle {
    Done,
    Retry { attempts: i64, due_ms: i64, error: Option<(String, String)> },
    Failed { attempts: i64, error: String, request_id: Option<String> },
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::FunctionSpec;

    #[tokio::test]
    async fn a_failing_event_is_retried_then_kept_with_its_error_and_the_queue_is_bounded() {
        let (_dir, f) = crate::tests::functions().await;
        // A model function with nothing approved: every attempt fails.
        let spec: FunctionSpec = serde_json::from_value(serde_json::json!({
            "kind": "model", "model_group": "g", "async_retries": 2, "async_retry_delay_s": 0.05
        }))
        .unwrap();
        f.put("f", spec, "t").await.unwrap();
        f.start_queue("me".into()).await.unwrap();
        let id = f.enqueue("f", "$LATEST", br#"{"instances":[{"Age":1}]}"#).await.unwrap();
        let started = std::time::Instant::now();
        let failed = loop {
            let failures = f.failures("f", 10).await.unwrap();
            if let Some(x) = failures.into_iter().next() {
                break x;
            }
            assert!(started.elapsed() < Duration::from_secs(20), "the event never failed for good");
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        assert_eq!((failed.id.as_str(), failed.attempts), (id.as_str(), 3), "the first attempt and two retries");
        assert_eq!(failed.error["errorType"], "ModelUnavailable");
        assert_eq!(failed.payload, r#"{"instances":[{"Age":1}]}"#);
        assert_eq!(f.queued("f").await.unwrap(), 0);
        let lines = f.get("f").unwrap().logs.query(0, Some("asynchronous event"), 10);
        assert_eq!(lines.len(), 3, "two retries and the final failure are logged: {lines:?}");

        // Not UTF-8, too large, and a full queue.
        assert!(matches!(f.enqueue("f", "$LATEST", &[0xff, 0xfe]).await, Err(QueueError::Invalid(_))));
        let big = vec![b' '; MAX_EVENT_BYTES + 1];
        assert!(matches!(f.enqueue("f", "$LATEST", &big).await, Err(QueueError::TooLarge(_))));
        let now = clock::now_ms();
        for i in 0..MAX_QUEUED {
            // Due in an hour, so the worker leaves them waiting.
            f.inner
                .db
                .write_one(
                    sqlx::query(
                        "INSERT INTO function_events (id, function_name, qualifier, payload, status, attempts, due_ms, \
                         owner, lease_until_ms, last_error, last_request_id, created_ms, updated_ms) \
                         VALUES ($1, 'f', '$LATEST', '{}', 'queued', 0, $2, NULL, 0, NULL, NULL, $3, $3)",
                    )
                    .bind(format!("e{i}"))
                    .bind(now + 3_600_000)
                    .bind(now),
                )
                .await
                .unwrap();
        }
        assert!(matches!(f.enqueue("f", "$LATEST", b"{}").await, Err(QueueError::Full(_))));
    }
}
