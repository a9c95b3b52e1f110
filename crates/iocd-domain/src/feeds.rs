//! Feeds for enforcement points: which indicators a feed carries and how each becomes lines of
//! a Palo Alto external dynamic list, a FortiGate threat feed, a DNS Response Policy Zone, a
//! Suricata dataset, a Zeek Intel file or plain text. Pure: the server walks the match index,
//! asks [`FeedRequest::selects`] and [`FeedRequest::render`], and streams the text. The choices
//! are in docs/compatibility.md ("Feeds").

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashSet};
use std::net::IpAddr;

use crate::enums::{Action, IndicatorType, Severity};
use crate::error::ValidationError;
use crate::matching::{is_blocking, ChunkCursor, IndexedIndicator, LayoutChanged, MatchIndex};
use crate::time::Timestamp;

/// Indicators read from the index per lock (a chunk of the feed).
pub const CHUNK: usize = 4096;

/// Which entries a pass over the index writes: an RPZ writes its passthrus first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pass {
    All,
    AllowedOnly,
    NotAllowed,
}

/// A feed's format, as named in `GET /iocd/v1/feeds/{format}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FeedFormat {
    EdlIp,
    EdlDomain,
    EdlUrl,
    FortigateIp,
    FortigateDomain,
    FortigateUrl,
    FortigateHash,
    Rpz,
    SuricataSha256,
    SuricataMd5,
    SuricataIp,
    ZeekIntel,
    Text(IndicatorType),
}

/// What an RPZ does with a blocked name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RpzPolicy {
    NxDomain,
    NoData,
    Drop,
    /// Rewrite to this name (a walled garden).
    Cname(String),
}

impl RpzPolicy {
    fn target(&self) -> String {
        match self {
            RpzPolicy::NxDomain => ".".to_string(),
            RpzPolicy::NoData => "*.".to_string(),
            RpzPolicy::Drop => "rpz-drop.".to_string(),
            RpzPolicy::Cname(name) => format!("{name}."),
        }
    }
}

pub const FEED_FORMATS: &str = "edl-ip, edl-domain, edl-url, fortigate-ip, fortigate-domain, \
    fortigate-url, fortigate-hash, rpz, suricata-sha256, suricata-md5, suricata-ip, zeek-intel, \
    text-<indicatorType> (text-FileSha256, text-DomainName, ...)";

impl FeedFormat {
    pub fn parse(name: &str) -> Result<FeedFormat, ValidationError> {
        use FeedFormat::*;
        let format = match name.to_ascii_lowercase().as_str() {
            "edl-ip" => EdlIp,
            "edl-domain" => EdlDomain,
            "edl-url" => EdlUrl,
            "fortigate-ip" => FortigateIp,
            "fortigate-domain" => FortigateDomain,
            "fortigate-url" => FortigateUrl,
            "fortigate-hash" => FortigateHash,
            "rpz" => Rpz,
            "suricata-sha256" => SuricataSha256,
            "suricata-md5" => SuricataMd5,
            "suricata-ip" => SuricataIp,
            "zeek-intel" => ZeekIntel,
            other => {
                let ty = other.strip_prefix("text-").and_then(|t| {
                    IndicatorType::ALL
                        .iter()
                        .find(|ty| ty.as_str().eq_ignore_ascii_case(t))
                        .copied()
                });
                match ty {
                    Some(ty) => Text(ty),
                    None => {
                        return Err(ValidationError::invalid_input(
                            "format",
                            format!("Unknown feed format '{name}'. Formats: {FEED_FORMATS}."),
                        ))
                    }
                }
            }
        };
        Ok(format)
    }

