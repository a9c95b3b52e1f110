//! Connections that hold the server without using it, against the real binary: thousands of idle
//! connections under a low descriptor limit, silent clients on the HTTPS listener and in CONNECT
//! tunnels. (Slow headers, idle keep-alives and stalled bodies on the plain listener are
//! `iocd-server`'s `hostile` tests.)

use std::time::{Duration, Instant};

use iocd_testkit::{IocdProcess, ScratchDatabase};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::iocd;

/// Reads until the server closes the connection (or resets it); `None` if it is still open
/// after `within`.
async fn closed_within(stream: &mut TcpStream, within: Duration) -> Option<Vec<u8>> {
    let mut seen = Vec::new();
    let read = tokio::time::timeout(within, async {
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => seen.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    read.ok().map(|()| seen)
}

fn open_descriptors(server: &IocdProcess) -> usize {
    std::fs::read_dir(format!("/proc/{}/fd", server.pid()))
        .map(|entries| entries.count())
        .unwrap_or(0)
}

/// Under `ulimit -n 640` (soft and hard: the server cannot raise it), 2,000 idle connections
/// once made accept fail with "Too many open files" and `/health` go dark. Now the cap stays
/// below the limit and each new connection evicts the oldest idle one.
#[tokio::test]
async fn two_thousand_idle_connections_leave_health_answering() {
    // This process holds the 2,000 client ends.
    rlimit::increase_nofile_limit(u64::MAX).expect("raise the test's descriptor limit");
    let database = ScratchDatabase::sqlite();
    let server = iocd()
        .serve()
        .database(&database.url)
        .ulimit("-n 640")
        .args(&["--dev-app", "false"])
        .start()
        .await;
    let mut idle = Vec::new();
    for _ in 0..2_000 {
        let connect = TcpStream::connect(server.addr());
        if let Ok(Ok(stream)) = tokio::time::timeout(Duration::from_secs(2), connect).await {
            idle.push(stream);
        }
    }
    assert!(
        idle.len() >= 1_500,
        "only {} connections opened",
        idle.len()
    );
    let client = reqwest::Client::new();
    for _ in 0..5 {
        let started = Instant::now();
        let health = client
            .get(server.url("/health"))
            .timeout(Duration::from_secs(5))
            .send()
            .await
            .unwrap_or_else(|e| panic!("/health went dark: {e}\n{}", server.output()));
        assert_eq!(health.status(), 200);
        assert!(started.elapsed() < Duration::from_secs(3));
    }
    let descriptors = open_descriptors(&server);
    assert!(descriptors < 640, "{descriptors} descriptors open");
    // The log goes to a file, so it has no colours to strip.
    let output = server.output();
    assert!(
        !output.contains('\x1b'),
        "escape codes in a log file: {output}"
    );
    assert!(
        output.contains("max_connections=512"),
        "the cap is the limit less the reserve: {output}"
    );
    drop(idle);
}

/// The soft descriptor limit is raised to the hard one at start.
#[tokio::test]
async fn the_soft_descriptor_limit_is_raised_to_the_hard_one() {
    let database = ScratchDatabase::sqlite();
    let server = iocd()
        .serve()
        .database(&database.url)
        .ulimit("-Sn 256")
        .args(&["--dev-app", "false"])
        .start()
        .await;
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", server.pid())).unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .expect("a descriptor limit");
    let figures: Vec<&str> = line.split_whitespace().skip(3).take(2).collect();
    assert_eq!(figures[0], figures[1], "soft = hard: {line}");
    assert_ne!(figures[0], "256", "{line}");
}

/// A client that connects and says nothing, to the HTTPS listener or inside a CONNECT tunnel,
/// is cut off after the header read timeout, as on the plain listener.
#[tokio::test]
async fn silent_clients_of_the_https_listener_and_of_tunnels_are_cut_off() {
    let database = ScratchDatabase::sqlite();
    let https_port = iocd_testkit::free_port();
    let server = iocd()
        .serve()
        .database(&database.url)
        .args(&["--https-listen", &format!("127.0.0.1:{https_port}")])
        .args(&["--dev-app", "false", "--header-read-timeout-secs", "1"])
        .args(&["--idle-timeout-secs", "2"])
        .start()
        .await;
    let bound = Duration::from_secs(5);

    // The HTTPS listener: no ClientHello.
    let mut silent = TcpStream::connect(("127.0.0.1", https_port)).await.unwrap();
    assert!(
        closed_within(&mut silent, bound).await.is_some(),
        "a silent TLS client is still connected"
    );

    // A tunnel: CONNECT answered 200, then nothing.
    let mut tunnel = TcpStream::connect(server.addr()).await.unwrap();
    tunnel
        .write_all(b"CONNECT api.securitycenter.microsoft.com:443 HTTP/1.1\r\nHost: api.securitycenter.microsoft.com:443\r\n\r\n")
        .await
        .unwrap();
    let answer = closed_within(&mut tunnel, bound)
        .await
        .expect("a silent tunnel is still open");
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 200 "), "{answer}");

    // The plain listener: headers a byte at a time.
    let mut slow = TcpStream::connect(server.addr()).await.unwrap();
    let started = Instant::now();
    let mut closed = false;
    for byte in
        b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa".iter()
    {
        if slow.write_all(&[*byte]).await.is_err() {
            closed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        closed || closed_within(&mut slow, bound).await.is_some(),
        "slow headers still being read"
    );
    assert!(started.elapsed() < Duration::from_secs(8));
}
