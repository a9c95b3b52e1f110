//! The Microsoft hosts iocd answers for when a client's HTTPS proxy points at it.

pub use iocd_auth::entra::{is_login_host, LOGIN_HOSTS};

/// The Defender API's hosts: the current, the older and the legacy name, the regional variants
/// of each, and the US Government (GCC, GCC High and DoD) hosts. See
/// reference/indicators-api.md §1 and docs/compatibility.md.
pub const API_HOSTS: &[&str] = &[
    "api.security.microsoft.com",
    "api.securitycenter.microsoft.com",
    "api.securitycenter.windows.com",
    // Regional servers "closer to your geo location".
    "us.api.security.microsoft.com",
    "eu.api.security.microsoft.com",
    "uk.api.security.microsoft.com",
    "au.api.security.microsoft.com",
    "swa.api.security.microsoft.com",
    "ina.api.security.microsoft.com",
    "aea.api.security.microsoft.com",
    // Older regional names.
    "api-us.securitycenter.microsoft.com",
    "api-eu.securitycenter.microsoft.com",
    "api-uk.securitycenter.microsoft.com",
    "api-au.securitycenter.microsoft.com",
    "api-us.security.microsoft.com",
    "api-eu.security.microsoft.com",
    "api-uk.security.microsoft.com",
    "api-au.security.microsoft.com",
    // US Government: GCC, then GCC High and DoD.
    "api-gcc.securitycenter.microsoft.us",
    "api-gcc.security.microsoft.us",
    "api-gov.securitycenter.microsoft.us",
    "api-gov.security.microsoft.us",
];

/// The port a CONNECT may name: these hosts are only ever called over HTTPS.
pub const HTTPS_PORT: u16 = 443;

/// Whether iocd answers for `host` when a client tunnels to it through iocd.
pub fn is_intercepted_host(host: &str) -> bool {
    contains(LOGIN_HOSTS, host) || contains(API_HOSTS, host)
}

fn contains(list: &[&str], host: &str) -> bool {
    let host = host.strip_suffix('.').unwrap_or(host);
    list.iter().any(|known| known.eq_ignore_ascii_case(host))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn microsoft_hosts_are_intercepted_in_any_case() {
        assert!(is_intercepted_host("login.microsoftonline.com"));
        assert!(is_intercepted_host("LOGIN.windows.net"));
        assert!(is_intercepted_host("api.securitycenter.microsoft.com."));
        assert!(is_intercepted_host("ina.api.security.microsoft.com"));
        assert!(is_intercepted_host("api-gov.securitycenter.microsoft.us"));
        assert!(is_login_host("sts.windows.net"));
        assert!(!is_login_host("api.security.microsoft.com"));
    }

    #[test]
    fn other_hosts_are_not() {
        for host in [
            "example.com",
            "microsoftonline.com",
            "evil-login.microsoftonline.com",
            "login.microsoftonline.com.evil.example",
            "graph.microsoft.com",
            "",
        ] {
            assert!(!is_intercepted_host(host), "{host}");
        }
    }
}
