//! Connection limits: slow and idle clients are dropped while others are served; connections over
//! the maximum wait.

use super::*;

// ---------------------------------------------------------------------------------------------
// Connection limits.

#[test]
fn slow_header_client_is_dropped_while_others_are_served() {
    let n = Nimbus::start_with(&Backend::Sqlite, &["--header-timeout", "2"]);
    let mut slow = connect(&n);
    // And one that connects and says nothing at all.
    let mut silent = connect(&n);
    let started = Instant::now();
    // A head that never ends: one byte a second.
    let trickle = b"GET /_nimbus/health HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    let mut closed_after = None;
    let mut served_meanwhile = 0;
    let mut got = Vec::new();
    for b in trickle {
        if slow.write_all(&[*b]).is_err() {
            closed_after = Some(started.elapsed());
            break;
        }
        // Meanwhile a normal client on another connection is answered.
        let (status, body) = n.http("GET", "/_nimbus/health", b"", None);
        assert_eq!(status, 200, "{body}");
        served_meanwhile += 1;
        if closed_within(&mut slow, Duration::from_secs(1), &mut got) {
            closed_after = Some(started.elapsed());
            break;
        }
        if started.elapsed() > Duration::from_secs(14) {
            break;
        }
    }
    let closed_after = closed_after.expect("a client trickling its request head was never dropped");
    assert!(
        closed_after >= Duration::from_millis(1500) && closed_after < Duration::from_secs(8),
        "dropped after {closed_after:?}, with --header-timeout 2"
    );
    assert!(served_meanwhile >= 1, "no other request was served while the slow one waited");
    assert!(closed_within(&mut silent, Duration::from_secs(1), &mut got), "a silent connection was never dropped");
    assert!(!String::from_utf8_lossy(&got).contains("200 OK"), "the trickled head was never whole");
    let (status, _) = n.http("GET", "/_nimbus/health", b"", None);
    assert_eq!(status, 200, "the server still serves after dropping the slow client");
}

#[test]
fn idle_keep_alive_connection_is_closed() {
    let n = Nimbus::start_with(&Backend::Sqlite, &["--idle-timeout", "1", "--header-timeout", "10"]);
    let mut c = connect(&n);
    let req = head("GET", "/_nimbus/health", &[("host".into(), host(&n))]);
    c.write_all(&req).unwrap();
    let first = read_answer(&mut c, Duration::from_secs(10)).expect("an answer");
    assert_eq!(first.status, 200);
    // Within the idle timeout the connection is kept alive for the next request.
    std::thread::sleep(Duration::from_millis(300));
    c.write_all(&req).unwrap();
    let second = read_answer(&mut c, Duration::from_secs(10)).expect("the connection is kept alive");
    assert_eq!(second.status, 200);
    let idle_since = Instant::now();
    let mut got = Vec::new();
    assert!(closed_within(&mut c, Duration::from_secs(6), &mut got), "an idle keep-alive connection stayed open");
    let after = idle_since.elapsed();
    assert!(after >= Duration::from_millis(500), "closed after {after:?}, before the 1 s idle timeout");
    assert!(got.is_empty(), "nothing is sent on an idle close: {:?}", String::from_utf8_lossy(&got));
}

/// Sends the head of `method path`, then its 1000-byte body ten bytes a second (100 s in all);
/// returns the answer (if one came within 12 s), how long it took, and whether the server then
/// closed the connection.
fn trickle_body(
    n: &Nimbus,
    method: &str,
    path: &str,
    mut headers: Vec<(String, String)>,
) -> (Option<Raw>, Duration, bool) {
    headers.push(("content-length".into(), "1000".into()));
    let mut c = connect(n);
    c.write_all(&head(method, path, &headers)).unwrap();
    let started = Instant::now();
    let mut answer = None;
    while started.elapsed() < Duration::from_secs(12) {
        if c.write_all(&[b' '; 10]).is_err() {
            break;
        }
        if let Some(a) = read_answer(&mut c, Duration::from_secs(1)) {
            answer = Some(a);
            break;
        }
    }
    let took = started.elapsed();
    let closed = closed_within(&mut c, Duration::from_secs(5), &mut Vec::new());
    (answer, took, closed)
}