    /// The indicator types the format can carry.
    pub fn types(self) -> &'static [IndicatorType] {
        use IndicatorType::*;
        match self {
            FeedFormat::EdlIp | FeedFormat::FortigateIp | FeedFormat::SuricataIp => &[IpAddress],
            FeedFormat::EdlDomain | FeedFormat::FortigateDomain => &[DomainName],
            FeedFormat::EdlUrl | FeedFormat::FortigateUrl => &[Url],
            FeedFormat::FortigateHash => &[FileSha256, FileSha1, FileMd5],
            FeedFormat::Rpz => &[DomainName, IpAddress],
            FeedFormat::SuricataSha256 => &[FileSha256],
            FeedFormat::SuricataMd5 => &[FileMd5],
            FeedFormat::ZeekIntel => &[
                IpAddress,
                DomainName,
                Url,
                FileSha256,
                FileSha1,
                FileMd5,
                CertificateThumbprint,
            ],
            FeedFormat::Text(ty) => match ty {
                IpAddress => &[IpAddress],
                DomainName => &[DomainName],
                Url => &[Url],
                FileSha256 => &[FileSha256],
                FileSha1 => &[FileSha1],
                FileMd5 => &[FileMd5],
                CertificateThumbprint => &[CertificateThumbprint],
            },
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            FeedFormat::Rpz => "text/dns; charset=utf-8",
            FeedFormat::ZeekIntel => "text/tab-separated-values; charset=utf-8",
            _ => "text/plain; charset=utf-8",
        }
    }
}

/// One indicator as a feed sees it.
#[derive(Debug, Clone, Copy)]
pub struct FeedEntry<'a> {
    pub indicator_type: IndicatorType,
    /// The normalised value; URLs as `host/path` (no scheme).
    pub value: &'a str,
    pub action: Action,
    pub severity: Severity,
}

/// A parsed feed request: the format and its query options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedRequest {
    pub format: FeedFormat,
    /// Actions carried; by default the blocking ones (and `Allowed` as passthru in an RPZ).
    pub actions: Vec<Action>,
    pub device_group: Option<String>,
    pub min_severity: Option<Severity>,
    /// Types carried (within the format's).
    pub types: Vec<IndicatorType>,
    /// Keep only the `max` most important entries (severity, then recency).
    pub max: Option<usize>,
    /// Domain lists: add `*.domain` lines (default true).
    pub subdomains: bool,
    pub policy: RpzPolicy,
}

fn invalid(field: &str, message: String) -> ValidationError {
    ValidationError::invalid_input(field, message)
}

impl FeedRequest {
    /// Parses the format and the query (`action`, `deviceGroup`, `minSeverity`, `type`, `max`,
    /// `subdomains`, `policy`); lists are comma-separated.
    pub fn parse(format: &str, query: &[(String, String)]) -> Result<FeedRequest, ValidationError> {
        let format = FeedFormat::parse(format)?;
        let mut request = FeedRequest {
            format,
            actions: Action::ALL
                .iter()
                .copied()
                .filter(|a| is_blocking(*a) || (format == FeedFormat::Rpz && *a == Action::Allowed))
                .collect(),
            device_group: None,
            min_severity: None,
            types: format.types().to_vec(),
            max: None,
            subdomains: true,
            policy: RpzPolicy::NxDomain,
        };
        for (name, value) in query {
            let items = || value.split(',').map(str::trim).filter(|s| !s.is_empty());
            match name.as_str() {
                "action" => {
                    request.actions = items()
                        .map(|a| Action::parse("action", a))
                        .collect::<Result<_, _>>()?;
                }
                "deviceGroup" => {
                    request.device_group =
                        Some(value.trim().to_string()).filter(|g| !g.is_empty())
                }
                "minSeverity" => request.min_severity = Some(Severity::parse("minSeverity", value)?),
                "type" => {
                    let wanted: Vec<IndicatorType> = items()
                        .map(|t| IndicatorType::parse("type", t))
                        .collect::<Result<_, _>>()?;
                    if let Some(bad) = wanted.iter().find(|t| !format.types().contains(t)) {
                        return Err(invalid(
                            "type",
                            format!("Invalid input type: this feed carries no {bad} indicators."),
                        ));
                    }
                    request.types = wanted;
                }
                "max" => {
                    request.max = Some(value.parse::<usize>().ok().filter(|n| *n > 0).ok_or_else(
                        || invalid("max", format!("Invalid input max: '{value}' is not a positive number.")),
                    )?)
                }
                "subdomains" => {
                    request.subdomains = match value.to_ascii_lowercase().as_str() {
                        "true" => true,
                        "false" => false,
                        _ => {
                            return Err(invalid(
                                "subdomains",
                                format!("Invalid input subdomains: '{value}' is not true or false."),
                            ))
                        }
                    }
                }
                "policy" => request.policy = parse_policy(value)?,
                other => {
                    return Err(invalid(
                        other,
                        format!("Invalid input: '{other}' is not a feed option (action, deviceGroup, minSeverity, type, max, subdomains, policy)."),
                    ))
                }
            }
        }
        Ok(request)
    }

