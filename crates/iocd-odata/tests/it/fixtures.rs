//! Fixture rows and expected results shared by the SQLite and PostgreSQL semantic tests, so both
//! backends are held to the same answers.

use iocd_odata::TICKS_PER_SECOND;

pub struct Row {
    pub id: i64,
    pub indicator_value: &'static str,
    pub indicator_type: &'static str,
    pub action: &'static str,
    pub severity: &'static str,
    pub application: Option<&'static str>,
    pub title: &'static str,
    pub created_by: &'static str,
    pub created_by_display_name: &'static str,
    pub last_updated_by: Option<&'static str>,
    pub external_id: Option<&'static str>,
    pub creation_time: i64,
    pub last_update_time: i64,
    pub expiration_time: Option<i64>,
    pub generate_alert: bool,
    pub rbac_group_names: &'static str,
    pub rbac_group_ids: &'static str,
}

const fn at(unix_seconds: i64) -> i64 {
    unix_seconds * TICKS_PER_SECOND
}

const JAN_1_2024: i64 = at(1_704_067_200);
const JUN_1_2024_NOON: i64 = at(1_717_243_200);
const JAN_1_2025: i64 = at(1_735_689_600);
const JAN_1_2026: i64 = at(1_767_225_600);
const DEC_31_2023_23H: i64 = at(1_704_063_600);
const JUN_1_2024: i64 = at(1_717_200_000);

pub fn rows() -> Vec<Row> {
    vec![
        Row {
            id: 1,
            indicator_value: "evil.example",
            indicator_type: "DomainName",
            action: "Block",
            severity: "High",
            application: None,
            title: "Phishing domain",
            created_by: "app-a",
            created_by_display_name: "App A",
            last_updated_by: None,
            external_id: Some("ext-1"),
            creation_time: JAN_1_2024,
            last_update_time: JAN_1_2024,
            expiration_time: None,
            generate_alert: true,
            rbac_group_names: r#"["Servers","Laptops"]"#,
            rbac_group_ids: r#"["10","11"]"#,
        },
        Row {
            id: 2,
            indicator_value: "http://bad.example/50%_off",
            indicator_type: "Url",
            action: "Alert",
            severity: "Medium",
            application: Some("Edge"),
            title: "Promo 50% off",
            created_by: "app-b",
            created_by_display_name: "App B",
            last_updated_by: Some("app-b"),
            external_id: None,
            creation_time: JUN_1_2024_NOON + 5_000_000,
            last_update_time: JUN_1_2024_NOON,
            expiration_time: Some(JAN_1_2025),
            generate_alert: false,
            rbac_group_names: r#"["Servers"]"#,
            rbac_group_ids: r#"["10"]"#,
        },
        Row {
            id: 3,
            indicator_value: "1.2.3.4",
            indicator_type: "IpAddress",
            action: "AlertAndBlock",
            severity: "Low",
            application: None,
            title: "It's C2",
            created_by: "app-a",
            created_by_display_name: "App A",
            last_updated_by: None,
            external_id: Some("ext_3"),
            creation_time: JAN_1_2025,
            last_update_time: JAN_1_2025,
            expiration_time: Some(JAN_1_2026 + 1_234_560),
            generate_alert: true,
            rbac_group_names: "[]",
            rbac_group_ids: "[]",
        },
        Row {
            id: 4,
            indicator_value: "a94a8fe5ccb19ba61c4c0873d391e987982fbbd3",
            indicator_type: "FileSha1",
            action: "Allowed",
            severity: "Informational",
            application: Some("Defender"),
            title: r"back\slash title",
            created_by: "user@example.com",
            created_by_display_name: "A User",
            last_updated_by: Some("user@example.com"),
            external_id: None,
            creation_time: DEC_31_2023_23H,
            last_update_time: DEC_31_2023_23H,
            expiration_time: Some(JUN_1_2024),
            generate_alert: false,
            rbac_group_names: r#"["laptops"]"#,
            rbac_group_ids: r#"["12"]"#,
        },
        Row {
            id: 5,
            indicator_value: "CASE.Example",
            indicator_type: "DomainName",
            action: "Warn",
            severity: "High",
            application: None,
            title: "Under_score",
            created_by: "app-b",
            created_by_display_name: "App B",
            last_updated_by: Some("app-a"),
            external_id: None,
            creation_time: JAN_1_2024,
            last_update_time: JAN_1_2025,
            expiration_time: None,
            generate_alert: true,
            rbac_group_names: r#"["Servers","Kiosks"]"#,
            rbac_group_ids: r#"["10","13"]"#,
        },
    ]
}

