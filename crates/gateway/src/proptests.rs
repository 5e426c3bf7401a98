//! Property tests of route keys and the compiled router, which every request a stranger sends
//! to an API meets: no route key or request path makes them panic; a literal route matches
//! exactly its own method and path; a `{param}` segment matches any one non-empty segment and
//! no more; a greedy `{proxy+}` takes the rest of the path; stages are found by their names.
//!
//! `NIMBUS_PROPTEST_CASES` sets the cases per property (`bench/fuzz.sh` runs many),
//! `PROPTEST_RNG_SEED` the seed; without it the seed is fixed, so `cargo test` is repeatable.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;
use proptest::test_runner::RngSeed;

use crate::router::CompiledApi;
use crate::spec::{ApiSpec, METHODS, RouteKey, RouteSpec, StageSpec, parse_route_key};

/// The seed of a plain `cargo test` run.
const SEED: u64 = 0x6761_7465;

/// `default_cases` cases, unless `NIMBUS_PROPTEST_CASES` says otherwise; a counterexample is
/// printed (and belongs in a named unit test), not written into the source tree.
fn config(default_cases: u32) -> ProptestConfig {
    let cases = match std::env::var("NIMBUS_PROPTEST_CASES") {
        Ok(v) => v.parse().expect("NIMBUS_PROPTEST_CASES must be a whole number"),
        Err(_) => default_cases,
    };
    let mut config = ProptestConfig { cases, failure_persistence: None, ..ProptestConfig::default() };
    if std::env::var_os("PROPTEST_RNG_SEED").is_none() {
        config.rng_seed = RngSeed::Fixed(SEED);
    }
    config
}

fn api(keys: impl IntoIterator<Item = String>, stages: &[String]) -> Result<CompiledApi, String> {
    let spec = ApiSpec {
        description: String::new(),
        hosts: vec![],
        routes: keys.into_iter().map(|k| (k, RouteSpec::to("f"))).collect(),
        stages: stages.iter().map(|s| (s.clone(), StageSpec::default())).collect(),
        authorizers: Default::default(),
        function_authorizers: Default::default(),
        cors: None,
    };
    CompiledApi::compile("api", spec, "")
}

fn prod() -> Vec<String> {
    vec!["prod".to_string()]
}

/// A method a route may name (not `ANY`).
fn method() -> impl Strategy<Value = String> {
    prop::sample::select(&METHODS[..METHODS.len() - 1]).prop_map(str::to_string)
}

/// A literal path segment as a client sends it: no `/`, no braces.
fn segment() -> impl Strategy<Value = String> {
    prop_oneof![4 => "[a-zA-Z0-9._~%:@!$&'()*+,;=-]{1,6}", 1 => "[^/{}]{1,4}"]
}

/// A path segment from a vocabulary of four, so generated routes and requests collide often.
fn common_segment() -> impl Strategy<Value = String> {
    prop::sample::select(vec!["a", "b", "items", "x.y"]).prop_map(str::to_string)
}

/// A segment of a route key: text that may or may not be a well-formed parameter; one in
/// `1 + clean` is broken.
fn key_segment(clean: u32) -> impl Strategy<Value = String> {
    prop_oneof![
        3 * clean + 3 => segment(),
        2 * clean + 2 => "[a-z_0-9]{1,5}".prop_map(|n| format!("{{{n}}}")),
        clean + 1 => "[a-z_0-9]{1,5}".prop_map(|n| format!("{{{n}+}}")),
        3 => "[{}a-z+*:]{0,6}",
        3 => Just(String::new()),
    ]
}

/// A route key close to the grammar: a method (or not), a space, segments; the larger
/// `clean`, the fewer of the parts are broken.
fn route_key(clean: u32) -> impl Strategy<Value = String> {
    prop_oneof![
        1 => Just("$default".to_string()),
        6 => (
            prop_oneof![
                4 * clean + 4 => prop::sample::select(METHODS.to_vec()).prop_map(str::to_string),
                1 => ".{0,6}",
            ],
            prop_oneof![3 * clean + 1 => Just(" /"), 1 => Just(" "), 1 => Just("/"), 1 => Just("  /")],
            prop::collection::vec(key_segment(clean), 0..5),
        )
            .prop_map(|(m, sep, segs)| format!("{m}{sep}{}", segs.join("/"))),
        1 => ".{0,30}",
    ]
}

