//! What a usage plan is, as declared in `nimbus.toml` (`[usage_plans.NAME]`), and its checks.
//!
//! ```toml
//! [usage_plans.basic]
//! description = "10 requests per second, 100 a day"
//! throttle = { rate = 10, burst = 5 }        # per key, across every stage of the plan
//! quota = { limit = 100, period = "DAY" }    # per key; offset = N lowers the first period
//! [[usage_plans.basic.stages]]
//! api = "titanic"
//! stage = "prod"
//! throttle = { "POST /predict" = { rate = 2, burst = 2 } }   # optional, per route
//! ```
//!
//! This is the seed's `aws apigateway create-usage-plan --throttle rateLimit=10,burstLimit=5
//! --quota limit=100,period=DAY --api-stages apiId=…,stage=prod`. The declaration is stored
//! wrapped in a versioned [`StoredPlan`] (it adds the plan's creation time, which the quota
//! offset needs); nothing here touches the database or the clock.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::spec::parse_route_key;

/// A token bucket's settings: `burst` is the bucket's size, `rate` its refill per second.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Throttle {
    /// Steady requests per second (AWS's `rateLimit`); fractions allowed (0.5 = one every 2 s).
    pub rate: f64,
    /// Requests that may arrive at once (AWS's `burstLimit`): the bucket's size.
    pub burst: u32,
}

/// How long a quota counts before it starts again. Periods are calendar periods in UTC.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Period {
    /// From 00:00 UTC to the next 00:00 UTC.
    Day,
    /// From Monday 00:00 UTC to the next Monday (ISO weeks: AWS does not document its week).
    Week,
    /// From the 1st of the month 00:00 UTC to the 1st of the next month.
    Month,
}

/// A limit on the requests of one key per period.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Quota {
    /// Requests a key may make in one period.
    pub limit: u64,
    pub period: Period,
    /// As in AWS's `QuotaSettings.offset`: the number of requests subtracted from the limit in
    /// the initial period (the one the plan was created in), for a plan that starts in the
    /// middle of its week or month. Every later period has the whole limit.
    #[serde(default)]
    pub offset: u64,
}

/// An API stage the plan covers (AWS's `apiStages`); a key of the plan may call only these.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StageRef {
    /// The API's name (`[apis.NAME]`).
    pub api: String,
    /// One of the API's stages.
    pub stage: String,
    /// Route key (`POST /predict`) → a per-key throttle for that route, checked before the
    /// plan's own throttle.
    #[serde(default)]
    pub throttle: BTreeMap<String, Throttle>,
}

/// A usage plan's declaration.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UsagePlanSpec {
    #[serde(default)]
    pub description: String,
    /// Per-key throttle across all the plan's stages; none = only the stage's own throttle.
    #[serde(default)]
    pub throttle: Option<Throttle>,
    /// Per-key quota; none = unlimited.
    #[serde(default)]
    pub quota: Option<Quota>,
    /// The API stages the plan's keys may call.
    #[serde(default)]
    pub stages: Vec<StageRef>,
}

/// The largest rate accepted: far above what one process serves, small enough that the
/// bucket's arithmetic in `f64` stays exact to well below one token.
pub const MAX_RATE: f64 = 1e9;

/// Checks a throttle; `field` is where it sits (`throttle`, `stages[0].throttle."POST /p"`).
pub fn validate_throttle(field: &str, t: &Throttle) -> Result<(), String> {
    if !(t.rate.is_finite() && t.rate > 0.0 && t.rate <= MAX_RATE) {
        return Err(format!(
            "{field}.rate: {} is not a rate; give requests per second, more than 0 and at most {MAX_RATE:e} \
             (e.g. {field} = {{ rate = 10, burst = 5 }}; 0.5 allows one request every 2 seconds)",
            t.rate
        ));
    }
    if t.burst == 0 {
        return Err(format!(
            "{field}.burst: 0 would refuse every request; give the bucket size, at least 1 \
             (e.g. {field} = {{ rate = {}, burst = 5 }})",
            t.rate
        ));
    }
    Ok(())
}

