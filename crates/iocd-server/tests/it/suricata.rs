//! The Suricata dataset feeds, checked by Suricata itself: `suricata -T` accepts rules that load
//! them with `dataset:isset,…, load FILE`, and, since `-T` skips a bad rule silently,
//! `suricata -r` over a pcap written here shows the rules fire (an IP packet to a listed
//! address, and an HTTP download whose body's SHA-256 and MD5 are listed) and stay quiet for
//! traffic that is not listed.

use std::path::Path;
use std::process::Command;

use iocd_testkit::*;
use serde_json::{json, Value};
use sha2::Digest;

/// The downloaded file, its MD5 (`md5sum`) and its SHA-256.
const BODY: &[u8] = b"iocd: a file on the block list\n";
const BODY_MD5: &str = "50a6f60df3621e2caa9dcc5a9bfce9c4";

const RULES: &str = "\
alert ip any any -> any any (msg:\"iocd address\"; ip.dst; dataset:isset,iocd-ip, type ip, load iocd-ip.lst; sid:9000001; rev:1;)
alert http any any -> any any (msg:\"iocd file sha256\"; file.data; to_sha256; dataset:isset,iocd-sha256, type sha256, load iocd-sha256.lst; sid:9000002; rev:1;)
alert http any any -> any any (msg:\"iocd file md5\"; file.data; to_md5; dataset:isset,iocd-md5, type md5, load iocd-md5.lst; sid:9000003; rev:1;)
";

fn indicator(value: &str, ty: &str) -> Value {
    json!({"indicatorValue": value, "indicatorType": ty, "action": "Block", "title": "t",
           "description": "d"})
}

async fn feed(server: &TestServer, format: &str) -> String {
    let res = server
        .request(reqwest::Method::GET, &format!("/iocd/v1/feeds/{format}"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    res.text().await.unwrap()
}

async fn suricata_loads_the_datasets_and_its_rules_fire() {
    if Command::new("suricata").arg("-V").output().is_err() {
        eprintln!("skipping the Suricata check: suricata is not installed (.ci/run installs it from bookworm-backports)");
        return;
    }
    let server = TestServer::start().await;
    let sha256: String = sha2::Sha256::digest(BODY)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let items = vec![
        indicator("203.0.113.5", "IpAddress"),
        indicator("2001:db8::5", "IpAddress"),
        indicator(&sha256, "FileSha256"),
        indicator(BODY_MD5, "FileMd5"),
        indicator(&"a".repeat(64), "FileSha256"),
    ];
    let (status, body) = status_json(
        server
            .post_json("/api/indicators/import", &json!({ "Indicators": items }))
            .await,
    )
    .await;
    assert_eq!(status, 200, "{body}");

    let dir = tempfile::tempdir().unwrap();
    for (format, file) in [
        ("suricata-ip", "iocd-ip.lst"),
        ("suricata-sha256", "iocd-sha256.lst"),
        ("suricata-md5", "iocd-md5.lst"),
    ] {
        std::fs::write(dir.path().join(file), feed(&server, format).await).unwrap();
    }
    let rules = dir.path().join("iocd.rules");
    std::fs::write(&rules, RULES).unwrap();
    let logs = dir.path().join("log");
    std::fs::create_dir(&logs).unwrap();

    let test = suricata(&["-T"], &rules, &logs);
    assert!(
        test.status.success(),
        "suricata -T refused: {}",
        output(&test)
    );
    let text = output(&test);
    assert!(
        !text.contains("E: ") && !text.contains("Error"),
        "suricata -T complained: {text}"
    );

    let pcap = dir.path().join("traffic.pcap");
    std::fs::write(&pcap, capture()).unwrap();
    let run = suricata(&["-r", pcap.to_str().unwrap(), "-k", "none"], &rules, &logs);
    assert!(run.status.success(), "suricata -r failed: {}", output(&run));
    let fast = std::fs::read_to_string(logs.join("fast.log")).unwrap_or_default();
    let fired = |sid: &str| fast.lines().filter(|l| l.contains(sid)).count();
    assert_eq!(fired("[1:9000001:"), 2, "the two listed addresses: {fast}");
    assert!(
        fast.lines().all(|l| !l.contains("192.0.2.99")),
        "an unlisted address fired: {fast}"
    );
    assert_eq!(fired("[1:9000002:"), 1, "the body's SHA-256: {fast}");
    assert_eq!(fired("[1:9000003:"), 1, "the body's MD5: {fast}");
}

fn suricata(args: &[&str], rules: &Path, logs: &Path) -> std::process::Output {
    Command::new("suricata")
        .args(["-c", "/etc/suricata/suricata.yaml", "-S"])
        .arg(rules)
        .arg("-l")
        .arg(logs)
        .args(args)
        .output()
        .unwrap()
}

fn output(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

// A pcap file, written by hand: Ethernet, IPv4/IPv6, UDP and TCP with real checksums.

fn checksum(data: &[u8], mut sum: u32) -> u16 {
    for pair in data.chunks(2) {
        let word = u16::from_be_bytes([pair[0], *pair.get(1).unwrap_or(&0)]);
        sum += u32::from(word);
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

fn pseudo_sum(header: &[u8]) -> u32 {
    header
        .chunks(2)
        .map(|p| u32::from(u16::from_be_bytes([p[0], p[1]])))
        .sum()
}

fn ipv4(src: [u8; 4], dst: [u8; 4], proto: u8, payload: &[u8]) -> Vec<u8> {
    let mut h = vec![0x45, 0];
    h.extend(((20 + payload.len()) as u16).to_be_bytes());
    h.extend([0, 1, 0, 0, 64, proto, 0, 0]);
    h.extend(src);
    h.extend(dst);
    let c = checksum(&h, 0);
    h[10..12].copy_from_slice(&c.to_be_bytes());
    h.extend(payload);
    ethernet(0x0800, &h)
}

fn ipv6(src: [u8; 16], dst: [u8; 16], next: u8, payload: &[u8]) -> Vec<u8> {
    let mut h = vec![0x60, 0, 0, 0];
    h.extend((payload.len() as u16).to_be_bytes());
    h.extend([next, 64]);
    h.extend(src);
    h.extend(dst);
    h.extend(payload);
    ethernet(0x86dd, &h)
}

fn ethernet(ether_type: u16, packet: &[u8]) -> Vec<u8> {
    let mut f = vec![
        0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb,
    ];
    f.extend(ether_type.to_be_bytes());
    f.extend(packet);
    f
}

/// A UDP datagram with its checksum over the pseudo-header `pseudo` (addresses, protocol).
fn udp(pseudo: &[u8], sport: u16, dport: u16, data: &[u8]) -> Vec<u8> {
    let len = (8 + data.len()) as u16;
    let mut u = Vec::new();
    u.extend(sport.to_be_bytes());
    u.extend(dport.to_be_bytes());
    u.extend(len.to_be_bytes());
    u.extend([0, 0]);
    u.extend(data);
    let mut p = pseudo.to_vec();
    p.extend([0, 17]);
    p.extend(len.to_be_bytes());
    let c = checksum(&u, pseudo_sum(&p));
    u[6..8].copy_from_slice(&c.to_be_bytes());
    u
}

struct Tcp {
    client: [u8; 4],
    server: [u8; 4],
}

impl Tcp {
    const SYN: u8 = 0x02;
    const ACK: u8 = 0x10;
    const PSH: u8 = 0x08;
    const FIN: u8 = 0x01;

    fn segment(&self, to_server: bool, seq: u32, ack: u32, flags: u8, data: &[u8]) -> Vec<u8> {
        let (src, dst, sport, dport) = if to_server {
            (self.client, self.server, 40001u16, 80u16)
        } else {
            (self.server, self.client, 80, 40001)
        };
        let mut t = Vec::new();
        t.extend(sport.to_be_bytes());
        t.extend(dport.to_be_bytes());
        t.extend(seq.to_be_bytes());
        t.extend(ack.to_be_bytes());
        t.extend([5 << 4, flags, 0xff, 0xff, 0, 0, 0, 0]);
        t.extend(data);
        let mut p = src.to_vec();
        p.extend(dst);
        p.extend([0, 6]);
        p.extend((t.len() as u16).to_be_bytes());
        let c = checksum(&t, pseudo_sum(&p));
        t[16..18].copy_from_slice(&c.to_be_bytes());
        ipv4(src, dst, 6, &t)
    }
}

/// The traffic: UDP to two listed addresses (IPv4 and IPv6) and to an unlisted one, then an
/// HTTP download of [`BODY`].
fn capture() -> Vec<u8> {
    let client = [10, 0, 0, 1];
    let mut frames = Vec::new();
    for dst in [[203, 0, 113, 5], [192, 0, 2, 99]] {
        let mut pseudo = client.to_vec();
        pseudo.extend(dst);
        frames.push(ipv4(client, dst, 17, &udp(&pseudo, 40000, 53, b"hello")));
    }
    let src6: [u8; 16] = "2001:db8::1"
        .parse::<std::net::Ipv6Addr>()
        .unwrap()
        .octets();
    let dst6: [u8; 16] = "2001:db8::5"
        .parse::<std::net::Ipv6Addr>()
        .unwrap()
        .octets();
    let mut pseudo = src6.to_vec();
    pseudo.extend(dst6);
    frames.push(ipv6(src6, dst6, 17, &udp(&pseudo, 40000, 53, b"hello")));

    let tcp = Tcp {
        client,
        server: [198, 51, 100, 20],
    };
    let request = b"GET /file.bin HTTP/1.1\r\nHost: files.example\r\nUser-Agent: iocd-test\r\n\r\n";
    let mut response = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\n\r\n",
        BODY.len()
    )
    .into_bytes();
    response.extend(BODY);
    let (c, s) = (1000u32, 5000u32);
    let (req, resp) = (request.len() as u32, response.len() as u32);
    frames.extend([
        tcp.segment(true, c, 0, Tcp::SYN, b""),
        tcp.segment(false, s, c + 1, Tcp::SYN | Tcp::ACK, b""),
        tcp.segment(true, c + 1, s + 1, Tcp::ACK, b""),
        tcp.segment(true, c + 1, s + 1, Tcp::PSH | Tcp::ACK, request),
        tcp.segment(false, s + 1, c + 1 + req, Tcp::ACK, b""),
        tcp.segment(false, s + 1, c + 1 + req, Tcp::PSH | Tcp::ACK, &response),
        tcp.segment(true, c + 1 + req, s + 1 + resp, Tcp::ACK, b""),
        tcp.segment(true, c + 1 + req, s + 1 + resp, Tcp::FIN | Tcp::ACK, b""),
        tcp.segment(false, s + 1 + resp, c + 2 + req, Tcp::FIN | Tcp::ACK, b""),
        tcp.segment(true, c + 2 + req, s + 2 + resp, Tcp::ACK, b""),
    ]);

    // The classic pcap format: a global header (little-endian, Ethernet), then each frame.
    let mut out = Vec::new();
    out.extend(0xa1b2_c3d4u32.to_le_bytes());
    out.extend(2u16.to_le_bytes());
    out.extend(4u16.to_le_bytes());
    out.extend([0; 8]);
    out.extend(65535u32.to_le_bytes());
    out.extend(1u32.to_le_bytes());
    for (i, frame) in frames.iter().enumerate() {
        out.extend(1_700_000_000u32.to_le_bytes());
        out.extend((i as u32 * 1000).to_le_bytes());
        out.extend((frame.len() as u32).to_le_bytes());
        out.extend((frame.len() as u32).to_le_bytes());
        out.extend(frame);
    }
    out
}

on_every_backend!(suricata_loads_the_datasets_and_its_rules_fire);
