//! Validation and normalisation of `indicatorValue` per `indicatorType`.
//!
//! The stored value keeps the submitter's spelling (the real service preserves case); the
//! *key* returned here is the normalised form used for upsert matching, so that
//! `ABCD…`/`abcd…`, `Example.COM.`/`example.com` or `2001:DB8:0:0:0:0:0:1`/`2001:db8::1`
//! are one indicator.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::enums::IndicatorType;
use crate::error::{ErrorCode, ValidationError};

/// Longest URL accepted. Browsers handle far longer ones, but a TI indicator that long is
/// almost always an error (a pasted page, a base64 blob) and would bloat indexes.
pub const MAX_URL_LEN: usize = 4096;
const MAX_DOMAIN_LEN: usize = 253;
const MAX_LABEL_LEN: usize = 63;

/// Validates `raw` (already trimmed) for `ty` and returns the normalised upsert key.
pub fn normalise(ty: IndicatorType, raw: &str) -> Result<String, ValidationError> {
    match ty {
        IndicatorType::FileMd5
        | IndicatorType::FileSha1
        | IndicatorType::FileSha256
        | IndicatorType::CertificateThumbprint => hash_key(ty, raw),
        IndicatorType::IpAddress => ip_key(raw),
        IndicatorType::DomainName => domain_key(raw),
        IndicatorType::Url => url_key(raw),
    }
}

fn hash_key(ty: IndicatorType, raw: &str) -> Result<String, ValidationError> {
    let expected = ty.hex_len().expect("hash types have a length");
    let fail = |why: String| {
        ValidationError::new(
            ErrorCode::InvalidHashValue,
            "indicatorValue",
            format!("Hash value {raw} in indicatorValue is invalid: {why}"),
        )
    };
    if let Some(bad) = raw.chars().find(|c| !c.is_ascii_hexdigit()) {
        return Err(fail(format!(
            "'{bad}' is not a hexadecimal digit; a {ty} is {expected} hexadecimal characters."
        )));
    }
    if raw.len() != expected {
        return Err(fail(format!(
            "a {ty} is {expected} hexadecimal characters, got {}.",
            raw.len()
        )));
    }
    Ok(raw.to_ascii_lowercase())
}

fn ip_key(raw: &str) -> Result<String, ValidationError> {
    let ip = canonical_ip(raw)?;
    if let Some(reason) = non_public_reason(ip) {
        return Err(ip_error(
            raw,
            &format!(
                "{reason} addresses are internal; only public (external) IPs can be indicators."
            ),
        ));
    }
    Ok(ip.to_string())
}

fn ip_error(raw: &str, why: &str) -> ValidationError {
    ValidationError::new(
        ErrorCode::InvalidIpAddress,
        "indicatorValue",
        format!("IP address {raw} in indicatorValue is invalid: {why}"),
    )
}

/// Parses one address into its canonical form: the comparison form of the upsert key, also
/// used for match observables (which, unlike indicators, may be internal addresses).
/// IPv4-mapped IPv6 (`::ffff:8.8.8.8`) is the same host as its IPv4 form.
pub fn canonical_ip(raw: &str) -> Result<IpAddr, ValidationError> {
    let fail = |why: &str| ip_error(raw, why);
    if raw.contains('/') {
        return Err(fail(
            "CIDR notation is not supported; submit single IP addresses.",
        ));
    }
    if raw.contains('*') || (raw.contains('-') && !raw.contains(':')) {
        return Err(fail(
            "IP ranges and wildcards are not supported; submit single IP addresses.",
        ));
    }
    let ip: IpAddr = raw.parse().map_err(|_| {
        fail("expected a single IPv4 (8.8.8.8) or IPv6 (2001:4860:4860::8888) address.")
    })?;
    Ok(ip.to_canonical())
}

/// Why an address is not public, or `None` if it is. Documentation ranges (TEST-NET,
/// 2001:db8::/32) are accepted on purpose: they are not anyone's internal network and are what
/// examples and tests use.
pub fn non_public_reason(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => non_public_v4(v4),
        IpAddr::V6(v6) => non_public_v6(v6),
    }
}