impl UsagePlanSpec {
    /// Checks the declaration; the error names the field and the fix.
    pub fn validate(&self) -> Result<(), String> {
        if let Some(t) = &self.throttle {
            validate_throttle("throttle", t)?;
        }
        if let Some(q) = &self.quota {
            if q.limit == 0 {
                return Err("quota.limit: 0 would refuse every request; give at least 1 \
                            (e.g. quota = { limit = 100, period = \"DAY\" }), or remove quota for no limit"
                    .into());
            }
            if q.offset >= q.limit {
                return Err(format!(
                    "quota.offset: {} is the number of requests taken off the limit ({}) in the first period \
                     and must be less than it; use 0 (the default) for a whole first period",
                    q.offset, q.limit
                ));
            }
        }
        let mut seen = BTreeSet::new();
        for (i, s) in self.stages.iter().enumerate() {
            nimbus_core::names::resource("API name", &s.api).map_err(|e| format!("stages[{i}].api: {e}"))?;
            nimbus_core::names::resource("stage name", &s.stage).map_err(|e| format!("stages[{i}].stage: {e}"))?;
            if !seen.insert((s.api.as_str(), s.stage.as_str())) {
                return Err(format!(
                    "stages[{i}]: api {:?} stage {:?} is listed twice; list each API stage once and put all its \
                     route throttles in that entry",
                    s.api, s.stage
                ));
            }
            for (route, t) in &s.throttle {
                parse_route_key(route).map_err(|e| format!("stages[{i}].throttle: {e}"))?;
                validate_throttle(&format!("stages[{i}].throttle.{route:?}"), t)?;
            }
        }
        Ok(())
    }

    /// The entry for an API stage, when the plan covers it.
    pub fn stage(&self, api: &str, stage: &str) -> Option<&StageRef> {
        self.stages.iter().find(|s| s.api == api && s.stage == stage)
    }
}

/// The version of [`StoredPlan`] this code writes.
pub const STORED_VERSION: u32 = 1;

