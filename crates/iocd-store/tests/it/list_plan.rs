//! Listing with a filter on the properties clients look indicators up by is served by an
//! index on both databases: the plan of the very statement `list` runs is checked with
//! EXPLAIN QUERY PLAN (SQLite) and EXPLAIN (PostgreSQL, after ANALYZE), and the rows it
//! returns are checked too.

use iocd_domain::{parse_submission, time, Actor, Submission};
use iocd_odata::parse_filter;
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
async fn postgres_list_filters_use_indexes() {
    let Some(admin) = env::postgres_url() else {
        return;
    };
    // Dropped (with FORCE, ending the store's sessions) whatever the checks find.
    let database = ScratchDatabase::postgres(&admin).await;
    let store = PostgresStore::open(&database.url).await.unwrap();
    fill(&store).await;
    store.analyze().await.unwrap();
    check_results(&store).await;
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