#[test]
fn a_client_that_stops_reading_a_download_is_dropped() {
    let n = Nimbus::start_with(&Backend::Sqlite, &["--idle-timeout", "1"]);
    let work = tempfile::tempdir().unwrap();
    // Larger than what the sockets' buffers on both sides can hold.
    const SIZE: usize = 24 << 20;
    let src = work.path().join("big.bin");
    noise_file(&src, SIZE);
    n.ok(&["store", "mb", "s3://big"]);
    n.ok(&["store", "cp", src.to_str().unwrap(), "s3://big/big.bin"]);
    let path = "/_nimbus/v1/buckets/big/objects/big.bin";
    let h = signed_headers(&n, &n.signer(), "GET", path, "", &sha256_hex(b""));
    let mut c = connect(&n);
    c.write_all(&head("GET", path, &h)).unwrap();
    let mut first = [0u8; 1024];
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut got = c.read(&mut first).unwrap();
    assert!(String::from_utf8_lossy(&first[..got]).starts_with("HTTP/1.1 200"), "the download started");
    // Stop reading for a while: the server's writes stall and the connection is idle.
    std::thread::sleep(Duration::from_secs(4));
    let mut rest = Vec::new();
    closed_within(&mut c, Duration::from_secs(10), &mut rest);
    got += rest.len();
    assert!(got < SIZE, "the stalled download went on: {got} bytes of {SIZE} arrived after the pause");
    let (status, _) = n.http("GET", "/_nimbus/health", b"", None);
    assert_eq!(status, 200);
}

#[test]
fn slow_upload_gets_408() {
    let n = Nimbus::start_with(&Backend::Sqlite, &["--body-timeout", "2"]);
    n.ok(&["store", "mb", "s3://uploads"]);
    let path = "/_nimbus/v1/buckets/uploads/objects/slow.bin";
    let headers = signed_headers(&n, &n.signer(), "PUT", path, "", UNSIGNED_PAYLOAD);
    let (answer, took, closed) = trickle_body(&n, "PUT", path, headers);
    let answer = answer.expect("a trickled upload was not answered");
    assert_eq!(answer.status, 408, "{answer:?}");
    assert!(answer.body.contains("RequestTimeout") && answer.body.contains("--body-timeout"), "{}", answer.body);
    assert!(took < Duration::from_secs(8), "answered after {took:?}, with --body-timeout 2");
    // The connection is not reused for a half-read body, and nothing partial was stored.
    assert!(closed, "the connection stays open after the 408");
    assert_eq!(n.json(&["store", "ls", "s3://uploads/"]), json!([]));
    assert_eq!(
        std::fs::read_dir(n.data_dir().join("objects/uploads")).unwrap().count(),
        0,
        "no blob or temporary file"
    );

    // A JSON body is read whole before it is parsed: the same limit, the same answer, whether
    // its hash is signed or (botocore's way) left to be computed from the body.
    let path = "/_nimbus/v1/model-groups";
    let mut signed = signed_headers(&n, &n.signer(), "POST", path, "", &sha256_hex(&[b' '; 1000]));
    signed.push(("content-type".into(), "application/json".into()));
    let amz_date = sigv4::amz_date(time_now());
    let mut unstated = vec![("host".to_string(), host(&n)), ("x-amz-date".to_string(), amz_date.clone())];
    let auth =
        authorization(&n.signer(), "POST", path, &unstated, &sha256_hex(&[b' '; 1000]), &amz_date[..8], &amz_date);
    unstated.push(("authorization".into(), auth));
    for headers in [signed, unstated] {
        let (answer, took, _) = trickle_body(&n, "POST", path, headers);
        let answer = answer.expect("a trickled JSON body was not answered");
        assert_eq!(answer.status, 408, "{answer:?}");
        assert!(answer.body.contains("RequestTimeout"), "{}", answer.body);
        assert!(took < Duration::from_secs(8), "answered after {took:?}, with --body-timeout 2");
    }
    assert_eq!(n.json(&["models", "list"]), json!([]));
    let work = tempfile::tempdir().unwrap();
    let f = write_file(work.path(), "fast.bin", "fast");
    n.ok(&["store", "cp", f.to_str().unwrap(), "s3://uploads/fast.bin"]);
}

#[test]
fn connections_over_the_maximum_wait_and_are_served_after() {
    let n = Nimbus::start_with(&Backend::Sqlite, &["--max-connections", "2"]);
    let req = head("GET", "/_nimbus/health", &[("host".into(), host(&n))]);
    let mut open = Vec::new();
    for _ in 0..2 {
        let mut c = connect(&n);
        c.write_all(&req).unwrap();
        assert_eq!(read_answer(&mut c, Duration::from_secs(10)).expect("served").status, 200);
        open.push(c);
    }
    // The kernel queues the third connection; the server does not take it while two are open.
    let mut third = connect(&n);
    third.write_all(&req).unwrap();
    assert!(
        read_answer(&mut third, Duration::from_millis(1500)).is_none(),
        "a third connection was served while --max-connections 2 were open"
    );
    drop(open.remove(0));
    let answer = read_answer(&mut third, Duration::from_secs(10)).expect("the waiting connection is served");
    assert_eq!(answer.status, 200);
    // The connection still open is served as before.
    open[0].write_all(&req).unwrap();
    assert_eq!(read_answer(&mut open[0], Duration::from_secs(10)).expect("served").status, 200);
}