fn non_public_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, _, _] = ip.octets();
    if ip.is_unspecified() || a == 0 {
        Some("'this network' (0.0.0.0/8)")
    } else if ip.is_loopback() {
        Some("loopback (127.0.0.0/8)")
    } else if ip.is_private() {
        Some("private (RFC 1918)")
    } else if ip.is_link_local() {
        Some("link-local (169.254.0.0/16)")
    } else if a == 100 && (64..128).contains(&b) {
        Some("carrier-grade NAT (100.64.0.0/10)")
    } else if ip.is_broadcast() {
        Some("broadcast")
    } else if ip.is_multicast() {
        Some("multicast (224.0.0.0/4)")
    } else if a >= 240 {
        Some("reserved (240.0.0.0/4)")
    } else {
        None
    }
}

fn non_public_v6(ip: Ipv6Addr) -> Option<&'static str> {
    let first = ip.segments()[0];
    if ip.is_unspecified() {
        Some("unspecified (::)")
    } else if ip.is_loopback() {
        Some("loopback (::1)")
    } else if first & 0xfe00 == 0xfc00 {
        Some("unique local (fc00::/7)")
    } else if first & 0xffc0 == 0xfe80 {
        Some("link-local (fe80::/10)")
    } else if ip.is_multicast() {
        Some("multicast (ff00::/8)")
    } else {
        None
    }
}

fn domain_key(raw: &str) -> Result<String, ValidationError> {
    let fail = |why: &str| {
        ValidationError::new(
            ErrorCode::InvalidDomainName,
            "indicatorValue",
            format!("Domain name {raw} in indicatorValue is invalid: {why}"),
        )
    };
    if raw.contains("://") || raw.contains('/') {
        return Err(fail(
            "a domain has no scheme or path; submit it with indicatorType Url instead.",
        ));
    }
    if raw.contains('*') {
        return Err(fail(
            "wildcards are not supported; a domain indicator already covers its subdomains.",
        ));
    }
    if raw.contains(':') || raw.parse::<IpAddr>().is_ok() {
        return Err(fail(
            "ports and IP addresses are not domain names (use indicatorType IpAddress for addresses).",
        ));
    }
    let without_root = raw.strip_suffix('.').unwrap_or(raw);
    // IDNA: Unicode names become their punycode form, the canonical key.
    let ascii = match url::Host::parse(without_root) {
        Ok(url::Host::Domain(d)) => d,
        Ok(_) => return Err(fail("IP addresses are not domain names.")),
        Err(_) => {
            return Err(fail(
                "it contains characters that are not allowed in a host name.",
            ))
        }
    };
    if ascii.len() > MAX_DOMAIN_LEN {
        return Err(fail("longer than 253 characters."));
    }
    let labels: Vec<&str> = ascii.split('.').collect();
    if labels.len() < 2 {
        return Err(fail(
            "expected at least two labels (example.com); single-label names are internal.",
        ));
    }
    for label in &labels {
        if label.is_empty() || label.len() > MAX_LABEL_LEN {
            return Err(fail("every label must be 1 to 63 characters long."));
        }
        // Underscores are legal in DNS (SRV, DMARC, some CDNs) and appear in real feeds.
        if !label
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
        {
            return Err(fail(
                "labels may contain only letters, digits, '-' and '_'.",
            ));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(fail("a label cannot start or end with '-'."));
        }
    }
    if labels
        .last()
        .is_some_and(|tld| tld.bytes().all(|c| c.is_ascii_digit()))
    {
        return Err(fail("the top-level label cannot be numeric."));
    }
    Ok(ascii)
}

fn url_key(raw: &str) -> Result<String, ValidationError> {
    let url = parse_absolute_url(raw).map_err(|why| {
        ValidationError::new(
            ErrorCode::InvalidUrl,
            "indicatorValue",
            format!("URL {raw} in indicatorValue is invalid: {why}"),
        )
    })?;
    Ok(url)
}

