//! Listing with a filter on the properties clients look indicators up by is served by an
//! index on both databases: the plan of the very statement `list` runs is checked with
//! EXPLAIN QUERY PLAN (SQLite) and EXPLAIN (PostgreSQL, after ANALYZE), and the rows it
//! returns are checked too.

use iocd_domain::{parse_submission, time, Actor, IndicatorType, Submission};
use iocd_odata::{parse_filter, parse_list_query};
use iocd_store::{IndicatorStore, ListRequest, PostgresStore, Scope, SqliteStore, WriteLimits};
use iocd_testkit::{env, ScratchDatabase};
use serde_json::json;

const TENANT: &str = "tenant-a";
const COMMON: usize = 3000;
const RARE: usize = 5;

/// Filter, the column an index must serve it by, and how many rows it matches.
const CASES: &[(&str, &str, usize)] = &[
    ("indicatorValue eq 'rare2.example'", "indicator_value", 1),
    ("indicatorType eq 'DomainName'", "indicator_type", RARE),
    ("action eq 'Allowed'", "action", RARE),
    ("createdBy eq 'rare-app'", "created_by", RARE),
    (
        "expirationTime lt 2100-01-01T00:00:00Z",
        "expiration_time",
        RARE,
    ),
    // `in` is served by the same indexes as `eq`, in both of its list forms.
    (
        "indicatorValue in ('rare1.example','rare3.example','absent.example')",
        "indicator_value",
        2,
    ),
    ("createdBy in ['rare-app','nobody']", "created_by", RARE),
];

fn submission(body: serde_json::Value) -> Submission {
    parse_submission(&body).expect("valid submission")
}

/// Many look-alike rows and a few rare ones, so an index is the cheap plan for the rare values.
async fn fill(store: &dyn IndicatorStore) {
    let scope = Scope::tenant_wide(TENANT);
    let common: Vec<Submission> = (0..COMMON)
        .map(|n| {
            submission(json!({
                "indicatorValue": format!("{n:064x}"),
                "indicatorType": "FileSha256",
                "action": "BlockAndRemediate",
                "title": "common",
                "description": "common"
            }))
        })
        .collect();
    let app = Actor::new("common-app", "common");
    let results = store
        .submit(&scope, &app, common, WriteLimits::default(), time::now())
        .await
        .unwrap();
    assert!(results.iter().all(Result::is_ok));
    let rare: Vec<Submission> = (0..RARE)
        .map(|n| {
            submission(json!({
                "indicatorValue": format!("rare{n}.example"),
                "indicatorType": "DomainName",
                "action": "Allowed",
                "title": "rare",
                "description": "rare",
                "expirationTime": "2099-01-01T00:00:00Z"
            }))
        })
        .collect();
    let rare_app = Actor::new("rare-app", "rare");
    let results = store
        .submit(&scope, &rare_app, rare, WriteLimits::default(), time::now())
        .await
        .unwrap();
    assert!(results.iter().all(Result::is_ok));
}

fn request(filter: &str) -> ListRequest {
    ListRequest {
        filter: Some(parse_filter(filter).unwrap()),
        order_by: Vec::new(),
        skip: 0,
        take: 10_000,
        per_type: Vec::new(),
    }
}

async fn check_results(store: &dyn IndicatorStore) {
    let scope = Scope::tenant_wide(TENANT);
    for (filter, _, expected) in CASES {
        let page = store
            .list(&scope, &request(filter), time::now())
            .await
            .unwrap();
        assert_eq!(page.indicators.len(), *expected, "{filter}");
        assert!(!page.more);
    }
    // An app with only Ti.ReadWrite sees its own rows, filter or not.
    let own = Scope {
        tenant_id: TENANT.into(),
        owner: Some("rare-app".into()),
    };
    let page = store
        .list(&own, &request("indicatorType ne 'Url'"), time::now())
        .await
        .unwrap();
    assert_eq!(page.indicators.len(), RARE);
}

#[tokio::test]
async fn sqlite_list_filters_use_indexes() {
    let database = ScratchDatabase::sqlite();
    let store = SqliteStore::open(&database.url).await.unwrap();
    fill(&store).await;
    check_results(&store).await;
    let scope = Scope::tenant_wide(TENANT);
    for (filter, column, _) in CASES {
        let plan = store
            .explain_list(&scope, &request(filter), time::now())
            .await
            .unwrap();
        assert!(
            !plan.iter().any(|step| step.starts_with("SCAN indicators")),
            "{filter} scans the table: {plan:?}"
        );
        assert!(
            plan.iter()
                .any(|step| step.starts_with("SEARCH indicators USING") && step.contains(column)),
            "{filter} is not served by an index on {column}: {plan:?}"
        );
    }
}

#[tokio::test]
async fn postgres_list_filters_use_indexes_and_per_type_pages_match() {
    let Some(admin) = env::postgres_url() else {
        return;
    };
    // Dropped (with FORCE, ending the store's sessions) whatever the checks find.
    let database = ScratchDatabase::postgres(&admin).await;
    let store = PostgresStore::open(&database.url).await.unwrap();
    fill(&store).await;
    fill_mixed(&store).await;
    store.analyze().await.unwrap();
    check_results(&store).await;
    per_type_pages_match_single_query(&store).await;
    let scope = Scope::tenant_wide(TENANT);
    for (filter, column, _) in CASES {
        let plan = store
            .explain_list(&scope, &request(filter), time::now())
            .await
            .unwrap();
        assert!(
            !plan.iter().any(|line| line.contains("Seq Scan")),
            "{filter} scans the table: {plan:#?}"
        );
        assert!(
            plan.iter()
                .any(|line| line.contains("Index Cond") && line.contains(column)),
            "{filter} is not served by an index on {column}: {plan:#?}"
        );
    }
}