    /// Whether the feed carries this entry (the precedence check is the index's).
    pub fn selects(&self, entry: &FeedEntry<'_>) -> bool {
        self.types.contains(&entry.indicator_type)
            && self.actions.contains(&entry.action)
            && self
                .min_severity
                .is_none_or(|min| entry.severity as u8 >= min as u8)
    }

    /// The feed's first lines; `serial` is the SOA serial of an RPZ, `generated` a comment.
    pub fn header(&self, serial: u32, generated: &str) -> String {
        match self.format {
            FeedFormat::Rpz => format!(
                "; iocd response policy zone, generated {generated}\n\
                 $TTL 300\n\
                 @ IN SOA localhost. hostmaster.localhost. ( {serial} 3600 600 86400 300 )\n\
                 @ IN NS localhost.\n"
            ),
            FeedFormat::ZeekIntel => {
                "#fields\tindicator\tindicator_type\tmeta.source\tmeta.desc\n".to_string()
            }
            _ => String::new(),
        }
    }

    /// Appends the lines of one entry to `out`.
    pub fn render(&self, entry: &FeedEntry<'_>, out: &mut String) {
        self.render_lines(entry, true, out);
    }

    /// As [`FeedRequest::render`]; `slash_line` says whether an `edl-url` entry without a
    /// trailing `/` may add its `host/path/` line (not when another indicator decides that URL:
    /// it is listed itself, or it is not blocked).
    fn render_lines(&self, entry: &FeedEntry<'_>, slash_line: bool, out: &mut String) {
        use std::fmt::Write;
        let v = entry.value;
        match self.format {
            FeedFormat::EdlDomain | FeedFormat::FortigateDomain => {
                let _ = writeln!(out, "{v}");
                if self.subdomains {
                    let _ = writeln!(out, "*.{v}");
                }
            }
            FeedFormat::EdlUrl => {
                let _ = writeln!(out, "{v}");
                // PAN matches an entry without a trailing slash exactly; `host/path/` also
                // covers what lies under the path, as the indicator does.
                if slash_line && !v.ends_with('/') && !v.contains('?') {
                    let _ = writeln!(out, "{v}/");
                }
            }
            FeedFormat::Rpz => {
                let target = if entry.action == Action::Allowed {
                    "rpz-passthru.".to_string()
                } else {
                    self.policy.target()
                };
                match entry.indicator_type {
                    IndicatorType::IpAddress => {
                        if let Ok(ip) = v.parse::<IpAddr>() {
                            let _ = writeln!(out, "{} CNAME {target}", rpz_ip_owner(ip));
                        }
                    }
                    _ => {
                        let _ = writeln!(out, "{v} CNAME {target}");
                        let _ = writeln!(out, "*.{v} CNAME {target}");
                    }
                }
            }
            FeedFormat::ZeekIntel => {
                let kind = match entry.indicator_type {
                    IndicatorType::IpAddress => "Intel::ADDR",
                    IndicatorType::DomainName => "Intel::DOMAIN",
                    IndicatorType::Url => "Intel::URL",
                    IndicatorType::CertificateThumbprint => "Intel::CERT_HASH",
                    _ => "Intel::FILE_HASH",
                };
                let _ = writeln!(out, "{v}\t{kind}\tiocd\t{}", entry.action);
            }
            _ => {
                let _ = writeln!(out, "{v}");
            }
        }
    }
}