/// The stored document of a plan (kind `usage_plan` in `specs`): the declaration plus what
/// the server adds. A wrapper rather than extra fields so `deny_unknown_fields` keeps the
/// project file from setting server-owned values.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StoredPlan {
    /// Format version, [`STORED_VERSION`] when written by this code.
    pub version: u32,
    /// When the plan was first stored (epoch ms): its quota's initial period contains this.
    /// Kept across replacements, so re-applying a plan does not restart its offset.
    pub created_ms: i64,
    pub spec: UsagePlanSpec,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(rate: f64, burst: u32) -> Throttle {
        Throttle { rate, burst }
    }

    fn stage(api: &str, stage: &str) -> StageRef {
        StageRef { api: api.into(), stage: stage.into(), throttle: BTreeMap::new() }
    }

    #[test]
    fn the_seed_plan_reads_from_toml() {
        let text = r#"
            [usage_plans.basic]
            throttle = { rate = 10, burst = 5 }
            quota = { limit = 100, period = "DAY" }
            [[usage_plans.basic.stages]]
            api = "titanic"
            stage = "prod"
            throttle = { "POST /predict" = { rate = 0.5, burst = 1 } }
        "#;
        #[derive(Deserialize)]
        struct Project {
            usage_plans: BTreeMap<String, UsagePlanSpec>,
        }
        let project: Project = toml::from_str(text).unwrap();
        let plan = &project.usage_plans["basic"];
        assert_eq!(plan.throttle, Some(t(10.0, 5)));
        assert_eq!(plan.quota, Some(Quota { limit: 100, period: Period::Day, offset: 0 }));
        assert_eq!(plan.stages[0].throttle["POST /predict"], t(0.5, 1));
        plan.validate().unwrap();
        let unknown = toml::from_str::<UsagePlanSpec>("throttle = { rate = 1, burst = 1, rateLimit = 2 }");
        assert!(unknown.unwrap_err().to_string().contains("rateLimit"), "unknown fields are refused");
        let period = toml::from_str::<UsagePlanSpec>("quota = { limit = 1, period = \"YEAR\" }");
        assert!(period.unwrap_err().to_string().contains("DAY"), "the error lists the periods");
    }

    #[test]
    fn validation_errors_name_the_field_and_the_fix() {
        let quota = |limit, offset| Some(Quota { limit, period: Period::Week, offset });
        let with_route = |route: &str, th| {
            let mut s = stage("titanic", "prod");
            s.throttle.insert(route.to_string(), th);
            vec![s]
        };
        /// Ok, or the pieces the error must contain.
        type Want = Result<(), Vec<&'static str>>;
        let cases: Vec<(&str, UsagePlanSpec, Want)> = vec![
            ("empty plan is valid", UsagePlanSpec::default(), Ok(())),
            (
                "zero rate",
                UsagePlanSpec { throttle: Some(t(0.0, 5)), ..Default::default() },
                Err(vec!["throttle.rate", "more than 0"]),
            ),
            (
                "negative rate",
                UsagePlanSpec { throttle: Some(t(-1.0, 5)), ..Default::default() },
                Err(vec!["throttle.rate"]),
            ),
            (
                "NaN rate",
                UsagePlanSpec { throttle: Some(t(f64::NAN, 5)), ..Default::default() },
                Err(vec!["throttle.rate"]),
            ),
            (
                "zero burst",
                UsagePlanSpec { throttle: Some(t(1.0, 0)), ..Default::default() },
                Err(vec!["throttle.burst", "at least 1"]),
            ),
            ("fractional rate", UsagePlanSpec { throttle: Some(t(0.5, 1)), ..Default::default() }, Ok(())),
            (
                "zero limit",
                UsagePlanSpec { quota: quota(0, 0), ..Default::default() },
                Err(vec!["quota.limit", "at least 1", "remove quota"]),
            ),
            (
                "offset as large as the limit",
                UsagePlanSpec { quota: quota(10, 10), ..Default::default() },
                Err(vec!["quota.offset", "less than"]),
            ),
            ("offset below the limit", UsagePlanSpec { quota: quota(10, 9), ..Default::default() }, Ok(())),
            (
                "bad api name",
                UsagePlanSpec { stages: vec![stage("no spaces", "prod")], ..Default::default() },
                Err(vec!["stages[0].api", "A-Z"]),
            ),
            (
                "bad stage name",
                UsagePlanSpec { stages: vec![stage("titanic", "")], ..Default::default() },
                Err(vec!["stages[0].stage"]),
            ),
            (
                "stage twice",
                UsagePlanSpec { stages: vec![stage("a", "prod"), stage("a", "prod")], ..Default::default() },
                Err(vec!["stages[1]", "listed twice"]),
            ),
            (
                "bad route key",
                UsagePlanSpec { stages: with_route("/predict", t(1.0, 1)), ..Default::default() },
                Err(vec!["stages[0].throttle", "METHOD /path"]),
            ),
            (
                "bad route throttle",
                UsagePlanSpec { stages: with_route("POST /predict", t(1.0, 0)), ..Default::default() },
                Err(vec!["stages[0].throttle.\"POST /predict\".burst"]),
            ),
        ];
        let mut failures = Vec::new();
        for (case, plan, want) in cases {
            match (plan.validate(), want) {
                (Ok(()), Ok(())) => {}
                (Err(e), Err(pieces)) => {
                    for p in pieces.iter().filter(|p| !e.contains(*p)) {
                        failures.push(format!("{case}: error {e:?} lacks {p:?}"));
                    }
                }
                (got, want) => failures.push(format!("{case}: got {got:?}, want {want:?}")),
            }
        }
        assert!(failures.is_empty(), "{} failing case(s):\n{}", failures.len(), failures.join("\n"));
    }

    #[test]
    fn stored_plans_round_trip_through_json() {
        let stored = StoredPlan {
            version: STORED_VERSION,
            created_ms: 7,
            spec: UsagePlanSpec {
                quota: Some(Quota { limit: 5, period: Period::Month, offset: 1 }),
                ..Default::default()
            },
        };
        let text = serde_json::to_string(&stored).unwrap();
        assert!(text.contains("\"period\":\"MONTH\""), "{text}");
        assert_eq!(serde_json::from_str::<StoredPlan>(&text).unwrap(), stored);
    }
}
