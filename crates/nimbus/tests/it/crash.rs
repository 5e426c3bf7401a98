//! kill -9 in the middle of a stream of registrations: after restart the versions are
//! contiguous and every version's artifact is in the store, whole.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use sha2::Digest;

use crate::harness::{Nimbus, backends, bundle, http_to, time_now};

#[test]
fn kill_9_mid_registrations_leaves_contiguous_versions_with_whole_artifacts() {
    for backend in backends() {
        let mut n = Nimbus::start(&backend);
        let signer = n.signer();
        let stop = Arc::new(AtomicBool::new(false));
        let done = Arc::new(AtomicUsize::new(0));
        let writers: Vec<_> = (0..3)
            .map(|w| {
                let (endpoint, signer, stop, done) = (n.endpoint.clone(), signer.clone(), stop.clone(), done.clone());
                std::thread::spawn(move || {
                    let mut i = 0;
                    while !stop.load(Ordering::Relaxed) {
                        i += 1;
                        // Each body differs, so each import writes a new artifact object.
                        let body = bundle(0.5 + (w * 1000 + i) as f64 / 1e6);
                        let result = std::panic::catch_unwind(|| {
                            http_to(
                                &endpoint,
                                "POST",
                                "/_nimbus/v1/model-groups/g/imports",
                                body.as_bytes(),
                                Some(&signer),
                                time_now(),
                            )
                        });
                        match result {
                            Ok((201, _)) => {
                                done.fetch_add(1, Ordering::Relaxed);
                            }
                            _ => break,
                        }
                    }
                })
            })
            .collect();
        while done.load(Ordering::Relaxed) < 15 {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        n.kill9();
        stop.store(true, Ordering::Relaxed);
        for w in writers {
            let _ = w.join();
        }

        n.start_again();
        let versions = n.json(&["models", "list", "g"]);
        let mut numbers: Vec<i64> =
            versions.as_array().unwrap().iter().map(|v| v["version"].as_i64().unwrap()).collect();
        numbers.sort();
        let count = numbers.len() as i64;
        assert!(count >= 15, "{backend:?}: at least the acknowledged registrations survive, got {count}");
        assert_eq!(numbers, (1..=count).collect::<Vec<_>>(), "{backend:?}: versions are contiguous");
        assert_eq!(n.json(&["models", "describe", "g"])["version_count"], count, "the counter matches the rows");
        for v in versions.as_array().unwrap() {
            let uri = v["artifact"]["uri"].as_str().unwrap();
            let out = n.data_dir().join("check.json");
            n.ok(&["store", "cp", uri, out.to_str().unwrap()]);
            let bytes = std::fs::read(&out).unwrap();
            assert_eq!(hex::encode(sha2::Sha256::digest(&bytes)), v["artifact"]["sha256"].as_str().unwrap());
        }
        // And the server goes on numbering from there.
        let path = crate::harness::write_file(n.data_dir(), "next.json", &bundle(0.99));
        let next = n.json(&["models", "import", "g", path.to_str().unwrap()]);
        assert_eq!(next["version"], count + 1);
    }
}