impl FeedRequest {
    /// The passes over the index this feed makes, in order.
    pub fn passes(&self) -> &'static [Pass] {
        if self.format == FeedFormat::Rpz {
            &[Pass::AllowedOnly, Pass::NotAllowed]
        } else {
            &[Pass::All]
        }
    }

    fn carries(&self, index: &MatchIndex, i: &IndexedIndicator<'_>, now: Timestamp) -> bool {
        let entry = FeedEntry {
            indicator_type: i.indicator_type,
            value: &i.value,
            action: i.action,
            severity: i.severity,
        };
        self.selects(&entry) && index.decides_own_value(i, self.device_group.as_deref(), now)
    }

    /// Renders the entries of one chunk of the index (from `from`) in `pass`, keeping only ids
    /// in `keep` when given; returns the text and where to continue.
    pub fn render_chunk(
        &self,
        index: &MatchIndex,
        from: ChunkCursor,
        pass: Pass,
        keep: Option<&HashSet<i64>>,
        now: Timestamp,
    ) -> Result<(String, Option<ChunkCursor>), LayoutChanged> {
        let (chunk, next) = index.chunk(from, CHUNK)?;
        let mut out = String::new();
        for i in &chunk {
            let in_pass = match pass {
                Pass::All => true,
                Pass::AllowedOnly => i.action == Action::Allowed,
                Pass::NotAllowed => i.action != Action::Allowed,
            };
            if in_pass && keep.is_none_or(|k| k.contains(&i.id)) && self.carries(index, i, now) {
                let entry = FeedEntry {
                    indicator_type: i.indicator_type,
                    value: &i.value,
                    action: i.action,
                    severity: i.severity,
                };
                let slash_line = self.format == FeedFormat::EdlUrl
                    && index.decides_url(
                        i.id,
                        &format!("{}/", i.value),
                        self.device_group.as_deref(),
                        now,
                    );
                self.render_lines(&entry, slash_line, &mut out);
            }
        }
        Ok((out, next))
    }

    /// For `max=N`: the ids of the N most important entries the feed carries (by severity,
    /// then recency, then id), and how many it carries in all.
    pub fn most_important(
        &self,
        index: &MatchIndex,
        max: usize,
        now: Timestamp,
    ) -> (HashSet<i64>, usize) {
        let mut heap: BinaryHeap<Reverse<(u8, u32, Reverse<i64>)>> = BinaryHeap::new();
        let mut total = 0;
        // One borrow of the index throughout: its layout cannot change.
        let mut from = Some(index.first_chunk());
        while let Some(pos) = from {
            let (chunk, next) = index
                .chunk(pos, CHUNK)
                .expect("the layout of a borrowed index");
            for i in chunk.iter().filter(|i| self.carries(index, i, now)) {
                total += 1;
                heap.push(Reverse((i.severity as u8, i.updated_secs, Reverse(i.id))));
                if heap.len() > max {
                    heap.pop();
                }
            }
            from = next;
        }
        let ids = heap
            .into_iter()
            .map(|Reverse((_, _, Reverse(id)))| id)
            .collect();
        (ids, total)
    }
}

fn parse_policy(value: &str) -> Result<RpzPolicy, ValidationError> {
    let lower = value.to_ascii_lowercase();
    match lower.as_str() {
        "nxdomain" => Ok(RpzPolicy::NxDomain),
        "nodata" => Ok(RpzPolicy::NoData),
        "drop" => Ok(RpzPolicy::Drop),
        _ => {
            let target = lower
                .strip_prefix("cname:")
                .map(|t| t.trim_end_matches('.'));
            match target {
                Some(t)
                    if !t.is_empty()
                        && t.split('.').all(|label| {
                            !label.is_empty()
                                && label.len() <= 63
                                && label
                                    .bytes()
                                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
                        }) =>
                {
                    Ok(RpzPolicy::Cname(t.to_string()))
                }
                _ => Err(invalid(
                    "policy",
                    format!("Invalid input policy: '{value}' is not nxdomain, nodata, drop or cname:NAME."),
                )),
            }
        }
    }
}