/// Checks that `raw` is an absolute http(s) URL with a host and returns its canonical
/// serialisation (lower-case scheme and host, punycode, default port dropped, `/` for an
/// empty path). Shared by `Url` indicators and `educateUrl`.
pub fn parse_absolute_url(raw: &str) -> Result<String, String> {
    if raw.len() > MAX_URL_LEN {
        return Err(format!("longer than {MAX_URL_LEN} characters."));
    }
    if raw.chars().any(char::is_whitespace) {
        return Err("URLs cannot contain white space.".to_string());
    }
    let url = match url::Url::parse(raw) {
        Ok(u) => u,
        Err(url::ParseError::RelativeUrlWithoutBase) => {
            return Err(
                "expected an absolute URL with a scheme, such as https://example.com/path (use indicatorType DomainName for a bare host)."
                    .to_string(),
            )
        }
        Err(e) => return Err(format!("{e}.")),
    };
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!(
            "the scheme '{}' is not supported; use http or https.",
            url.scheme()
        ));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err("the URL has no host.".to_string());
    }
    Ok(url.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use IndicatorType::*;

    #[test]
    fn hashes_need_exact_hex_length() {
        assert_eq!(
            normalise(FileSha1, "220E7D15B011D7FAC48F2BD61114DB1022197F7F").unwrap(),
            "220e7d15b011d7fac48f2bd61114db1022197f7f"
        );
        assert!(normalise(FileMd5, &"a".repeat(32)).is_ok());
        assert!(normalise(FileSha256, &"a".repeat(64)).is_ok());
        assert!(normalise(CertificateThumbprint, &"b".repeat(40)).is_ok());
        let err = normalise(FileSha256, &"a".repeat(63)).unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidHashValue);
        assert!(err.message.contains("64"), "{}", err.message);
        assert!(normalise(FileMd5, &"g".repeat(32)).is_err());
    }

    #[test]
    fn ips_single_public_only() {
        assert_eq!(normalise(IpAddress, "8.8.8.8").unwrap(), "8.8.8.8");
        assert_eq!(
            normalise(IpAddress, "2001:4860:4860:0:0:0:0:8888").unwrap(),
            "2001:4860:4860::8888"
        );
        assert_eq!(normalise(IpAddress, "::ffff:8.8.4.4").unwrap(), "8.8.4.4");
        let cidr = normalise(IpAddress, "8.8.8.0/24").unwrap_err();
        assert_eq!(cidr.code, ErrorCode::InvalidIpAddress);
        assert!(cidr.message.contains("CIDR"));
        assert!(normalise(IpAddress, "8.8.8.1-8.8.8.9")
            .unwrap_err()
            .message
            .contains("ranges"));
        for internal in [
            "10.1.2.3",
            "192.168.0.1",
            "172.16.5.4",
            "127.0.0.1",
            "169.254.1.1",
            "100.64.0.1",
            "fd00::1",
            "fe80::1",
            "::1",
            "224.0.0.1",
        ] {
            let err = normalise(IpAddress, internal).unwrap_err();
            assert!(
                err.message.contains("internal"),
                "{internal}: {}",
                err.message
            );
        }
        assert!(normalise(IpAddress, "8.8.8").is_err());
    }

    #[test]
    fn domains_idn_and_shape() {
        assert_eq!(
            normalise(DomainName, "Example.COM.").unwrap(),
            "example.com"
        );
        assert_eq!(
            normalise(DomainName, "bücher.de").unwrap(),
            "xn--bcher-kva.de"
        );
        assert!(normalise(DomainName, "https://example.com")
            .unwrap_err()
            .message
            .contains("Url"));
        assert!(normalise(DomainName, "localhost").is_err());
        assert!(normalise(DomainName, "*.example.com").is_err());
        assert!(normalise(DomainName, "exa mple.com").is_err());
        assert!(normalise(DomainName, "-bad.com").is_err());
        assert!(normalise(DomainName, "1.2.3.4").is_err());
        assert!(normalise(DomainName, &format!("{}.com", "a".repeat(64))).is_err());
    }

    #[test]
    fn urls_absolute_http() {
        assert_eq!(
            normalise(Url, "HTTP://Google.com").unwrap(),
            "http://google.com/"
        );
        assert_eq!(
            normalise(Url, "https://example.com:443/Path?q=1").unwrap(),
            "https://example.com/Path?q=1"
        );
        assert!(normalise(Url, "example.com/path")
            .unwrap_err()
            .message
            .contains("absolute"));
        assert!(normalise(Url, "ftp://example.com/x")
            .unwrap_err()
            .message
            .contains("scheme"));
        assert_eq!(
            normalise(Url, "notaurl").unwrap_err().code,
            ErrorCode::InvalidUrl
        );
    }
}
