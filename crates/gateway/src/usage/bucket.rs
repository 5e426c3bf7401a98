//! Token buckets: `burst` is the bucket's size, `rate` its refill per second; a bucket starts
//! full and each request takes one token or is throttled (DESIGN, "Throttling").
//!
//! Buckets live in a bounded, sharded map keyed by a [`Scope`] (per key and route, per key,
//! per stage route). The throttle settings are passed on every check rather than stored, so
//! a changed plan applies from the next request. Time is always passed in (`now`), so tests
//! drive the clock; nothing here reads it. What does not live here: which throttles apply to
//! a request (the plan decides, in `mod.rs`) and quotas (`quota.rs`).

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::Mutex;
use std::time::Instant;

use super::plan::Throttle;

/// Tokens are `f64`; sums of fractional refills land a hair under a whole token (ten refills
/// of 0.1 make 0.9999999999999999), which must still count as one.
const EPSILON: f64 = 1e-9;

/// Shards of the map: requests of different keys rarely wait on each other's lock.
const SHARDS: usize = 16;

/// The buckets kept at most by default; a bucket is a few dozen bytes.
pub const DEFAULT_MAX_BUCKETS: usize = 100_000;

/// Whose bucket: the three levels of DESIGN's order (the account level is not built yet).
#[derive(Clone, Copy, Debug)]
pub enum Scope<'a> {
    /// One key on one route of one stage: the plan's per-route throttle.
    KeyRoute { key_id: &'a str, api: &'a str, stage: &'a str, route: &'a str },
    /// One key on every stage of its plan: the plan's throttle.
    Key { key_id: &'a str },
    /// Everyone on one route of one stage: the stage's (or route's) default throttle.
    Route { api: &'a str, stage: &'a str, route: &'a str },
}

/// One bucket's state.
#[derive(Clone, Copy, Debug)]
struct Bucket {
    tokens: f64,
    /// When `tokens` was last brought up to date.
    last: Instant,
    /// The settings of the last check, to tell later whether the bucket has refilled.
    rate: f64,
    burst: f64,
}

impl Bucket {
    fn full(t: Throttle, now: Instant) -> Bucket {
        Bucket { tokens: t.burst as f64, last: now, rate: t.rate, burst: t.burst as f64 }
    }

    /// Adds the tokens earned since `last`, up to the bucket's size. Callers capture `now`
    /// before taking the lock, so a `now` slightly older than `last` is normal: it earns
    /// nothing rather than going back in time.
    fn refill(&mut self, t: Throttle, now: Instant) {
        let earned = now.saturating_duration_since(self.last).as_secs_f64() * t.rate;
        self.burst = t.burst as f64;
        self.rate = t.rate;
        self.tokens = (self.tokens + earned).min(self.burst);
        self.last = self.last.max(now);
    }

    fn take(&mut self, t: Throttle, now: Instant) -> bool {
        self.refill(t, now);
        if self.tokens >= 1.0 - EPSILON {
            self.tokens = (self.tokens - 1.0).max(0.0);
            true
        } else {
            false
        }
    }

    /// Whether the bucket would be full at `now`: then forgetting it changes nothing, since a
    /// new bucket starts full.
    fn full_at(&self, now: Instant) -> bool {
        self.tokens + now.saturating_duration_since(self.last).as_secs_f64() * self.rate >= self.burst - EPSILON
    }
}

/// The buckets of one process, bounded in number.
pub struct Buckets {
    shards: Box<[Mutex<HashMap<u64, Bucket>>]>,
    per_shard: usize,
    /// Random per process, so the fingerprints of scopes cannot be aimed at each other.
    hasher: RandomState,
}

impl Buckets {
    /// A map of at most about `max_buckets` buckets (at least one per shard).
    pub fn new(max_buckets: usize) -> Buckets {
        Buckets {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            per_shard: max_buckets.div_ceil(SHARDS).max(1),
            hasher: RandomState::new(),
        }
    }

    /// The map key of a scope: a 64-bit keyed hash, so the hot path builds no string. Two
    /// scopes sharing a fingerprint (odds about n²/2⁶⁵ for n buckets) would share a bucket,
    /// which only throttles them sooner; the scopes' parts come from configuration and our
    /// own key ids, never from raw request text.
    fn fingerprint(&self, scope: &Scope<'_>) -> u64 {
        match *scope {
            Scope::KeyRoute { key_id, api, stage, route } => self.hasher.hash_one((1u8, key_id, api, stage, route)),
            Scope::Key { key_id } => self.hasher.hash_one((2u8, key_id)),
            Scope::Route { api, stage, route } => self.hasher.hash_one((3u8, api, stage, route)),
        }
    }

    fn shard(&self, fingerprint: u64) -> &Mutex<HashMap<u64, Bucket>> {
        &self.shards[(fingerprint as usize) % SHARDS]
    }

    /// Takes one token from the scope's bucket (made full on first use); false = throttled.
    pub fn take(&self, scope: &Scope<'_>, t: Throttle, now: Instant) -> bool {
        let fp = self.fingerprint(scope);
        let mut shard = self.shard(fp).lock().expect("bucket shard lock");
        if let Some(b) = shard.get_mut(&fp) {
            return b.take(t, now);
        }
        if shard.len() >= self.per_shard {
            evict(&mut shard, self.per_shard, now);
        }
        let mut b = Bucket::full(t, now);
        let taken = b.take(t, now);
        shard.insert(fp, b);
        taken
    }

    /// Gives back a token taken by [`Buckets::take`] for a request a later check refused.
    fn give_back(&self, scope: &Scope<'_>) {
        let fp = self.fingerprint(scope);
        if let Some(b) = self.shard(fp).lock().expect("bucket shard lock").get_mut(&fp) {
            b.tokens = (b.tokens + 1.0).min(b.burst);
        }
    }

    /// Checks the throttles in order (DESIGN: per key and route, per key, stage route). A
    /// request refused at one level gives back the tokens it took at the earlier ones, so a
    /// throttled request costs no level anything.
    pub fn take_in_order(&self, checks: &[Option<(Scope<'_>, Throttle)>], now: Instant) -> bool {
        for (i, (scope, t)) in checks.iter().enumerate().filter_map(|(i, c)| c.as_ref().map(|c| (i, c))) {
            if !self.take(scope, *t, now) {
                for (earlier, _) in checks[..i].iter().flatten() {
                    self.give_back(earlier);
                }
                return false;
            }
        }
        true
    }

    /// How many buckets are kept.
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| s.lock().expect("bucket shard lock").len()).sum()
    }

    /// Whether no bucket is kept.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Makes room in a full shard. Full buckets go first, since forgetting them is exact; if that
/// is not enough, the least recently used quarter goes too (those callers get a full bucket
/// back: generous, but bounded memory matters more than an idle caller's few tokens).
fn evict(shard: &mut HashMap<u64, Bucket>, cap: usize, now: Instant) {
    shard.retain(|_, b| !b.full_at(now));
    if shard.len() < cap {
        return;
    }
    let mut lasts: Vec<Instant> = shard.values().map(|b| b.last).collect();
    let cut = lasts.len() / 4;
    let (_, oldest_kept, _) = lasts.select_nth_unstable(cut);
    let oldest_kept = *oldest_kept;
    shard.retain(|_, b| b.last >= oldest_kept);
    // Ties at the cut can keep everything; then drop arbitrary ones to stay bounded.
    let excess = shard.len().saturating_sub(cap - 1);
    let drop: Vec<u64> = shard.keys().take(excess).copied().collect();
    for k in drop {
        shard.remove(&k);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn t(rate: f64, burst: u32) -> Throttle {
        Throttle { rate, burst }
    }

    const KEY: Scope<'static> = Scope::Key { key_id: "k1" };

    /// Runs `(at ms, expected admission)` steps against one bucket; reports every wrong step.
    fn check(name: &str, throttle: Throttle, steps: &[(u64, bool)], failures: &mut Vec<String>) {
        let buckets = Buckets::new(DEFAULT_MAX_BUCKETS);
        let start = Instant::now();
        for (i, &(at, want)) in steps.iter().enumerate() {
            let got = buckets.take(&KEY, throttle, start + Duration::from_millis(at));
            if got != want {
                failures.push(format!("{name}: step {i} at {at} ms: admitted {got}, want {want}"));
            }
        }
    }

    #[test]
    fn burst_then_refill_at_the_rate() {
        let mut failures = Vec::new();
        check(
            "burst 5 then refused",
            t(10.0, 5),
            &[(0, true), (0, true), (0, true), (0, true), (0, true), (0, false)],
            &mut failures,
        );
        check(
            "10/s refills one per 100 ms",
            t(10.0, 5),
            &[
                (0, true),
                (0, true),
                (0, true),
                (0, true),
                (0, true),
                (50, false),
                (100, true),
                (100, false),
                (300, true),
                (300, true),
                (300, false),
            ],
            &mut failures,
        );
        check(
            "refill stops at the burst",
            t(10.0, 2),
            &[(0, true), (0, true), (10_000, true), (10_000, true), (10_000, false)],
            &mut failures,
        );
        check(
            "0.5/s: one every 2 s",
            t(0.5, 1),
            &[(0, true), (1_000, false), (1_999, false), (2_000, true), (2_001, false), (4_000, true)],
            &mut failures,
        );
        check(
            "0.1/s refilled in ten 1 s steps makes a whole token",
            t(0.1, 1),
            &[
                (0, true),
                (1_000, false),
                (2_000, false),
                (3_000, false),
                (4_000, false),
                (5_000, false),
                (6_000, false),
                (7_000, false),
                (8_000, false),
                (9_000, false),
                (10_000, true),
            ],
            &mut failures,
        );
        check(
            "a late `now` earns nothing and takes nothing back",
            t(1.0, 1),
            &[(1_000, true), (500, false), (2_000, true)],
            &mut failures,
        );
        assert!(failures.is_empty(), "{} failing step(s):\n{}", failures.len(), failures.join("\n"));
    }

    #[test]
    fn scopes_have_their_own_buckets() {
        let buckets = Buckets::new(DEFAULT_MAX_BUCKETS);
        let now = Instant::now();
        let one = t(1.0, 1);
        let route = |api| Scope::Route { api, stage: "prod", route: "POST /p" };
        assert!(buckets.take(&route("a"), one, now));
        assert!(!buckets.take(&route("a"), one, now));
        assert!(buckets.take(&route("b"), one, now), "another API");
        assert!(buckets.take(&Scope::Key { key_id: "a" }, one, now), "a key named like an API");
        let kr = Scope::KeyRoute { key_id: "a", api: "prod", stage: "POST /p", route: "" };
        assert!(buckets.take(&kr, one, now), "parts do not run into each other");
    }

    #[test]
    fn a_refused_level_gives_back_the_earlier_tokens() {
        let buckets = Buckets::new(DEFAULT_MAX_BUCKETS);
        let now = Instant::now();
        let stage = Scope::Route { api: "a", stage: "prod", route: "GET /" };
        let key = |id| Some((Scope::Key { key_id: id }, t(1.0, 2)));
        assert!(buckets.take(&stage, t(1.0, 1), now), "another caller drains the stage bucket");
        assert!(!buckets.take_in_order(&[key("k"), Some((stage, t(1.0, 1)))], now));
        // The key's two tokens are both still there.
        assert!(buckets.take_in_order(&[key("k")], now));
        assert!(buckets.take_in_order(&[key("k")], now));
        assert!(!buckets.take_in_order(&[key("k")], now));
        assert!(buckets.take_in_order(&[None, None, None], now), "no throttle admits");
    }

    #[test]
    fn the_map_stays_bounded_and_forgets_full_buckets_first() {
        let buckets = Buckets::new(SHARDS * 4);
        let start = Instant::now();
        let ids: Vec<String> = (0..1_000).map(|i| format!("key{i}")).collect();
        for (i, id) in ids.iter().enumerate() {
            buckets.take(&Scope::Key { key_id: id }, t(1.0, 3), start + Duration::from_millis(i as u64));
            assert!(buckets.len() <= SHARDS * 4, "{} buckets after {i}", buckets.len());
        }
        // A drained, recently used bucket survives a wave of full ones.
        let b = Buckets::new(SHARDS * 4);
        let hot = Scope::Key { key_id: "hot" };
        assert!(b.take(&hot, t(0.001, 1), start));
        for (i, id) in ids.iter().enumerate() {
            // Each new bucket is taken from once and is full again 1 ms later, at the next insert.
            b.take(&Scope::Key { key_id: id }, t(1_000.0, 1), start + Duration::from_millis(1_000 + i as u64));
        }
        assert!(!b.take(&hot, t(0.001, 1), start + Duration::from_secs(3)), "the drained bucket was kept");
    }

    #[test]
    fn real_time_refill_with_generous_bounds() {
        // 20/s with a burst of 2, asked about every millisecond for 300 ms of real time: about
        // 8 admitted of ~300 asked, never more than the burst and the rate allow. The lower
        // bound is only the burst, since a stalled thread may ask just twice.
        let buckets = Buckets::new(DEFAULT_MAX_BUCKETS);
        let started = Instant::now();
        let mut admitted = 0;
        while started.elapsed() < Duration::from_millis(300) {
            if buckets.take(&KEY, t(20.0, 2), Instant::now()) {
                admitted += 1;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        let elapsed = started.elapsed().as_secs_f64();
        let most = 2 + (elapsed * 20.0).ceil() as u32;
        assert!((2..=most).contains(&admitted), "admitted {admitted} in {elapsed:.3} s, want 2..={most}");
        std::thread::sleep(Duration::from_millis(100));
        assert!(buckets.take(&KEY, t(20.0, 2), Instant::now()), "100 ms of rest refill two tokens");
    }
}