/// `$filter` text and the ids it must select, in ascending order.
pub const FILTER_CASES: &[(&str, &[i64])] = &[
    ("indicatorValue eq 'evil.example'", &[1]),
    // Equality is exact, as the index-friendly `=` is.
    ("indicatorValue eq 'EVIL.example'", &[]),
    ("action eq 'AlertAndBlock'", &[3]),
    ("action eq 'Block' or action eq 'Warn'", &[1, 5]),
    ("severity eq 'High' and generateAlert eq true", &[1, 5]),
    ("generateAlert eq false", &[2, 4]),
    ("generateAlert ne true", &[2, 4]),
    ("application eq null", &[1, 3, 5]),
    ("application ne null", &[2, 4]),
    ("application eq 'Edge'", &[2]),
    ("application ne 'Edge'", &[1, 3, 4, 5]),
    ("not (application eq 'Edge')", &[1, 3, 4, 5]),
    ("lastUpdatedBy ne 'app-b'", &[1, 3, 4, 5]),
    ("expirationTime lt 2025-06-01T00:00:00Z", &[2, 4]),
    ("not (expirationTime lt 2025-06-01T00:00:00Z)", &[1, 3, 5]),
    ("expirationTime ge 2026-01-01T00:00:00.123456Z", &[3]),
    ("expirationTime gt 2026-01-01T00:00:00.123456Z", &[]),
    ("expirationTime eq '2026-01-01T00:00:00.123456Z'", &[3]),
    (
        "creationTimeDateTimeUtc ge 2024-01-01T00:00:00Z and creationTimeDateTimeUtc lt 2025-01-01T00:00:00Z",
        &[1, 2, 5],
    ),
    ("creationTimeDateTimeUtc eq 2024-01-01T02:00:00 02:00", &[1, 5]),
    ("creationTimeDateTimeUtc eq 2024-01-01T02:00:00+02:00", &[1, 5]),
    ("creationTimeDateTimeUtc le '2023-12-31T18:00:00-05:00'", &[4]),
    ("creationTimeDateTimeUtc gt 2024-06-01T12:00:00.4999999Z", &[2, 3]),
    ("creationTimeDateTimeUtc gt 2024-06-01T12:00:00.5Z", &[3]),
    ("contains(title,'50%')", &[2]),
    ("contains(title,'%')", &[2]),
    ("contains(title,'_')", &[5]),
    ("contains(indicatorValue,'50%_off')", &[2]),
    (r"contains(title,'\')", &[4]),
    ("contains(title,'it''s')", &[3]),
    ("contains(externalId,'t_')", &[3]),
    ("startswith(indicatorValue,'case.')", &[5]),
    ("endswith(indicatorValue,'EXAMPLE')", &[1, 5]),
    ("startswith(action,'Alert')", &[2, 3]),
    ("not contains(application,'edge')", &[1, 3, 4, 5]),
    ("contains(title,'phishing') eq false", &[2, 3, 4, 5]),
    ("rbacGroupNames/any(g: g eq 'Servers')", &[1, 2, 5]),
    ("rbacGroupNames/any(g: g eq 'Laptops' or g eq 'laptops')", &[1, 4]),
    ("rbacGroupNames/any(g: startswith(g,'lap'))", &[1, 4]),
    ("rbacGroupNames/any(g: g ne 'Servers')", &[1, 4, 5]),
    ("rbacGroupNames/any()", &[1, 2, 4, 5]),
    ("not rbacGroupNames/any()", &[3]),
    ("rbacGroupNames/all(g: g ne 'Servers')", &[3, 4]),
    ("not rbacGroupNames/all(g: g ne 'Servers')", &[1, 2, 5]),
    ("rbacGroupIds/any(x: x eq '10') and severity ne 'High'", &[2]),
    ("id eq 3", &[3]),
    ("id eq '3'", &[3]),
    ("id ge 2 and id le 4 and not (id eq 3)", &[2, 4]),
    (
        "indicatorType eq 'DomainName' and (severity eq 'High' or severity eq 'Low')",
        &[1, 5],
    ),
    ("externalId eq 'ext_3'", &[3]),
    ("createdByDisplayName eq 'App A' or createdBy eq 'user@example.com'", &[1, 3, 4]),
    // `in`, in both list forms, on every filterable property.
    ("indicatorValue in ('evil.example','1.2.3.4')", &[1, 3]),
    ("indicatorValue in ['evil.example','1.2.3.4']", &[1, 3]),
    ("indicatorValue IN ('EVIL.example')", &[]),
    ("indicatorType in ('Url','FileSha1')", &[2, 4]),
    ("action in ('Block','Warn')", &[1, 5]),
    ("severity in ['Low', 'Medium']", &[2, 3]),
    ("application in ('Edge','Defender')", &[2, 4]),
    ("not (application in ('Edge'))", &[1, 3, 4, 5]),
    ("title in ('It''s C2','Under_score')", &[3, 5]),
    ("createdBy in ('app-b')", &[2, 5]),
    ("createdByDisplayName in ('A User','App A')", &[1, 3, 4]),
    ("lastUpdatedBy in ('app-a','app-b')", &[2, 5]),
    ("externalId in ('ext-1','ext_3')", &[1, 3]),
    (
        "creationTimeDateTimeUtc in (2024-01-01T00:00:00Z, '2025-01-01T00:00:00Z')",
        &[1, 3, 5],
    ),
    ("lastUpdateTime in [2025-01-01T00:00:00Z]", &[3, 5]),
    ("expirationTime in (2025-01-01T00:00:00Z)", &[2]),
    ("generateAlert in (false)", &[2, 4]),
    ("id in (1,'4')", &[1, 4]),
    ("id in [2, 3] or action in ('Warn')", &[2, 3, 5]),
    ("rbacGroupNames/any(g: g in ('Kiosks','laptops'))", &[4, 5]),
    ("rbacGroupNames/all(g: g in ('Servers','Laptops'))", &[1, 2, 3]),
    ("rbacGroupIds/any(x: x in ['12','13'])", &[4, 5]),
];