/// The RPZ owner of an address trigger: `32.d.c.b.a.rpz-ip` for IPv4, and for IPv6 the
/// prefix length and the groups reversed, the longest run of zero groups written `zz`.
pub fn rpz_ip_owner(ip: IpAddr) -> String {
    match ip.to_canonical() {
        IpAddr::V4(v4) => {
            let [a, b, c, d] = v4.octets();
            format!("32.{d}.{c}.{b}.{a}.rpz-ip")
        }
        IpAddr::V6(v6) => {
            let groups = v6.segments();
            // The longest run (of two or more) of zero groups, first one on a tie.
            let (mut best, mut run_start, mut run_len) = (None::<(usize, usize)>, 0, 0);
            for (i, g) in groups.iter().enumerate() {
                if *g == 0 {
                    if run_len == 0 {
                        run_start = i;
                    }
                    run_len += 1;
                    if run_len >= 2 && best.is_none_or(|(_, len)| run_len > len) {
                        best = Some((run_start, run_len));
                    }
                } else {
                    run_len = 0;
                }
            }
            let mut labels: Vec<String> = Vec::new();
            let mut i = 0;
            while i < 8 {
                match best {
                    Some((start, len)) if i == start => {
                        labels.push("zz".to_string());
                        i += len;
                    }
                    _ => {
                        labels.push(format!("{:x}", groups[i]));
                        i += 1;
                    }
                }
            }
            labels.reverse();
            format!("128.{}.rpz-ip", labels.join("."))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn rpz_ip_owners() {
        assert_eq!(
            rpz_ip_owner("192.0.2.10".parse().unwrap()),
            "32.10.2.0.192.rpz-ip"
        );
        assert_eq!(
            rpz_ip_owner("2001:db8::1".parse().unwrap()),
            "128.1.zz.db8.2001.rpz-ip"
        );
        assert_eq!(
            rpz_ip_owner("2001:db8:0:1:0:0:0:2".parse().unwrap()),
            "128.2.zz.1.0.db8.2001.rpz-ip"
        );
        assert_eq!(
            rpz_ip_owner("::ffff:198.51.100.1".parse().unwrap()),
            "32.1.100.51.198.rpz-ip"
        );
    }

    #[test]
    fn options_parse_and_name_the_bad_one() {
        let r =
            FeedRequest::parse("rpz", &q(&[("policy", "cname:walled.garden.example")])).unwrap();
        assert_eq!(r.policy, RpzPolicy::Cname("walled.garden.example".into()));
        assert!(r.actions.contains(&Action::Allowed));
        let edl = FeedRequest::parse("edl-domain", &[]).unwrap();
        assert!(!edl.actions.contains(&Action::Allowed) && !edl.actions.contains(&Action::Warn));
        assert_eq!(
            FeedRequest::parse("text-filesha256", &[]).unwrap().types,
            [IndicatorType::FileSha256]
        );
        for (format, query, field) in [
            ("nope", vec![], "format"),
            ("rpz", q(&[("policy", "cname:bad name")]), "policy"),
            ("edl-ip", q(&[("type", "DomainName")]), "type"),
            ("edl-ip", q(&[("max", "0")]), "max"),
            ("edl-ip", q(&[("colour", "red")]), "colour"),
            ("edl-ip", q(&[("action", "Blocked")]), "action"),
        ] {
            assert_eq!(FeedRequest::parse(format, &query).unwrap_err().field, field);
        }
    }

    #[test]
    fn lines_per_format() {
        let entry = |ty, value| FeedEntry {
            indicator_type: ty,
            value,
            action: Action::Block,
            severity: Severity::High,
        };
        let render = |format: &str, query: &[(&str, &str)], e: FeedEntry<'_>| {
            let mut out = String::new();
            FeedRequest::parse(format, &q(query))
                .unwrap()
                .render(&e, &mut out);
            out
        };
        let d = entry(IndicatorType::DomainName, "evil.example");
        assert_eq!(
            render("edl-domain", &[], d),
            "evil.example\n*.evil.example\n"
        );
        assert_eq!(
            render("edl-domain", &[("subdomains", "false")], d),
            "evil.example\n"
        );
        assert_eq!(
            render("rpz", &[("policy", "drop")], d),
            "evil.example CNAME rpz-drop.\n*.evil.example CNAME rpz-drop.\n"
        );
        let u = entry(IndicatorType::Url, "site.example/block");
        assert_eq!(
            render("edl-url", &[], u),
            "site.example/block\nsite.example/block/\n"
        );
        assert_eq!(
            render("zeek-intel", &[], u),
            "site.example/block\tIntel::URL\tiocd\tBlock\n"
        );
        let mut allowed = d;
        allowed.action = Action::Allowed;
        assert_eq!(
            render("rpz", &[], allowed),
            "evil.example CNAME rpz-passthru.\n*.evil.example CNAME rpz-passthru.\n"
        );
    }
}