/// A request path: arbitrary text, or segments with `/` between them.
fn request_path() -> impl Strategy<Value = String> {
    prop_oneof![
        ".{0,30}",
        prop::collection::vec(prop_oneof![segment(), common_segment(), Just(String::new())], 0..6)
            .prop_map(|s| format!("/{}", s.join("/"))),
    ]
}

fn join(segments: &[String]) -> String {
    format!("/{}", segments.join("/"))
}

proptest! {
    #![proptest_config(config(3000))]

    #[test]
    fn route_keys_never_panic(key in prop_oneof![route_key(0), any::<String>()]) {
        if let Ok(RouteKey::Route { method, pattern }) = parse_route_key(&key) {
            prop_assert!(METHODS.contains(&method.as_str()), "{}", method);
            prop_assert!(pattern.starts_with('/'), "{}", pattern);
            let path = key.split_once(' ').expect("a method and a path").1;
            prop_assert_eq!(pattern.split('/').count(), path.split('/').count(), "one segment for one");
        }
    }

    #[test]
    fn arbitrary_apis_compile_or_refuse_and_route_without_panic(
        keys in prop::collection::vec(route_key(10), 1..5),
        stages in prop::collection::vec(prop_oneof![8 => "[a-z0-9][a-z0-9_-]{0,6}", 1 => ".{0,8}"], 0..3),
        requests in prop::collection::vec((prop_oneof![method(), ".{0,8}"], request_path()), 0..8),
    ) {
        let Ok(a) = api(keys, &stages) else { return Ok(()) };
        for (method, path) in &requests {
            if let Some(m) = a.find(method, path) {
                prop_assert!(m.route < a.routes.len());
            }
        }
        for (i, s) in stages.iter().enumerate() {
            prop_assert!(a.stage(s).is_some(), "stage {} (#{}) of {:?}", s, i, a.stages);
        }
    }

    #[test]
    fn literal_routes_match_exactly_their_method_and_path(
        declared in prop::collection::btree_set(
            (method(), prop::collection::vec(prop_oneof![common_segment(), segment()], 0..4)),
            1..8,
        ),
        probes in prop::collection::vec(
            (method(), prop::collection::vec(prop_oneof![3 => common_segment(), 1 => segment()], 0..5), any::<bool>()),
            0..12,
        ),
    ) {
        let keys: BTreeSet<(String, String)> = declared.iter().map(|(m, segs)| (m.clone(), join(segs))).collect();
        let a = api(keys.iter().map(|(m, p)| format!("{m} {p}")), &prod());
        let a = a.map_err(|e| TestCaseError::fail(format!("distinct literal routes conflict: {e}")))?;
        // Every declared path, the same with one segment more and with a trailing slash, and
        // paths from the same vocabulary: found exactly when declared for that method.
        let mut requests: Vec<(String, String)> = keys.iter().cloned().collect();
        for (m, p) in &keys {
            requests.push((m.clone(), format!("{}/extra", p.trim_end_matches('/'))));
            requests.push((m.clone(), format!("{p}/")));
            requests.push(("ANY".into(), p.clone()));
        }
        for (m, segs, slash) in probes {
            requests.push((m, if slash { format!("{}/", join(&segs)) } else { join(&segs) }));
        }
        for (m, p) in requests {
            let found = a.find(&m, &p).map(|hit| (a.routes[hit.route].key.clone(), hit.params));
            let want = keys.contains(&(m.clone(), p.clone())).then(|| (format!("{m} {p}"), vec![]));
            prop_assert_eq!(found, want, "{} {}", m, p);
        }
    }

    #[test]
    fn a_param_segment_matches_any_one_non_empty_segment(
        shape in prop::collection::vec(prop_oneof![segment().prop_map(Some), Just(None)], 1..5),
        values in prop::collection::vec("[^/]{1,8}", 5),
        any_method in any::<bool>(),
        method in method(),
        extra in segment(),
    ) {
        let names: Vec<String> = (0..shape.len()).map(|i| format!("p{i}")).collect();
        let pattern: Vec<String> = shape
            .iter()
            .zip(&names)
            .map(|(lit, name)| lit.clone().unwrap_or_else(|| format!("{{{name}}}")))
            .collect();
        let declared = if any_method { "ANY" } else { method.as_str() };
        let key = format!("{declared} {}", join(&pattern));
        let a = api([key.clone()], &prod()).map_err(|e| TestCaseError::fail(format!("{key}: {e}")))?;
        let path: Vec<String> = shape.iter().zip(&values).map(|(lit, v)| lit.clone().unwrap_or_else(|| v.clone())).collect();
        let params: Vec<(String, String)> = shape
            .iter()
            .zip(names.iter().zip(&values))
            .filter(|(lit, _)| lit.is_none())
            .map(|(_, (n, v))| (n.clone(), v.clone()))
            .collect();
        let hit = a.find(&method, &join(&path)).map(|m| (m.route, m.params));
        prop_assert_eq!(hit, Some((0, params)), "{} for {}", key, join(&path));
        // One segment more, one fewer, or an empty parameter: no match.
        let longer = format!("{}/{extra}", join(&path));
        prop_assert!(a.find(&method, &longer).is_none(), "{}", longer);
        if path.len() > 1 {
            prop_assert!(a.find(&method, &join(&path[..path.len() - 1])).is_none());
        }
        if let Some(i) = shape.iter().position(Option::is_none) {
            let mut emptied = path.clone();
            emptied[i] = String::new();
            prop_assert!(a.find(&method, &join(&emptied)).is_none(), "{}", join(&emptied));
        }
        // Another method reaches an exact-method route only through ANY.
        let other = if method == "GET" { "POST" } else { "GET" };
        prop_assert_eq!(a.find(other, &join(&path)).is_some(), any_method);
    }

    #[test]
    fn a_greedy_parameter_takes_the_rest_of_the_path(
        prefix in prop::collection::vec(segment(), 0..3),
        rest in "[^/]{1,6}(/[^/]{0,6}){0,3}",
        method in method(),
    ) {
        let key = format!("ANY {}/{{proxy+}}", if prefix.is_empty() { String::new() } else { join(&prefix) });
        let a = api([key.clone(), format!("{method} /")], &prod()).map_err(TestCaseError::fail)?;
        let base = if prefix.is_empty() { String::new() } else { join(&prefix) };
        let hit = a.find(&method, &format!("{base}/{rest}")).map(|m| (a.routes[m.route].key.clone(), m.params));
        prop_assert_eq!(hit, Some((key.clone(), vec![("proxy".to_string(), rest.clone())])));
        // Nothing after the prefix is not a match for `{proxy+}`.
        if !prefix.is_empty() {
            prop_assert!(a.find(&method, &base).is_none(), "{}", base);
        }
    }

    #[test]
    fn stages_are_found_by_name_and_only_by_name(
        stages in prop::collection::btree_set("[A-Za-z0-9][A-Za-z0-9_-]{0,10}", 1..5),
        probe in prop_oneof!["[A-Za-z0-9_-]{0,11}", ".{0,8}"],
    ) {
        let stages: Vec<String> = stages.into_iter().collect();
        let a = api(["POST /predict".to_string()], &stages).map_err(TestCaseError::fail)?;
        for (i, s) in a.stages.iter().enumerate() {
            prop_assert_eq!(a.stage(s), Some(i));
        }
        prop_assert_eq!(a.stage(&probe).map(|i| a.stages[i].clone()), stages.contains(&probe).then(|| probe.clone()));
        let declared: BTreeMap<&str, ()> = stages.iter().map(|s| (s.as_str(), ())).collect();
        prop_assert_eq!(a.stages.iter().map(String::as_str).collect::<Vec<_>>(), declared.keys().copied().collect::<Vec<_>>());
    }
}