/// Query parameters and the ids of the page they must return, in order.
pub type PageCase = (&'static [(&'static str, &'static str)], &'static [i64]);

/// Paging/ordering cases.
pub const PAGE_CASES: &[PageCase] = &[
    (&[], &[1, 2, 3, 4, 5]),
    (&[("$orderby", "expirationTime asc")], &[1, 5, 4, 2, 3]),
    (&[("$orderby", "expirationTime desc")], &[3, 2, 4, 1, 5]),
    (&[("$orderby", "application")], &[1, 3, 5, 4, 2]),
    (&[("$orderby", "severity desc")], &[2, 3, 4, 1, 5]),
    (
        &[
            ("$orderby", "creationTimeDateTimeUtc desc"),
            ("$top", "2"),
            ("$skip", "1"),
        ],
        &[2, 1],
    ),
    (&[("$orderby", "id desc"), ("$top", "2")], &[5, 4]),
    (
        &[
            ("$filter", "generateAlert eq true"),
            ("$top", "10000"),
            ("$skip", "2"),
        ],
        &[5],
    ),
    (&[("$top", "0")], &[]),
    (&[("$skip", "5")], &[]),
];

/// Inserts [`rows`] with `$insert` (the dialect's `INSERT INTO indicators VALUES (…)` with 17
/// placeholders) through `$executor`: one binding order for both databases.
macro_rules! insert_fixture_rows {
    ($insert:expr, $executor:expr) => {
        for row in $crate::fixtures::rows() {
            sqlx::query($insert)
                .bind(row.id)
                .bind(row.indicator_value)
                .bind(row.indicator_type)
                .bind(row.action)
                .bind(row.severity)
                .bind(row.application)
                .bind(row.title)
                .bind(row.created_by)
                .bind(row.created_by_display_name)
                .bind(row.last_updated_by)
                .bind(row.external_id)
                .bind(row.creation_time)
                .bind(row.last_update_time)
                .bind(row.expiration_time)
                .bind(row.generate_alert)
                .bind(row.rbac_group_names)
                .bind(row.rbac_group_ids)
                .execute($executor)
                .await
                .unwrap();
        }
    };
}
pub(crate) use insert_fixture_rows;

/// Runs `$sql` with the compiled `$binds` through `$executor`; the ids it selects.
macro_rules! selected_ids {
    ($sql:expr, $binds:expr, $executor:expr) => {{
        let mut query = sqlx::query($sql);
        for bind in $binds {
            query = match bind {
                iocd_odata::SqlValue::Text(s) => query.bind(s.clone()),
                iocd_odata::SqlValue::Int(i) => query.bind(*i),
                iocd_odata::SqlValue::Bool(b) => query.bind(*b),
            };
        }
        query.fetch_all($executor).await.map(|rows| {
            rows.iter()
                .map(|r| sqlx::Row::get::<i64, _>(r, 0))
                .collect::<Vec<i64>>()
        })
    }};
}
pub(crate) use selected_ids;