const MIXED_TENANT: &str = "tenant-mixed";
const FILE_TYPES: [IndicatorType; 3] = [
    IndicatorType::FileSha256,
    IndicatorType::FileSha1,
    IndicatorType::FileMd5,
];

/// File hashes of three types with titles that repeat across types, and URLs whose values sort
/// after every hash: the shape that made one walk of a column's index slow.
async fn fill_mixed(store: &dyn IndicatorStore) {
    let scope = Scope::tenant_wide(MIXED_TENANT);
    let mut rows: Vec<Submission> = (0..90u64)
        .map(|n| {
            let (ty, width) = match n % 3 {
                0 => ("FileSha256", 64),
                1 => ("FileSha1", 40),
                _ => ("FileMd5", 32),
            };
            submission(json!({
                "indicatorValue": format!("{:0width$x}", (n + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15)),
                "indicatorType": ty,
                "action": "Allowed",
                "title": format!("title {}", n % 7),
                "description": "mixed"
            }))
        })
        .collect();
    rows.extend((0..20).map(|n| {
        submission(json!({
            "indicatorValue": format!("https://url{n}.example/"),
            "indicatorType": "Url",
            "action": "Allowed",
            "title": format!("title {}", n % 7),
            "description": "mixed"
        }))
    }));
    let app = Actor::new("mixed-app", "mixed");
    let results = store
        .submit(&scope, &app, rows, WriteLimits::default(), time::now())
        .await
        .unwrap();
    assert!(results.iter().all(Result::is_ok));
}

fn sorted(order_by: &str, skip: u64, take: u64, per_type: bool) -> ListRequest {
    let query = parse_list_query(&[
        (
            "$filter".to_string(),
            "indicatorType in ('FileSha256','FileSha1','FileMd5')".to_string(),
        ),
        ("$orderby".to_string(), order_by.to_string()),
    ])
    .unwrap();
    ListRequest {
        filter: query.filter,
        order_by: query.order_by,
        skip,
        take,
        per_type: if per_type {
            FILE_TYPES.to_vec()
        } else {
            Vec::new()
        },
    }
}

const SORTS: [&str; 6] = [
    "title asc,id asc",
    "title desc,id desc",
    "indicatorValue asc,id asc",
    "indicatorValue desc,id desc",
    "indicatorType asc,id asc",
    "indicatorType desc,id desc",
];

/// Read per type, a page holds the same rows in the same order as the single query, at
/// every offset, and `more` agrees. (The values are lower-case, so their normalised form,
/// which a per-type value sort follows, has the same order.)
async fn per_type_pages_match_single_query(store: &dyn IndicatorStore) {
    let scope = Scope::tenant_wide(MIXED_TENANT);
    let ids =
        |page: &iocd_store::ListPage| page.indicators.iter().map(|i| i.id).collect::<Vec<_>>();
    for order in SORTS {
        for (skip, take) in [(0, 10), (7, 10), (25, 30), (80, 10), (85, 10)] {
            let single = store
                .list(&scope, &sorted(order, skip, take, false), time::now())
                .await
                .unwrap();
            let split = store
                .list(&scope, &sorted(order, skip, take, true), time::now())
                .await
                .unwrap();
            assert_eq!(ids(&split), ids(&single), "{order}, skip {skip}");
            assert_eq!(split.more, single.more, "{order}, skip {skip}");
            assert!(
                split
                    .indicators
                    .iter()
                    .all(|i| FILE_TYPES.contains(&i.indicator_type)),
                "{order}: a URL in the file hashes"
            );
        }
        let all = store
            .list(&scope, &sorted(order, 0, 1000, true), time::now())
            .await
            .unwrap();
        assert_eq!(all.indicators.len(), 90, "{order}");
        assert!(!all.more);
    }
}

#[tokio::test]
async fn sqlite_sorted_pages_per_type_use_the_type_indexes() {
    let database = ScratchDatabase::sqlite();
    let store = SqliteStore::open(&database.url).await.unwrap();
    fill_mixed(&store).await;
    per_type_pages_match_single_query(&store).await;
    let scope = Scope::tenant_wide(MIXED_TENANT);
    for (order, index) in [
        ("title desc,id desc", "indicators_type_title"),
        // The upsert key's index: (tenant, type, value_key, action).
        (
            "indicatorValue desc,id desc",
            "sqlite_autoindex_indicators_2",
        ),
    ] {
        let plan = store
            .explain_list(&scope, &sorted(order, 0, 100, true), time::now())
            .await
            .unwrap();
        let arms = plan
            .iter()
            .filter(|step| step.starts_with(&format!("SEARCH indicators USING INDEX {index}")))
            .count();
        assert_eq!(arms, 3, "{order}: each type's arm walks {index}: {plan:#?}");
        assert!(
            !plan.iter().any(|step| step.starts_with("SCAN indicators")),
            "{order} scans the table: {plan:#?}"
        );
        // The merge sorts each arm's page (skip + take + 1 rows); an arm that sorted its
        // type's rows itself would add a sort of its own. (Ties of one value_key under several
        // actions are put in id order: "RIGHT PART OF ORDER BY", a sort of those few rows.)
        let sorts = plan
            .iter()
            .filter(|step| step.starts_with("USE TEMP B-TREE FOR ORDER BY"))
            .count();
        assert_eq!(sorts, 3, "{order}: an arm sorts its whole type: {plan:#?}");
    }
}
