//! The limiter of failed client authentications at the token endpoint.
//!
//! The rule: every source (an IPv4 address, or an IPv6 /64, which one host can hold whole)
//! and every existing client id has a failure window that opens at its first failed
//! authentication and lasts [`WINDOW`]; failures inside it are counted.
//!
//! - A source with [`LIMIT`] failures in its window is refused (429 `too_many_requests`) for
//!   every attempt until the window ends, before its credentials are looked at: no database
//!   query, no comparison. That bounds the work one attacker can cause.
//! - A client id with [`LIMIT`] failures in its window is refused only to sources that failed
//!   themselves in their current window (or whose address is unknown). Sources with no failure
//!   authenticate as usual, so a flood of wrong secrets sent for a client's id from many
//!   addresses cannot lock the real client out, while each attacking address gets one guess
//!   per window at most.
//!
//! Successful attempts are never delayed, never counted, and reset nothing (a reset would let
//! an attacker holding one valid client wipe its address's failures). Refused attempts do not
//! count either, so a window always ends [`WINDOW`] after it opened. Memory is bounded: each
//! map holds at most [`MAX_TRACKED`] entries; when full, ended windows are dropped and then
//! the oldest window.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Failures that close a window's door.
pub const LIMIT: u32 = 10;
/// How long a failure window lasts.
pub const WINDOW: Duration = Duration::from_secs(60);
/// Entries per map (sources; client ids).
pub const MAX_TRACKED: usize = 10_000;

#[derive(Clone, Copy)]
struct Window {
    start: Instant,
    failures: u32,
}

struct Counter<K> {
    map: HashMap<K, Window>,
}

impl<K: Hash + Eq + Clone> Counter<K> {
    fn live<Q: Hash + Eq + ?Sized>(&self, key: &Q, window: Duration, now: Instant) -> Option<Window>
    where
        K: std::borrow::Borrow<Q>,
    {
        self.map.get(key).copied().filter(|w| now.duration_since(w.start) < window)
    }

    fn fail(&mut self, key: K, window: Duration, cap: usize, now: Instant) -> u32 {
        if let Some(w) = self.map.get_mut(&key) {
            if now.duration_since(w.start) < window {
                w.failures += 1;
            } else {
                *w = Window { start: now, failures: 1 };
            }
            return w.failures;
        }
        if self.map.len() >= cap {
            self.map.retain(|_, w| now.duration_since(w.start) < window);
        }
        if self.map.len() >= cap
            && let Some(oldest) = self.map.iter().min_by_key(|(_, w)| w.start).map(|(k, _)| k.clone())
        {
            self.map.remove(&oldest);
        }
        self.map.insert(key, Window { start: now, failures: 1 });
        1
    }
}

/// Where an attempt came from, as counted.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
enum Source {
    V4([u8; 4]),
    V6Prefix([u8; 8]),
}

fn source(ip: IpAddr) -> Source {
    match ip {
        IpAddr::V4(v4) => Source::V4(v4.octets()),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => Source::V4(v4.octets()),
            None => Source::V6Prefix(v6.octets()[..8].try_into().expect("8 of 16 bytes")),
        },
    }
}

/// The failed-authentication limiter; see the module docs for the rule.
pub(crate) struct Throttle {
    limit: u32,
    window: Duration,
    cap: usize,
    state: Mutex<(Counter<Source>, Counter<String>)>,
}

impl Throttle {
    pub(crate) fn new(limit: u32, window: Duration, cap: usize) -> Throttle {
        let state = (Counter { map: HashMap::new() }, Counter { map: HashMap::new() });
        Throttle { limit, window, cap, state: Mutex::new(state) }
    }

    /// Whether the source has used up its failures.
    pub(crate) fn source_blocked(&self, ip: Option<IpAddr>) -> bool {
        let Some(ip) = ip else { return false };
        let state = self.state.lock().expect("throttle lock");
        state.0.live(&source(ip), self.window, Instant::now()).is_some_and(|w| w.failures >= self.limit)
    }

    /// Whether the client id has used up its failures for this source.
    pub(crate) fn client_blocked(&self, client_id: &str, ip: Option<IpAddr>) -> bool {
        let now = Instant::now();
        let state = self.state.lock().expect("throttle lock");
        if state.1.live(client_id, self.window, now).is_none_or(|w| w.failures < self.limit) {
            return false;
        }
        match ip {
            None => true,
            Some(ip) => state.0.live(&source(ip), self.window, now).is_some(),
        }
    }

    /// Counts a failed authentication; `client_id` only when the client exists (made-up ids
    /// are counted against their source alone, so they cannot fill the client map).
    pub(crate) fn failure(&self, ip: Option<IpAddr>, client_id: Option<&str>) {
        let now = Instant::now();
        let mut state = self.state.lock().expect("throttle lock");
        if let Some(ip) = ip {
            let n = state.0.fail(source(ip), self.window, self.cap, now);
            if n == self.limit {
                tracing::warn!(source = %ip, failures = n, "OAuth2 token endpoint: too many failed client authentications from this source; refusing it for the rest of the window");
            }
        }
        if let Some(id) = client_id {
            let n = state.1.fail(id.to_string(), self.window, self.cap, now);
            if n == self.limit {
                tracing::warn!(client_id = %id, failures = n, "OAuth2 token endpoint: too many failed authentications for this client id");
            }
        }
    }

    #[cfg(test)]
    pub(crate) fn tracked(&self) -> (usize, usize) {
        let state = self.state.lock().expect("throttle lock");
        (state.0.map.len(), state.1.map.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_is_counted_per_64_and_mapped_v4_as_v4() {
        let a: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(source(a), source(b));
        assert_ne!(source(a), source(c));
        assert_eq!(source("::ffff:10.0.0.1".parse().unwrap()), source("10.0.0.1".parse().unwrap()));
    }

    #[test]
    fn the_maps_stay_bounded() {
        let t = Throttle::new(3, Duration::from_secs(60), 50);
        for i in 0..500u32 {
            let ip = IpAddr::from(i.to_be_bytes());
            t.failure(Some(ip), Some(&format!("client{i}")));
        }
        assert_eq!(t.tracked(), (50, 50));
        // The newest entries survive the eviction of the oldest.
        let last = IpAddr::from(499u32.to_be_bytes());
        t.failure(Some(last), None);
        t.failure(Some(last), None);
        assert!(t.source_blocked(Some(last)));
    }

    #[test]
    fn windows_end() {
        let t = Throttle::new(2, Duration::from_millis(50), 10);
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        t.failure(Some(ip), Some("c"));
        t.failure(Some(ip), Some("c"));
        assert!(t.source_blocked(Some(ip)));
        assert!(t.client_blocked("c", Some(ip)));
        assert!(t.client_blocked("c", None));
        assert!(!t.client_blocked("c", Some("10.0.0.2".parse().unwrap())));
        std::thread::sleep(Duration::from_millis(60));
        assert!(!t.source_blocked(Some(ip)));
        assert!(!t.client_blocked("c", Some(ip)));
    }
}
